"""Second-order HLA (#14, :mod:`theorylab.ssm.hla`): streaming = materialized = chunk-parallel; the claim.

Sides are named ``ref`` (float64 recurrence or materialized form) and ``out`` (the form under test).
"""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.ssm.hla import hla2, hla2_materialized, hla2_recurrent
from theorylab.ssm.hla_claims import hla_proof, prefix_statistics
from theorylab.ssm.linear_forms import make_linear_attention_inputs
from theorylab.testing import linear_attention_sizes, seeds, segmented_run
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


# ---- HLA ---------------------------------------------------------------------------------------
@given(sz=sizes, seed=seeds)
@example(sz=EDGE, seed=0)
@example(sz=ODD, seed=1)
def test_hla_streaming_equals_materialized(sz, seed):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref = hla2_materialized(p["q"], p["k"], p["v"])
    out, _ = hla2_recurrent(p["q"], p["k"], p["v"])
    assert_close(out, ref, dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, chunk=st.integers(1, 17))
@example(sz=ODD, seed=1, chunk=64)
def test_hla_chunk_parallel_equals_serial(backend, sz, seed, chunk):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref, st_ref = hla2_recurrent(p["q"], p["k"], p["v"])
    out, st_out = hla2(p["q"], p["k"], p["v"], chunk_size=chunk, return_final_state=True, backend=backend)
    assert_close(out, ref, dtype=np.float64)
    for a, b in zip(st_out, st_ref):
        assert_close(a, b, dtype=np.float64)
    low = {k: v.astype(np.float32) for k, v in p.items()}
    ref32, _ = hla2_recurrent(*(low[k].astype(np.float64) for k in "qkv"))
    assert_close(hla2(low["q"], low["k"], low["v"], chunk_size=chunk, backend=backend), ref32, dtype=np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, cut=st.floats(0, 1))
def test_hla_segmented_equals_full(backend, sz, seed, cut):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    ref, st_ref = hla2(**p, return_final_state=True, backend=backend)
    out, st_ = segmented_run(hla2, p, int(round(cut * sz["length"])), backend=backend, chunk_size=3)
    assert_close(out, ref, dtype=np.float64)
    for a, b in zip(st_, st_ref):
        assert_close(a, b, dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, cuts=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_hla_segment_summaries_compose(backend, sz, seed, cuts):
    """The library's summaries of separate segments (each run from the zero state) compose by
    (S, C, G) ∘ (S', C', G') = (S + S', C + C', G + G' + S C') into the whole run's, in either
    bracketing (associativity), and equal the prefix sums written out."""
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    a, b = sorted(int(round(c * sz["length"])) for c in cuts)

    def summary(sl):
        seg = {k: v[:, sl] for k, v in p.items()}
        if seg["q"].shape[1] == 0:
            dk, dv = sz["dk"], sz["dv"]
            z = np.zeros
            return z((sz["batch"], sz["heads"], dk, dk)), z((sz["batch"], sz["heads"], dk, dv)), z((sz["batch"], sz["heads"], dk, dv))
        return hla2(**seg, return_final_state=True, backend=backend)[1]

    def comb(x, y):
        return x[0] + y[0], x[1] + y[1], x[2] + y[2] + x[0] @ y[1]

    s1, s2, s3 = summary(slice(0, a)), summary(slice(a, b)), summary(slice(b, None))
    whole = prefix_statistics(p["q"], p["k"], p["v"])
    for composed in (comb(comb(s1, s2), s3), comb(s1, comb(s2, s3))):
        for x, y in zip(composed, whole):
            assert_close(x, y, dtype=np.float64)


def test_hla_control_without_correction_is_rejected(rng):
    p = make_linear_attention_inputs(rng, length=5)
    bad, _ = hla2_recurrent(p["q"], p["k"], p["v"], masked=False)
    assert not compare(bad, hla2_materialized(p["q"], p["k"], p["v"]), dtype=np.float64).ok


def test_hla_sympy_proof():
    assert hla_proof().proved


def test_hla_torch_float32_tensor_roundtrip(rng):
    p = make_linear_attention_inputs(rng, length=10, dtype=np.float32)
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    y, state = hla2(**t, return_final_state=True)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and len(state) == 3
    assert all(isinstance(s, torch.Tensor) for s in state)


def test_claim_holds_and_control_is_rejected():
    r = run_claim(get("ssm.hla-second-order-streaming"), samples=3, seed=7)
    assert r.holds, r.detail
    assert r.negative_control_rejected and r.control_margin > 1e3, r.control_detail
    assert r.proved


@pytest.mark.parametrize("backend", BACKENDS)
@given(sz=sizes, seed=seeds, scale=st.sampled_from([30.0, 100.0]))
def test_hla_at_large_scales(backend, sz, seed, scale):
    p = make_linear_attention_inputs(np.random.default_rng(seed), **sz)
    q, k = p["q"] * scale, p["k"] * scale
    assert_close(hla2(q, k, p["v"], chunk_size=4, backend=backend), hla2_materialized(q, k, p["v"]), dtype=np.float64)
