"""Claims of :mod:`theorylab.icl.predictors`: checks, negative controls, registration.

* ``icl.sherman-morrison-ridge`` -- the public :func:`ridge_predict` with ``prefixes=True`` on
  every backend (each runs the Sherman–Morrison recursion: numpy loop, compiled, torch)
  equals closed-form ridge, one solve (XⱼᵀXⱼ + λI)w = Xⱼᵀyⱼ per prefix j, at every prefix;
  ``prefixes=False`` equals the last prefix.  Control: the recursion with the gain
  P_{j−1}x_j instead of P_j x_j = P_{j−1}x_j/(1 + x_jᵀP_{j−1}x_j) (the denominator dropped
  from the weight update, kept in the P update).
* ``icl.ridge-is-bayes-posterior-mean`` -- :func:`ridge_predict` with λ = σ²/τ² and
  :func:`bayes_predict` (Kalman covariance recursion, Σ_0 = τ²I) on every backend equal the
  posterior mean written in function-space form τ² X_qXᵀ(τ²XXᵀ + σ²I)⁻¹y (a k x k solve,
  no d x d matrix), at every prefix.  Control: λ = σ/τ (the square missing), with σ/τ at
  least a factor 2 from 1.

Tolerance: the float64 policy 1e-10.  Error model: the recursion and the solves lose about
eps·cond(XᵀX + λI) <= eps·(1 + k·max|x|²/λ); with λ >= 0.02, k <= 48 and d <= 7 that is
below 1e-12 (measured: < 1e-13).
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Verdict, register
from .predictors import BACKENDS, bayes_predict, make_inputs, ridge_closed_form, ridge_predict

AKYUREK = Paper("What learning algorithm is in-context learning? Investigations with linear models", 2022,
                "2211.15661", index=34)
MODULE, TEST = "theorylab/icl/predictors.py", "tests/icl/test_predictors.py"
DIMS = (1, 2, 3, 5, 7)
_TOP = {"quick": dict(batch=3, k=24, m=4), "full": dict(batch=8, k=48, m=8)}


def draw_sizes(rng, size, *, min_k=1) -> dict:
    """Awkward random sizes: k = 1 possible, distinct small d, one or two leading batch dims."""
    top = _TOP[size]
    lead = int(rng.integers(1, top["batch"] + 1))
    batch = (lead,) if rng.random() < 0.5 else (lead, int(rng.integers(1, 3)))
    return dict(batch=batch, k=int(rng.integers(min_k, top["k"] + 1)), d=int(rng.choice(DIMS)),
                m=int(rng.integers(1, top["m"] + 1)))


def _flat(p):
    """X, y, Xq as (B, k, d), (B, k), (B, m, d)."""
    X, y, Xq = p["X"], p["y"], p["Xq"]
    k, d = X.shape[-2:]
    return X.reshape(-1, k, d), y.reshape(-1, k), Xq.reshape(-1, Xq.shape[-2], d)


def gain_without_denominator(X, y, Xq, lam):
    """WRONG on purpose: w_j = w_{j−1} + P_{j−1}x_j e_j (the 1/(1 + xᵀPx) dropped from the gain)."""
    B, k, d = X.shape
    P = np.broadcast_to(np.eye(d) / lam, (B, d, d)).copy()
    w = np.zeros((B, d))
    out = np.empty((B, k, Xq.shape[1]))
    for j in range(k):
        x = X[:, j]
        Px = np.einsum("bij,bj->bi", P, x)
        s = 1.0 + np.einsum("bi,bi->b", x, Px)
        w = w + Px * (y[:, j] - np.einsum("bi,bi->b", x, w))[:, None]
        P = P - Px[:, :, None] * Px[:, None, :] / s[:, None, None]
        out[:, j] = np.einsum("bmd,bd->bm", Xq, w)
    return out


def _sm_verdict(rng, size, control):
    sz = draw_sizes(rng, size)
    lam = float(np.exp(rng.uniform(np.log(0.1), np.log(10.0))))
    p = make_inputs(rng, **sz, noise=float(rng.choice([0.0, 0.1, 1.0])))
    X, y, Xq = _flat(p)
    sizes = {**sz, "lam": round(lam, 4)}
    ref = ridge_closed_form(X, y, Xq, lam).reshape(p["y"].shape + (Xq.shape[1],))  # (..., k, m)
    if control:
        bad = gain_without_denominator(X, y, Xq, lam).reshape(ref.shape)
        return identity_verdict(bad, ref, dtype=np.float64, sizes=sizes, what="gain P_{j-1}x vs closed-form ridge")
    parts = {}
    for b in check_backends(BACKENDS):
        out = call_backend(ridge_predict, b, p["X"], p["y"], p["Xq"], lam, prefixes=True)
        last = call_backend(ridge_predict, b, p["X"], p["y"], p["Xq"], lam)
        parts[b] = Verdict.combine({
            "prefixes": identity_verdict(out, ref, dtype=np.float64, backend=b, sizes=sizes,
                                         what=f"ridge_predict[{b}] every prefix vs one solve per prefix"),
            "last": identity_verdict(last, ref[..., -1, :], dtype=np.float64, backend=b, sizes=sizes,
                                     what=f"ridge_predict[{b}] vs closed form at k")}, sizes=sizes)
    return Verdict.combine(parts, sizes=sizes)


def posterior_mean_function_space(X, y, Xq, noise, tau):
    """τ² X_q Xⱼᵀ(τ²XⱼXⱼᵀ + σ²I)⁻¹yⱼ per prefix j (the Gaussian-process form of the posterior mean)."""
    B, k, d = X.shape
    out = np.empty((B, k, Xq.shape[1]))
    for j in range(k):
        Xj, yj = X[:, : j + 1], y[:, : j + 1]
        Kj = tau**2 * np.einsum("bid,bjd->bij", Xj, Xj) + noise**2 * np.eye(j + 1)  # (B, j+1, j+1)
        alpha = np.linalg.solve(Kj, yj[..., None])[..., 0]
        out[:, j] = tau**2 * np.einsum("bmd,bjd,bj->bm", Xq, Xj, alpha)
    return out


def _bayes_verdict(rng, size, control):
    sz = draw_sizes(rng, size)
    noise, tau = float(rng.uniform(0.3, 2.0)), float(rng.uniform(0.5, 2.0))
    if control:  # keep σ/τ at least a factor 2 from 1, where λ = σ/τ and σ²/τ² differ
        tau = noise * float(rng.choice([0.25, 0.5, 2.0, 4.0])) * float(rng.uniform(0.8, 1.0))
    p = make_inputs(rng, **sz, noise=noise, tau=tau)
    X, y, Xq = _flat(p)
    sizes = {**sz, "noise": round(noise, 4), "tau": round(tau, 4)}
    ref = posterior_mean_function_space(X, y, Xq, noise, tau).reshape(p["y"].shape + (Xq.shape[1],))
    if control:
        bad = call_backend(ridge_predict, "ref", p["X"], p["y"], p["Xq"], noise / tau, prefixes=True)
        return identity_verdict(bad, ref, dtype=np.float64, sizes=sizes, what="ridge with λ = σ/τ vs posterior mean")
    parts = {}
    for b in check_backends(BACKENDS):
        r = call_backend(ridge_predict, b, p["X"], p["y"], p["Xq"], noise**2 / tau**2, prefixes=True)
        m = call_backend(bayes_predict, b, p["X"], p["y"], p["Xq"], noise, tau, prefixes=True)
        parts[f"ridge_predict/{b}"] = identity_verdict(r, ref, dtype=np.float64, backend=b, sizes=sizes,
                                                       what=f"ridge_predict[{b}] λ=σ²/τ² vs τ²XqXᵀ(τ²XXᵀ+σ²I)⁻¹y")
        parts[f"bayes_predict/{b}"] = identity_verdict(m, ref, dtype=np.float64, backend=b, sizes=sizes,
                                                       what=f"bayes_predict[{b}] vs τ²XqXᵀ(τ²XXᵀ+σ²I)⁻¹y")
    return Verdict.combine(parts, sizes=sizes)


register(Claim(
    id="icl.sherman-morrison-ridge", paper=AKYUREK, kind="identity",
    statement="Ridge regression at every prefix j, w_j = (X_jᵀX_j + λI)⁻¹X_jᵀy_j, is reached by rank-one updates: "
    "P_0 = I/λ, w_0 = 0, P_j = P_{j-1} − P_{j-1}x_jx_jᵀP_{j-1}/(1 + x_jᵀP_{j-1}x_j), "
    "w_j = w_{j-1} + P_j x_j (y_j − x_jᵀw_{j-1}) (Sherman–Morrison; Akyürek et al.'s construction).",
    check=lambda rng, size="quick": _sm_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _sm_verdict(rng, size, True),
    experiment="icl_constructions", module=MODULE, test=TEST, samples=4,
    controls="gain P_{j-1}x_j without the 1/(1 + xᵀPx)"))

register(Claim(
    id="icl.ridge-is-bayes-posterior-mean", paper=AKYUREK, kind="identity",
    statement="Under w ~ N(0, τ²I) and y = Xw + ε, ε ~ N(0, σ²I), the posterior mean "
    "τ²Xᵀ(τ²XXᵀ + σ²I)⁻¹y equals ridge regression (XᵀX + λI)⁻¹Xᵀy with λ = σ²/τ², at every prefix.",
    check=lambda rng, size="quick": _bayes_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _bayes_verdict(rng, size, True),
    experiment="icl_constructions", module=MODULE, test=TEST, samples=4,
    controls="λ = σ/τ (the square missing)"))
