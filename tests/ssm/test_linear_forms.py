"""Causal linear attention and Cottention = RNN (:mod:`theorylab.ssm.linear_forms`); their claims;
bad input to every public function of the linear-attention family.

Sides are named ``ref`` (float64 recurrence) and ``out`` (the computation under test).
"""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.ssm.gated_linear import aft_simple, gateloop, make_gateloop_inputs
from theorylab.ssm.hla import hla2
from theorylab.ssm.linear_forms import (
    cottention,
    cottention_parallel,
    linear_attention,
    linear_attention_parallel,
    linear_attention_recurrent,
    make_linear_attention_inputs,
)
from theorylab.ssm.linear_forms_claims import cosine_attention_written_out, la_proof
from theorylab.testing import corrupt, linear_attention_sizes, seeds
from theorylab.tolerances import assert_close, compare

sizes = linear_attention_sizes()
BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")),
    "torch",
]
OPTIONS = [("identity", False), ("elu1", False), ("elu1", True)]
EDGE = dict(batch=1, length=1, heads=1, dk=1, dv=1)
ODD = dict(batch=2, length=63, heads=3, dk=5, dv=7)


pytestmark = pytest.mark.usefixtures("one_thread")


def _rounded(p, dtype):
    low = {k: v.astype(dtype) for k, v in p.items()}
    return low, {k: v.astype(np.float64) for k, v in low.items()}


# ---- linear attention ------------------------------------------------------------------------
@pytest.mark.parametrize("fm,normalize", OPTIONS)
@given(sz=sizes, seed=seeds)
@example(sz=EDGE, seed=0)
@example(sz=ODD, seed=1)
def test_parallel_form_equals_recurrence(fm, normalize, sz, seed):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref, _ = linear_attention_recurrent(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize)
    out = linear_attention_parallel(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize)
    assert out.shape == ref.shape == (sz["batch"], sz["length"], sz["heads"], sz["dv"])
    assert_close(out, ref, dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fm,normalize", OPTIONS)
@given(sz=sizes, seed=seeds, chunk=st.integers(1, 17))
@example(sz=EDGE, seed=0, chunk=1)
@example(sz=ODD, seed=1, chunk=8)
def test_backends_match_reference(backend, fm, normalize, sz, seed, chunk):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref, S_ref = linear_attention_recurrent(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize)
    out, S = linear_attention(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize, chunk_size=chunk,
                              return_final_state=True, backend=backend)
    assert out.dtype == np.float64
    assert_close(out, ref, dtype=np.float64, name=backend)
    assert_close(S, S_ref, dtype=np.float64, name=f"{backend} state")
    low, up = _rounded(p, np.float32)
    ref32, _ = linear_attention_recurrent(up["q"], up["k"], up["v"], feature_map=fm, normalize=normalize)
    out32 = linear_attention(low["q"], low["k"], low["v"], feature_map=fm, normalize=normalize, chunk_size=chunk,
                             backend=backend)
    assert out32.dtype == np.float32
    assert_close(out32, ref32, dtype=np.float32, name=f"{backend} float32")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, cut=st.floats(0, 1), opt=st.sampled_from(OPTIONS))
def test_segmented_run_equals_full_run(backend, sz, seed, cut, opt):
    fm, normalize = opt
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref, S_ref = linear_attention(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize, return_final_state=True,
                                  backend=backend)
    k = int(round(cut * sz["length"]))
    parts, S = [], None
    for sl in (slice(0, k), slice(k, None)):
        q, kk, v = (p[x][:, sl] for x in "qkv")
        if q.shape[1]:
            y, S = linear_attention(q, kk, v, feature_map=fm, normalize=normalize, initial_state=S,
                                    return_final_state=True, chunk_size=3, backend=backend)
            parts.append(y)
    assert_close(np.concatenate(parts, axis=1), ref, dtype=np.float64)
    assert_close(S, S_ref, dtype=np.float64)


def test_linear_attention_by_hand():
    # L = 2, dk = dv = 1: y_0 = q0 k0 v0, y_1 = q1 (k0 v0 + k1 v1); normalized: weighted means
    q = np.array([2.0, 3.0]).reshape(1, 2, 1, 1)
    k = np.array([5.0, 7.0]).reshape(1, 2, 1, 1)
    v = np.array([11.0, 13.0]).reshape(1, 2, 1, 1)
    out = linear_attention(q, k, v, backend="ref").ravel()
    np.testing.assert_allclose(out, [2 * 5 * 11, 3 * (5 * 11 + 7 * 13)], rtol=1e-15)
    out_n = linear_attention(q, k, v, feature_map="elu1", normalize=True, backend="torch").ravel()
    np.testing.assert_allclose(out_n, [11.0, (6 * 11 + 8 * 13) / 14], rtol=1e-14)


def test_batch_and_head_invariance(rng):
    p = make_linear_attention_inputs(rng, batch=3, length=9, heads=4, dk=3, dv=2)
    full = linear_attention(p["q"], p["k"], p["v"], backend="torch")
    one = linear_attention(p["q"][1:2, :, 2:3], p["k"][1:2, :, 2:3], p["v"][1:2, :, 2:3], backend="torch")
    assert_close(one, full[1:2, :, 2:3], dtype=np.float64)


def test_sympy_proof_linear_attention():
    assert la_proof().proved


# ---- Cottention --------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, pw=st.sampled_from([0.0, 0.5, 1.0]), off=st.integers(0, 5), chunk=st.integers(1, 9))
@example(sz=EDGE, seed=0, pw=0.5, off=0, chunk=1)
def test_cottention_rnn_equals_cosine_attention(backend, sz, seed, pw, off, chunk):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref = cottention_parallel(p["q"], p["k"], p["v"], p=pw, position_offset=off)
    out = cottention(p["q"], p["k"], p["v"], p=pw, position_offset=off, chunk_size=chunk, backend=backend)
    assert_close(out, ref, dtype=np.float64)
    # scale invariance of cosine attention: rescaling any q_t or k_s changes nothing
    scale = np.random.default_rng(seed).uniform(0.1, 10, size=p["q"].shape[:3] + (1,))
    assert_close(cottention(p["q"] * scale, p["k"] / scale, p["v"], p=pw, position_offset=off, backend=backend), ref,
                 dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cottention_stabilizer_divides_each_value_by_its_token_count(backend):
    """By hand, q = k = 1 (cosine 1), v = [a, b], p = 1: y_0 = a / 1, y_1 = a / 1 + b / 2
    (the released causal code's form; dividing the output instead would give (a + b) / 2),
    and with position_offset = 2 the counts are 3 and 4."""
    a, b = 3.0, 5.0
    q = np.ones((1, 2, 1, 1))
    v = np.array([a, b]).reshape(1, 2, 1, 1)
    assert_close(cottention(q, q, v, p=1.0, backend=backend), np.array([a, a + b / 2]).reshape(1, 2, 1, 1),
                 dtype=np.float64)
    assert_close(cottention(q, q, v, p=1.0, position_offset=2, backend=backend),
                 np.array([a / 3, a / 3 + b / 4]).reshape(1, 2, 1, 1), dtype=np.float64)


@given(sz=sizes, seed=seeds, cut=st.floats(0, 1))
def test_cottention_segmented(sz, seed, cut):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref = cottention(p["q"], p["k"], p["v"], p=0.5, backend="ref")
    k = int(round(cut * sz["length"]))
    parts, S = [], None
    for sl in (slice(0, k), slice(k, None)):
        q, kk, v = (p[x][:, sl] for x in "qkv")
        if q.shape[1]:
            y, S = cottention(q, kk, v, p=0.5, position_offset=sl.start, initial_state=S, return_final_state=True,
                              backend="torch")
            parts.append(y)
    assert_close(np.concatenate(parts, axis=1), ref, dtype=np.float64)


# ---- claims -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cid", ["ssm.linear-attention-is-rnn", "ssm.cottention-is-rnn"])
def test_claims_hold_and_controls_are_rejected(cid):
    r = run_claim(get(cid), samples=3, seed=7)
    assert r.holds, r.detail
    assert r.negative_control_rejected and r.control_margin > 1e3, r.control_detail
    assert {"ref", "torch"} <= set(r.backends) and ("numba" in r.backends or not numba_available())
    assert r.proved is not False


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, scale=st.sampled_from([30.0, 100.0]))
def test_elu1_at_large_logits(backend, sz, seed, scale):
    """elu(x) + 1 = e^x for x <= 0 must keep its digits at x ~ -100 (elu(x) + 1 rounds to 0 there),
    or a normalized row divides 0 by 0."""
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    q, k = p["q"] * scale, p["k"] * scale
    ref = linear_attention_parallel(q, k, p["v"], feature_map="elu1", normalize=True)
    out = linear_attention(q, k, p["v"], feature_map="elu1", normalize=True, chunk_size=4, backend=backend)
    assert_close(out, ref, dtype=np.float64, name=backend)


@given(sz=sizes, seed=seeds, pw=st.sampled_from([0.5, 1.0]), off=st.integers(0, 5))
def test_cottention_matches_the_form_written_out(sz, seed, pw, off):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref = cosine_attention_written_out(p["q"], p["k"], p["v"], pw, off)
    assert_close(cottention_parallel(p["q"], p["k"], p["v"], p=pw, position_offset=off), ref, dtype=np.float64)
    if sz["length"] > 1:  # dividing the output by n_t^p instead of each value by n_s^p is another function
        bad = cosine_attention_written_out(p["q"], p["k"], p["v"], pw, off, divide_output=True)
        assert not compare(bad, ref, dtype=np.float64).ok


# ---- torch in, torch out ---------------------------------------------------------------------------
def test_torch_in_torch_out(rng):
    p = make_gateloop_inputs(rng, batch=2, length=5, heads=2, dk=3, dv=3, dtype=np.float32)
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    for fn in (linear_attention, cottention, hla2, aft_simple):
        out = fn(t["q"], t["k"], t["v"])
        assert isinstance(out, torch.Tensor) and out.dtype == torch.float32, fn.__name__
        ref = fn(p["q"].astype(np.float64), p["k"].astype(np.float64), p["v"].astype(np.float64), backend="ref")
        assert_close(out, ref, dtype=np.float32, name=fn.__name__)
    out = gateloop(t["q"], t["k"], t["v"], t["a"])
    assert isinstance(out, torch.Tensor) and out.dtype == torch.complex64
    for fn in (linear_attention, cottention, hla2, aft_simple):  # ref backend on tensors: tensors back
        assert isinstance(fn(t["q"], t["k"], t["v"], backend="ref"), torch.Tensor)


@pytest.mark.parametrize("name", ["linear_attention", "cottention", "hla2", "aft_simple"])
def test_torch_gradients_match_central_differences(name, rng):
    """float64 autograd through the torch path vs central differences of the float64 reference."""
    fn = {"linear_attention": lambda q, k, v, be: linear_attention(q, k, v, feature_map="elu1", normalize=True,
                                                                   chunk_size=2, backend=be),
          "cottention": lambda q, k, v, be: cottention(q, k, v, p=0.5, chunk_size=2, backend=be),
          "hla2": lambda q, k, v, be: hla2(q, k, v, chunk_size=2, backend=be),
          "aft_simple": lambda q, k, v, be: aft_simple(q, k, v, backend=be)}[name]
    p = make_linear_attention_inputs(rng, length=5, heads=1, dk=3, dv=3)
    w = rng.standard_normal(p["v"].shape)  # loss = Σ w ∘ y
    t = {key: torch.tensor(val, requires_grad=True) for key, val in p.items()}
    (fn(t["q"], t["k"], t["v"], "torch") * torch.from_numpy(w)).sum().backward()
    h = 1e-6
    for key in "qkv":
        num = np.zeros_like(p[key])
        for idx in np.ndindex(p[key].shape):
            plus, minus = ({**p, key: p[key].copy()} for _ in range(2))
            plus[key][idx] += h
            minus[key][idx] -= h
            num[idx] = ((fn(plus["q"], plus["k"], plus["v"], "ref") - fn(minus["q"], minus["k"], minus["v"], "ref")) * w
                        ).sum() / (2 * h)
        # central differences: truncation ~h² |f^(3)| ~ 1e-12, rounding ~eps |f| / h ~ 1e-10 (relative)
        assert_close(t[key].grad.numpy(), num, rtol=1e-6, name=f"{name} d/d{key}")


# ---- bad input through every public function -------------------------------------------------------
HOWS = ["extra_dim", "drop_dim", "wrong_size", "int_dtype", "other_float", "nan", "inf", "list", "tensor", "empty"]
FUNCS = {
    "linear_attention": lambda q, k, v, a, be: linear_attention(q, k, v, backend=be),
    "cottention": lambda q, k, v, a, be: cottention(q, k, v, backend=be),
    "gateloop": lambda q, k, v, a, be: gateloop(q, k, v, a, backend=be),
    "aft_simple": lambda q, k, v, a, be: aft_simple(q, k, v, backend=be),
    "hla2": lambda q, k, v, a, be: hla2(q, k, v, backend=be),
}


@given(fn=st.sampled_from(sorted(FUNCS)), key=st.sampled_from(["q", "k", "v"]), how=st.sampled_from(HOWS),
       seed=st.integers(0, 100), backend=st.sampled_from(["auto", "ref", "numba", "torch"]))
def test_bad_input_raises_naming_the_argument(fn, key, how, seed, backend):
    p = make_gateloop_inputs(np.random.default_rng(seed), batch=2, length=3, heads=2, dk=3, dv=3)
    p[key] = corrupt(p[key], how, axis=1)
    with pytest.raises((ValueError, TypeError)) as err:
        FUNCS[fn](p["q"], p["k"], p["v"], p["a"], backend)
    assert key in str(err.value), str(err.value)


@given(how=st.sampled_from(["modulus", "shape", "real_int", "nan", "list"]),
       backend=st.sampled_from(["ref", "numba", "torch"]))
def test_gateloop_rejects_bad_gates(how, backend):
    p = make_gateloop_inputs(np.random.default_rng(0), length=4)
    a = {"modulus": p["a"] * 1.5, "shape": p["a"][..., :1], "real_int": np.ones(p["a"].shape, int),
         "nan": np.where(np.arange(p["a"].size).reshape(p["a"].shape) == 0, np.nan, p["a"]), "list": p["a"].tolist()}[how]
    with pytest.raises((ValueError, TypeError), match="a must|\\ba\\b"):
        gateloop(p["q"], p["k"], p["v"], a, backend=backend)


def test_option_errors(rng):
    p = make_linear_attention_inputs(rng)
    q, k, v = p["q"], p["k"], p["v"]
    with pytest.raises(ValueError, match="normalize=True needs a positive feature map"):
        linear_attention(q, k, v, normalize=True)
    with pytest.raises(ValueError, match="unknown feature_map"):
        linear_attention(q, k, v, feature_map="relu")
    with pytest.raises(ValueError, match="unknown backend"):
        linear_attention(q, k, v, backend="cuda")
    with pytest.raises(ValueError, match="chunk_size"):
        hla2(q, k, v, chunk_size=0)
    with pytest.raises(ValueError, match="p must be"):
        cottention(q, k, v, p=-1.0)
    with pytest.raises(ValueError, match="position_offset"):
        cottention(q, k, v, position_offset=-2)
    with pytest.raises(ValueError, match="exactly zero"):
        cottention(np.zeros_like(q), k, v)
    with pytest.raises(ValueError, match="initial_state must have shape"):
        linear_attention(q, k, v, initial_state=np.zeros((1, 2, 3, 5)))
    with pytest.raises(TypeError, match="initial_state must be a tuple"):
        hla2(q, k, v, initial_state=np.zeros(3))
    with pytest.raises(ValueError, match="dv == dk|v must have shape"):
        aft_simple(q, k, v)  # AFT is elementwise: v must match q's feature size
