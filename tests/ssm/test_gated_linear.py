"""GateLoop (#80) and AFT-simple (#119) (:mod:`theorylab.ssm.gated_linear`): every form vs every other, their claims.

Sides are named ``ref`` (float64 / complex128 recurrence) and ``out`` (the form under test).
"""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.backends import numba_available
from theorylab.ssm.gated_linear import (
    aft_simple,
    aft_simple_attention,
    aft_simple_closed_form,
    aft_simple_recurrent,
    DECAYS,
    gateloop,
    gateloop_attention,
    gateloop_recurrent,
    gateloop_scan,
    make_gateloop_inputs,
)
from theorylab.claims import get, run_claim
from theorylab.ssm.gated_linear_claims import gl_proof
from theorylab.ssm.linear_forms import linear_attention, make_linear_attention_inputs
from theorylab.testing import SMALL, linear_attention_sizes, seeds, segmented_run
from theorylab.tolerances import assert_close, compare

sizes = linear_attention_sizes()
BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")),
    "torch",
]
EDGE = dict(batch=1, length=1, heads=1, dk=1, dv=1)
ODD = dict(batch=2, length=63, heads=3, dk=5, dv=7)


pytestmark = pytest.mark.usefixtures("one_thread")


# ---- GateLoop ----------------------------------------------------------------------------------
@given(sz=sizes, seed=seeds, scalar=st.booleans(), decay=st.sampled_from(DECAYS))
@example(sz=EDGE, seed=0, scalar=False, decay="moderate")
@example(sz=ODD, seed=1, scalar=True, decay="extreme")
def test_gateloop_recurrence_scan_attention_agree(sz, seed, scalar, decay):
    p = make_gateloop_inputs(np.random.default_rng(seed), scalar_gate=scalar, decay=decay, **sz)
    args = (p["q"], p["k"], p["v"], p["a"])
    ref, H_ref = gateloop_recurrent(*args)
    out_scan, H_scan = gateloop_scan(*args)
    assert_close(out_scan, ref, dtype=np.float64, name="scan")
    assert_close(H_scan, H_ref, dtype=np.float64, name="scan state")
    assert_close(gateloop_attention(*args), ref, dtype=np.float64, name="surrogate attention")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, chunk=st.integers(1, 17), scalar=st.booleans(), decay=st.sampled_from(DECAYS))
@example(sz=EDGE, seed=0, chunk=1, scalar=False, decay="moderate")
@example(sz=ODD, seed=2, chunk=8, scalar=False, decay="extreme")
def test_gateloop_backends(backend, sz, seed, chunk, scalar, decay):
    p = make_gateloop_inputs(np.random.default_rng(seed), scalar_gate=scalar, decay=decay, **sz)
    # against the surrogate attention (stable segment sums): with extreme decays the gate products
    # underflow, and a form that divides cumulative products would give 0/0
    ref = gateloop_attention(p["q"], p["k"], p["v"], p["a"])
    out = gateloop(p["q"], p["k"], p["v"], p["a"], chunk_size=chunk, backend=backend)
    assert out.dtype == np.complex128
    assert_close(out, ref, dtype=np.float64)
    low = make_gateloop_inputs(np.random.default_rng(seed), scalar_gate=scalar, decay=decay, dtype=np.float32, **sz)
    up = {k: x.astype(np.complex128 if k == "a" else np.float64) for k, x in low.items()}  # same values, upcast
    ref32, _ = gateloop_recurrent(up["q"], up["k"], up["v"], up["a"])
    out32 = gateloop(low["q"], low["k"], low["v"], low["a"], chunk_size=chunk, backend=backend)
    assert out32.dtype == np.complex64
    assert_close(out32, ref32, dtype=np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, cut=st.floats(0, 1))
def test_gateloop_segmented_equals_full(backend, sz, seed, cut):
    p = make_gateloop_inputs(np.random.default_rng(seed), **sz)
    ref, H_ref = gateloop(**p, return_final_state=True, backend=backend)
    out, H = segmented_run(gateloop, p, int(round(cut * sz["length"])), backend=backend, chunk_size=4)
    assert_close(out, ref, dtype=np.float64)
    assert_close(H, H_ref, dtype=np.float64)


def test_gateloop_with_unit_gates_is_linear_attention(rng):
    p = make_gateloop_inputs(rng, length=11, dk=3, dv=2)
    ones = np.ones(p["a"].shape, complex)
    out = gateloop(p["q"], p["k"], p["v"], ones, backend="torch")
    assert_close(out.real, linear_attention(p["q"], p["k"], p["v"]), dtype=np.float64)
    assert np.all(out.imag == 0)


def test_gateloop_zero_gate_forgets_the_past(rng):
    p = make_gateloop_inputs(rng, length=6, dk=2, dv=2, scalar_gate=True)
    p["a"][:, 3] = 0.0  # H_3 = k_3 v_3ᵀ: nothing before step 3 survives
    full = gateloop(**p, backend="ref")
    tail = gateloop(**{k: v[:, 3:] for k, v in p.items()}, backend="ref")
    assert_close(full[:, 3:], tail, dtype=np.float64)
    assert_close(gateloop_attention(p["q"], p["k"], p["v"], p["a"]), full, dtype=np.float64)


def test_gateloop_control_mask_is_rejected(rng):
    p = make_gateloop_inputs(rng, length=9)
    ref, _ = gateloop_recurrent(p["q"], p["k"], p["v"], p["a"])
    assert not compare(gateloop_attention(p["q"], p["k"], p["v"], p["a"], mask_from=0), ref, dtype=np.float64).ok


def test_gateloop_sympy_proof():
    assert gl_proof().proved


# ---- AFT-simple --------------------------------------------------------------------------------
aft_sizes = st.fixed_dictionaries({"batch": st.integers(1, 2), "length": st.integers(1, 40), "heads": st.integers(1, 3),
                                   "dk": st.sampled_from(SMALL)})


def _aft_inputs(seed, sz, scale, dtype=np.float64):
    p = make_linear_attention_inputs(np.random.default_rng(seed), dv=sz["dk"], **sz)
    p["k"] = p["k"] * scale * np.sqrt(sz["dk"])
    return {k: v.astype(dtype) for k, v in p.items()}


@given(sz=aft_sizes, seed=seeds, scale=st.sampled_from([1.0, 30.0, 800.0]))
@example(sz=dict(batch=1, length=1, heads=1, dk=1), seed=0, scale=1.0)
def test_aft_forms_agree(sz, seed, scale):
    p = _aft_inputs(seed, sz, scale)
    ref, st_ref = aft_simple_recurrent(p["q"], p["k"], p["v"])
    out, st_out = aft_simple_closed_form(p["q"], p["k"], p["v"])
    assert np.all(np.isfinite(ref))
    # |k| up to ~2400 at scale 800 (e^k overflows): exp/log rounding ~ |lse| eps ~ 1e-12
    assert_close(out, ref, dtype=np.float64, name="closed form")
    assert_close(st_out, st_ref, dtype=np.float64, name="state")
    assert_close(aft_simple_attention(p["q"], p["k"], p["v"]), ref, dtype=np.float64, name="attention form")


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=aft_sizes, seed=seeds, scale=st.sampled_from([1.0, 30.0, 300.0]))
@example(sz=dict(batch=1, length=9, heads=1, dk=2), seed=3, scale=300.0)
def test_aft_backends(backend, sz, seed, scale):
    """Keys up to ~1e3 at scale 300: a recurrence without its running max overflows e^k (float64 at 709)."""
    p = _aft_inputs(seed, sz, scale)
    ref, _ = aft_simple_recurrent(p["q"], p["k"], p["v"])
    assert_close(aft_simple(p["q"], p["k"], p["v"], backend=backend), ref, dtype=np.float64)
    low = _aft_inputs(seed, sz, min(scale, 30.0), np.float32)  # float32: e^k overflows past 88 already
    ref32, _ = aft_simple_recurrent(*(low[k].astype(np.float64) for k in "qkv"))
    out32 = aft_simple(low["q"], low["k"], low["v"], backend=backend)
    assert out32.dtype == np.float32 and np.all(np.isfinite(out32))
    assert_close(out32, ref32, dtype=np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=aft_sizes, seed=seeds, cut=st.floats(0, 1))
def test_aft_segmented_equals_full(backend, sz, seed, cut):
    p = _aft_inputs(seed, sz, 5.0)
    ref, st_ref = aft_simple(**p, return_final_state=True, backend=backend)
    out, st_ = segmented_run(aft_simple, p, int(round(cut * sz["length"])), backend=backend)
    assert_close(out, ref, dtype=np.float64)
    assert_close(st_, st_ref, dtype=np.float64)


def test_aft_by_hand():
    # one feature, L = 2: y_1 = σ(q_1) (e^{k0} v0 + e^{k1} v1) / (e^{k0} + e^{k1})
    q, k, v = (np.array(x, float).reshape(1, 2, 1, 1) for x in ([0.0, 1.0], [0.0, np.log(3.0)], [2.0, -6.0]))
    out = aft_simple(q, k, v, backend="ref").ravel()
    sig1 = 1 / (1 + np.exp(-1.0))
    np.testing.assert_allclose(out, [0.5 * 2.0, sig1 * (2.0 - 18.0) / 4.0], rtol=1e-15)


def test_aft_control_without_rescale_is_rejected():
    k = np.linspace(0, 5, 8).reshape(1, 8, 1, 1)
    q, v = np.zeros_like(k), np.ones_like(k) * np.arange(1, 9).reshape(1, 8, 1, 1)
    ref, _ = aft_simple_recurrent(q, k, v)
    bad, _ = aft_simple_recurrent(q, k, v, rescale_num=False)
    assert not compare(bad, ref, dtype=np.float64).ok


@pytest.mark.parametrize("cid", ["ssm.gateloop-three-forms", "ssm.aft-simple-recurrent"])
def test_claims_hold_and_controls_are_rejected(cid):
    r = run_claim(get(cid), samples=3, seed=7)
    assert r.holds, r.detail
    assert r.negative_control_rejected and r.control_margin > 1e3, r.control_detail
    assert r.proved is not False


def test_extreme_decays_underflow_the_gate_products():
    p = make_gateloop_inputs(np.random.default_rng(0), length=40, decay="extreme")
    assert np.abs(p["a"]).max() <= 1.0 and np.abs(p["a"]).min() < 1e-20
    prods = np.cumprod(p["a"], axis=1)  # the ratio-of-cumulative-products form would divide these
    assert np.any(prods == 0)


@pytest.mark.parametrize("dk", [1, 4, 16])
def test_gateloop_inputs_follow_their_stated_distribution(dk):
    """q, k ~ N(0, 1/dk), v ~ N(0, 1), |a| in [0.5, 1] (moderate): the logit scale the claims rely on."""
    p = make_gateloop_inputs(np.random.default_rng(dk), batch=4, length=512, heads=2, dk=dk, dv=3)
    for name in ("q", "k"):
        assert abs(p[name].var() * dk - 1.0) < 0.1, (name, p[name].var() * dk)
    assert abs(p["v"].var() - 1.0) < 0.1
    mod = np.abs(p["a"])
    assert mod.min() >= 0.5 and mod.max() <= 1.0
