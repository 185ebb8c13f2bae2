"""Whole layers as implicit attention (#6): forward(x) == Σ_c W_out[c] Ĥ_c(x) v_c."""

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.ssm.implicit_attention import (
    LAYERS,
    _causal_conv,
    _toeplitz,
    apply_implicit_attention,
    forward,
    implicit_attention,
    init_params,
)
from theorylab.tolerances import assert_close

sizes = st.fixed_dictionaries(
    {"batch": st.integers(1, 2), "length": st.integers(1, 23), "d_model": st.sampled_from([1, 2, 3, 5]),
     "d_inner": st.sampled_from([1, 2, 3, 7]), "state": st.sampled_from([1, 2, 5]), "conv_width": st.integers(1, 5)}
)


@pytest.mark.parametrize("layer", LAYERS)
@given(sz=sizes, seed=st.integers(0, 2**32 - 1), conv=st.booleans(), gate=st.booleans())
@example(sz=dict(batch=1, length=1, d_model=1, d_inner=1, state=1, conv_width=1), seed=0, conv=True, gate=True)
@example(sz=dict(batch=2, length=23, d_model=3, d_inner=7, state=5, conv_width=4), seed=1, conv=True, gate=True)
def test_layer_equals_its_implicit_attention(layer, sz, seed, conv, gate):
    rng = np.random.default_rng(seed)
    p = init_params(layer, rng, d_model=sz["d_model"], d_inner=sz["d_inner"], state=sz["state"], conv_width=sz["conv_width"])
    x = rng.standard_normal((sz["batch"], sz["length"], sz["d_model"]))
    ref = forward(layer, x, p, conv=conv, gate=gate)
    H, v = implicit_attention(layer, x, p, conv=conv, gate=gate)
    assert H.shape == (sz["batch"], sz["d_inner"], sz["length"], sz["length"])
    assert np.all(np.triu(H, 1) == 0), "implicit attention must be causal"
    assert_close(apply_implicit_attention(H, v, p), ref, dtype=np.float64)


@given(seed=st.integers(0, 1000), L=st.integers(1, 12), k=st.integers(1, 6))
def test_toeplitz_is_the_causal_conv(seed, L, k):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, k))
    v = rng.standard_normal((1, L, 3))
    ref = _causal_conv(v, w)
    out = np.einsum("cts,bsc->btc", _toeplitz(w, L), v)
    assert_close(out, ref, dtype=np.float64)


def test_rwkv_rows_are_a_softmax_and_stay_finite_for_long_sequences(rng):
    p = init_params("rwkv", rng, d_model=3, d_inner=4)
    p["W_k"] = p["W_k"] * 200.0  # huge keys: exp would overflow without the running max
    x = rng.standard_normal((1, 300, 3))
    H, v = implicit_attention("rwkv", x, p, gate=False)
    assert np.all(np.isfinite(H))
    np.testing.assert_allclose(H.sum(-1), 1.0, rtol=1e-12)
    y = forward("rwkv", x, p, gate=False)
    assert np.all(np.isfinite(y))
    assert_close(apply_implicit_attention(H, v, p), y, dtype=np.float64)


@pytest.mark.parametrize("layer", ["mamba", "griffin"])
def test_ablations_change_the_layer(layer, rng):
    p = init_params(layer, rng, conv_width=4)
    x = rng.standard_normal((1, 10, 4))
    full = forward(layer, x, p)
    assert np.abs(full - forward(layer, x, p, conv=False)).max() > 1e-3
    assert np.abs(full - forward(layer, x, p, gate=False)).max() > 1e-3


def test_claim_holds_and_control_is_rejected():
    r = run_claim(get("ssm.implicit-attention-layers"), samples=3, seed=3)
    assert r.holds and r.negative_control_rejected and r.max_error < 1e-12


def test_bad_input(rng):
    p = init_params("mamba", rng)
    with pytest.raises(ValueError, match="layer must be one of"):
        forward("lstm", np.zeros((1, 2, 4)), p)
    with pytest.raises(ValueError, match="layer must be one of"):
        init_params("lstm", rng)
    with pytest.raises(ValueError, match="x has d_model 3"):
        forward("mamba", np.zeros((1, 2, 3)), p)
    with pytest.raises(ValueError, match="x must be a non-empty"):
        implicit_attention("mamba", np.zeros((1, 0, 4)), p)
    with pytest.raises(ValueError, match="NaN"):
        forward("mamba", np.full((1, 2, 4), np.nan), p)
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        forward("mamba", [[0.0] * 4], p)
