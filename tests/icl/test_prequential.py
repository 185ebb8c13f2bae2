"""Prequential coding and BMA (:mod:`theorylab.icl.prequential`): every backend against the
float64 reference and an independent evidence formula, the complexity law, the BMA bound,
gradients, bad input."""

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from theorylab.claims import get, run_claim
from theorylab.icl import bma_log_loss, complexity_split, log_evidence, make_inputs, prequential_log_loss
from theorylab.icl.prequential import gaussian_task_losses
from theorylab.icl.prequential_claims import (
    average_regret_curve,
    complexity_band,
    complexity_curve,
    neg_log_evidence_slogdet,
    posterior_after_update,
)
from theorylab.testing import seeds
from theorylab.tolerances import assert_close

pytestmark = pytest.mark.usefixtures("one_thread")
sizes = st.fixed_dictionaries({"batch": st.sampled_from(((1,), (3,), (2, 2))), "k": st.integers(1, 20),
                               "d": st.sampled_from((1, 2, 3, 5, 7))})


@pytest.mark.parametrize("backend", ["ref", "torch"])
@given(sz=sizes, seed=seeds, noise=st.sampled_from((0.1, 0.5, 2.0)), tau=st.sampled_from((0.3, 1.0, 3.0)))
@example(sz=dict(batch=(1,), k=1, d=1), seed=0, noise=0.5, tau=1.0)
def test_prequential_code_is_evidence_and_split(backend, sz, seed, noise, tau):
    p = make_inputs(np.random.default_rng(seed), **sz, noise=noise, tau=tau)
    ref = neg_log_evidence_slogdet(p["X"], p["y"], noise, tau)  # (...,)
    out = prequential_log_loss(p["X"], p["y"], noise, tau, backend=backend)
    assert out.shape == p["y"].shape
    assert_close(out.sum(-1), ref, dtype=np.float64)
    assert_close(-log_evidence(p["X"], p["y"], noise, tau, backend=backend), ref, dtype=np.float64)
    train, comp = complexity_split(p["X"], p["y"], noise, tau, backend=backend)
    assert_close(train + comp, ref, dtype=np.float64)


def test_evidence_by_hand():
    # n = 1, d = 1, x = 1: y ~ N(0, τ² + σ²)
    X, y = np.array([[1.0]]), np.array([2.0])
    v = 1.0**2 + 0.5**2
    assert -log_evidence(X, y, 0.5, 1.0, backend="ref") == pytest.approx(0.5 * (math.log(2 * math.pi * v) + 4 / v))
    assert prequential_log_loss(X, y, 0.5, 1.0, backend="torch")[0] == pytest.approx(0.5 * (math.log(2 * math.pi * v) + 4 / v))


def test_off_by_one_control_is_finite_and_wrong(rng):
    p = make_inputs(rng, batch=2, k=10, d=2, noise=0.5)
    bad = posterior_after_update(p["X"], p["y"], 0.5, 1.0).sum(-1)
    ref = neg_log_evidence_slogdet(p["X"], p["y"], 0.5, 1.0)
    assert np.isfinite(bad).all() and np.abs(bad - ref).max() > 1e-2 * np.abs(ref).max()


@pytest.mark.parametrize("d", [1, 3])
def test_complexity_slope_within_band_and_not_d(d):
    ns, comp = complexity_curve(np.random.default_rng(d), d)
    slope = np.polyfit(np.log(ns), comp, 1)[0]
    band = complexity_band(d)
    assert abs(slope - d / 2) <= band < d / 4


@pytest.mark.parametrize("backend", ["ref", "torch"])
@given(seed=seeds, K=st.sampled_from((1, 2, 3, 8)), T=st.integers(1, 40))
def test_bma_telescopes_and_regret_at_most_log_k(backend, seed, K, T):
    rng = np.random.default_rng(seed)
    X, W = rng.standard_normal((T, 2)), rng.standard_normal((K, 2))
    y = 30 * rng.standard_normal(T)  # far from every task: losses in the hundreds
    L = gaussian_task_losses(X, y, W, 0.1)  # (K, T), up to ~1e5 nats
    out = bma_log_loss(L, backend=backend)
    cum = np.cumsum(L, axis=-1)
    tele = -np.logaddexp.reduce(-cum, axis=0) + math.log(K)
    assert_close(np.cumsum(out), tele, dtype=np.float64)
    assert np.all(np.cumsum(out) - cum.min(0) <= math.log(K) + 1e-9 * (1 + cum.max()))


def test_average_regret_and_frozen_control():
    Ts, avg = average_regret_curve(np.random.default_rng(0), 5, 2)
    assert abs(np.polyfit(np.log(Ts), np.log(avg), 1)[0] + 1) < 0.05
    Ts, frozen = average_regret_curve(np.random.default_rng(0), 5, 2, frozen=True)
    assert abs(np.polyfit(np.log(Ts), np.log(frozen), 1)[0]) < 0.5


def test_gradients_of_torch_paths(rng):
    p = make_inputs(rng, batch=2, k=4, d=2, noise=0.5)
    X, y = (torch.from_numpy(p[a]).requires_grad_(True) for a in ("X", "y"))
    assert torch.autograd.gradcheck(lambda X, y: prequential_log_loss(X, y, 0.5, 1.0, backend="torch"), [X, y])
    assert torch.autograd.gradcheck(lambda X, y: log_evidence(X, y, 0.5, 1.0, backend="torch"), [X, y])
    L = torch.from_numpy(rng.standard_normal((3, 5)) ** 2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda L: bma_log_loss(L, backend="torch"), [L])


def test_bad_input(rng):
    p = make_inputs(rng, batch=2, k=4, d=3)
    with pytest.raises(ValueError, match=r"y must have shape \(2, 4\)"):
        prequential_log_loss(p["X"], p["y"][:, :2], 1.0, 1.0)
    with pytest.raises(ValueError, match="noise must be a finite number > 0"):
        log_evidence(p["X"], p["y"], 0.0, 1.0)
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        complexity_split(p["X"], p["y"], 1.0, -1.0)
    with pytest.raises(ValueError, match="log_prior must be normalized"):
        bma_log_loss(np.ones((3, 4)), np.zeros(3))
    with pytest.raises(ValueError, match=r"log_prior must be a finite vector of shape \(3,\)"):
        bma_log_loss(np.ones((3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="losses contains NaN"):
        bma_log_loss(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="requires grad"):
        prequential_log_loss(torch.from_numpy(p["X"]).requires_grad_(True), torch.from_numpy(p["y"]), 1.0, 1.0,
                             backend="ref")


@pytest.mark.parametrize("cid", ["icl.prequential-code-is-evidence", "icl.prequential-complexity-d-log-n",
                                 "icl.bma-regret-at-most-log-k", "icl.bma-average-regret-1-over-t"])
def test_claims_hold_and_controls_rejected(cid):
    r = run_claim(get(cid), samples=2, seed=7)
    assert r.ok and r.control_status == "rejected" and r.control_margin > 1.2, (cid, r.detail, r.control_detail)
