"""Decoding memory (:mod:`theorylab.ssm.recurrent_state`): streamed = full sequence; bytes carried per token."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.ssm.gated_linear import make_gateloop_inputs
from theorylab.ssm.recurrent_state import FORMS, RECURRENT_FORMS, decode, full_sequence, held_bytes
from theorylab.testing import seeds
from theorylab.tolerances import assert_close

BACKENDS = [
    "ref",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")),
    "torch",
]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", RECURRENT_FORMS)
@given(seed=seeds, L=st.integers(1, 12), h=st.integers(1, 3), d=st.sampled_from([1, 2, 3]))
def test_streamed_equals_full_sequence_with_constant_state(backend, form, seed, L, h, d):
    p = make_gateloop_inputs(np.random.default_rng(seed), length=L, heads=h, dk=d, dv=d)
    y, held = decode(form, p["q"], p["k"], p["v"], p["a"], backend=backend)
    assert_close(y, full_sequence(form, p["q"], p["k"], p["v"], p["a"]), dtype=np.float64)
    assert np.all(held == held[0])


def test_bytes_by_hand():
    # h = 2, d = 3, float64: [S | z] is 2 * 3 * 4 * 8 bytes; GateLoop H complex 2 * 3 * 3 * 16; AFT [ℓ, μ] 2 * 3 * 2 * 8;
    # HLA (S, C, G) 3 * 2 * 3 * 3 * 8; the KV cache 2 * t * 2 * 3 * 8 after t tokens
    p = make_gateloop_inputs(np.random.default_rng(0), length=5, heads=2, dk=3, dv=3)
    want = {"linear attention": 192, "GateLoop": 288, "AFT-simple": 96, "HLA (2nd order)": 432}
    for form, nbytes in want.items():
        assert list(decode(form, p["q"], p["k"], p["v"], p["a"])[1]) == [nbytes] * 5, form
    assert list(decode("softmax KV cache", p["q"], p["k"], p["v"])[1]) == [96 * t for t in range(1, 6)]
    _, held = decode("linear attention", p["q"], p["k"], p["v"], keep_history=True)
    assert list(held) == [192 + 16 * t for t in range(1, 6)]  # one float64 per head per token
    assert held_bytes((np.zeros(3), np.zeros((2, 2), np.float32))) == 24 + 16


@given(seed=seeds, L=st.integers(1, 20), scale=st.sampled_from([1.0, 30.0, 300.0]))
def test_softmax_decoder_at_large_logits(seed, L, scale):
    """Logits ~1e4 at scale 300: e^s overflows without the max shift."""
    p = make_gateloop_inputs(np.random.default_rng(seed), length=L, heads=2, dk=3, dv=3)
    q, k = p["q"] * scale, p["k"] * scale
    y, _ = decode("softmax KV cache", q, k, p["v"])
    ref = full_sequence("softmax KV cache", q, k, p["v"])
    assert np.all(np.isfinite(ref))
    assert_close(y, ref, dtype=np.float64)


def test_claim_holds_and_control_is_rejected():
    r = run_claim(get("ssm.recurrent-state-is-constant"), samples=1, seed=5)
    assert r.holds, r.detail
    assert r.negative_control_rejected and r.control_margin > 2, r.control_detail
    assert any(b.startswith("GateLoop[") for b in r.backends)


def test_unknown_form():
    with pytest.raises(ValueError, match="form must be one of"):
        decode("lstm", np.zeros((1, 2, 1, 1)), np.zeros((1, 2, 1, 1)), np.zeros((1, 2, 1, 1)))
    assert "softmax KV cache" in FORMS
