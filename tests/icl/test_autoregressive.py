"""AR(p) forecasting in context (:mod:`theorylab.icl.autoregressive`): every backend against the float64
reference on awkward sizes, independent references (one lstsq per context, the library's LSA layer, the
companion matrix power), training determinism, torch gradients, bad input, and the three claims.

Sides are named ``ref`` (reference or independent computation) and ``out`` (under test).
"""

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.backends import numba_available
from theorylab.claims import get, run_claim
from theorylab.icl import cot_rollout, ls_forecast, lsa_coefficients, lsa_forecast, lsa_forward, make_ar_inputs, train_lsa
from theorylab.icl.autoregressive import (companion, draw_coefficients, excess_sq, lag_examples, ls_forecast_ref,
                                          spectral_radius)
from theorylab.icl.autoregressive_claims import rollout_rate
from theorylab.icl.constructions import prompt_tokens
from theorylab.testing import seeds
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")

LS_BACKENDS = ["ref", pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="numba not installed")),
               "torch"]
BATCH = st.sampled_from(((1,), (2,), (3,), (2, 3)))


def _weights(rng, p):
    return [rng.standard_normal((p + 1, p + 1)) * 0.5 for _ in range(3)]


@given(p=st.integers(1, 5), seed=seeds)
def test_draw_coefficients_are_stable_with_radius_in_range(p, seed):
    a = draw_coefficients(np.random.default_rng(seed), p, batch=(7,), radius=(0.3, 0.6))
    rho = spectral_radius(a)
    assert a.shape == (7, p) and np.all(rho >= 0.3 - 1e-9) and np.all(rho <= 0.6 + 1e-9)


def test_make_inputs_follows_the_recursion(rng):
    d = make_ar_inputs(rng, batch=(2, 3), T=30, p=3, noise=0.5)
    x, a = d["series"], d["coeffs"]
    Z, t = lag_examples(x, 3)
    resid = t - np.einsum("...ni,...i->...n", Z, a)  # σ ε: mean ~0, std ~0.5
    assert x.shape == (2, 3, 30) and abs(resid.std() - 0.5) < 0.1
    assert Z[0, 0, 4].tolist() == [x[0, 0, 6], x[0, 0, 5], x[0, 0, 4]]  # z_{p+i} = (x_{p+i−1}, ..., x_i)


@pytest.mark.parametrize("backend", LS_BACKENDS)
@given(batch=BATCH, p=st.integers(1, 4), extra=st.integers(0, 12), seed=seeds)
@example(batch=(1,), p=1, extra=0, seed=0)  # T = p + 2: one example
@example(batch=(2, 3), p=3, extra=1, seed=1)  # contexts shorter than p: minimum norm
def test_ls_forecast_matches_one_lstsq_per_context(backend, batch, p, extra, seed):
    x = make_ar_inputs(np.random.default_rng(seed), batch=batch, T=p + 2 + extra, p=p)["series"]
    ref = ls_forecast_ref(x, p)
    out = ls_forecast(x, p, backend=backend)
    assert out.shape == batch + (extra + 1,) and out.dtype == np.float64
    assert_close(out, ref, rtol=1e-8, name=f"ls_forecast[{backend}]")  # eps·cond² at n = p (the interpolation peak)


@pytest.mark.parametrize("backend", ["ref", "torch"])
@given(batch=BATCH, p=st.integers(1, 4), extra=st.integers(0, 9), seed=seeds)
@example(batch=(1,), p=1, extra=0, seed=0)
def test_lsa_forecast_is_the_lsa_layer_at_every_context(backend, batch, p, extra, seed):
    rng = np.random.default_rng(seed)
    x = make_ar_inputs(rng, batch=batch, T=p + 2 + extra, p=p)["series"]
    W = _weights(rng, p)
    out = lsa_forecast(x, p, *W, backend=backend)
    Z, t = lag_examples(x, p)
    ref = np.stack([lsa_forward(prompt_tokens(Z[..., :n, :], t[..., :n], Z[..., n:n + 1, :]), *W, n_context=n,
                                backend="ref")[..., n, p] for n in range(1, extra + 2)], -1)
    assert out.shape == ref.shape
    assert_close(out, ref, dtype=np.float64, name=f"lsa_forecast[{backend}]")
    # the recursion the layer applies after all tokens: forecasting one step past the end
    co = lsa_coefficients(x, p, *W, backend=backend)
    n = Z.shape[-2]
    nxt = np.concatenate([x[..., -1:], x[..., -p:][..., ::-1][..., :-1]], -1) if p > 1 else x[..., -1:]
    layer = lsa_forward(prompt_tokens(Z, t, nxt[..., None, :]), *W, n_context=n, backend="ref")[..., n, p]
    assert_close(np.einsum("...i,...i->...", co, nxt), layer, dtype=np.float64)


@pytest.mark.parametrize("backend", ["ref", "torch"])
@given(p=st.integers(1, 4), H=st.sampled_from((1, 2, 7, 30)), seed=seeds)
def test_cot_rollout_is_the_companion_power(backend, p, H, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, p + 2))
    a = draw_coefficients(rng, p, batch=(3,), radius=(0.2, 0.95))
    out = cot_rollout(x, a, H, backend=backend)
    s0 = x[:, -p:][:, ::-1]  # (x_T, ..., x_{T−p+1})
    ref = np.stack([(np.linalg.matrix_power(companion(a), h) @ s0[..., None])[:, 0, 0] for h in range(1, H + 1)], -1)
    assert_close(out, ref, dtype=np.float64, name=f"cot_rollout[{backend}]")


def test_rollout_rate_recovers_a_known_radius():
    a = np.array([[0.5, 0.3], [0.0, 0.0]])
    a[1] = draw_coefficients(np.random.default_rng(0), 2, radius=(0.7, 0.7))
    roll = cot_rollout(np.ones((2, 2)), a, 100, backend="ref")
    assert np.allclose(rollout_rate(roll, 2), spectral_radius(a), rtol=0.02)


def test_excess_of_the_oracle_is_zero_and_of_ls_falls(rng):
    d = make_ar_inputs(rng, batch=200, T=120, p=2)
    Z, _ = lag_examples(d["series"], 2)
    oracle = np.einsum("bni,bi->bn", Z[:, 1:], d["coeffs"])
    assert np.all(excess_sq(oracle, d["series"], d["coeffs"], 2) == 0)
    ex = excess_sq(ls_forecast(d["series"], 2, backend="numba" if numba_available() else "ref"), d["series"], d["coeffs"], 2).mean(0)
    assert ex[15] > 2 * ex[110]  # p/n: n = 16 vs n = 111


def test_training_is_deterministic_and_learns():
    kw = dict(T=40, steps=30, batch=16, lr=0.05, n_min=8)
    one = train_lsa(np.random.default_rng(5), 2, **kw)
    two = train_lsa(np.random.default_rng(5), 2, **kw)
    for key in ("WQ", "WK", "WV", "loss"):
        np.testing.assert_array_equal(one[key], two[key])
    assert one["WQ"].shape == (3, 3) and one["loss"][-5:].mean() < one["loss"][:5].mean()
    assert torch.get_num_threads() == 1  # restored (the one_thread fixture set 1)


def test_torch_gradients_match_central_differences(rng):
    x = torch.from_numpy(make_ar_inputs(rng, batch=2, T=7, p=2)["series"]).requires_grad_(True)
    W = [torch.from_numpy(w).requires_grad_(True) for w in _weights(rng, 2)]
    assert torch.autograd.gradcheck(lambda x, *W: lsa_forecast(x, 2, *W), [x, *W], eps=1e-6, atol=1e-7, rtol=1e-6)
    a = torch.tensor([[0.5, -0.2], [0.1, 0.3]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a: cot_rollout(x, a, 4), [x, a], eps=1e-6, atol=1e-7, rtol=1e-6)
    assert torch.autograd.gradcheck(lambda x: ls_forecast(x, 2), [x], eps=1e-6, atol=1e-6, rtol=1e-5)


def test_bad_input_names_the_argument(rng):
    x = make_ar_inputs(rng, batch=2, T=10, p=2)["series"]
    W = _weights(rng, 2)
    with pytest.raises(ValueError, match="T >= p \\+ 2"):
        ls_forecast(x[:, :3], 2)
    with pytest.raises(ValueError, match="p must be >= 1"):
        ls_forecast(x, 0)
    with pytest.raises(ValueError, match="WQ must have shape \\(3, 3\\)"):
        lsa_forecast(x, 2, W[0][:2], W[1], W[2])
    bad = x.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="series contains NaN"):
        lsa_forecast(bad, 2, *W)
    with pytest.raises(TypeError, match="series must have a floating dtype"):
        ls_forecast(x.astype(np.int64), 2)
    with pytest.raises(ValueError, match="leading dims of coeffs"):
        cot_rollout(x, np.zeros((3, 2)), 5)
    with pytest.raises(ValueError, match="horizon must be >= 1"):
        cot_rollout(x, np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="stable recursion"):
        make_ar_inputs(rng, batch=1, T=10, p=1, coeffs=[1.2])
    with pytest.raises(ValueError, match="radius"):
        draw_coefficients(rng, 2, radius=(0.5, 1.0))
    with pytest.raises(ValueError, match="unknown backend"):
        lsa_forecast(x, 2, *W, backend="numba")


@pytest.mark.parametrize("cid", ["icl.ar-lsa-no-better-than-least-squares", "icl.ar-excess-mse-shrinks-with-context",
                                 "icl.ar-cot-rollout-collapses"])
def test_claims_hold_and_controls_are_rejected_by_magnitude(cid):
    r = run_claim(get(cid), samples=1, seed=11)
    assert r.ok and r.control_status == "rejected" and r.control_margin > 3, (cid, r.detail, r.control_detail)
    assert r.statistics and r.control_statistics  # the statistic, its interval and threshold are reported
