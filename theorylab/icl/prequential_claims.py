"""Claims of :mod:`theorylab.icl.prequential`: checks, negative controls, registration.

* ``icl.prequential-code-is-evidence`` (identity, 1e-10): Σ_j of :func:`prequential_log_loss`
  (every backend) = −log N(y; 0, τ²XXᵀ + σ²I) computed here by ``slogdet`` and a solve; the
  public :func:`log_evidence` (every backend) is checked against the same.  Control: each y_j
  predicted by the posterior that has already seen (x_j, y_j) (an off-by-one prefix).
* ``icl.prequential-complexity-d-log-n`` (complexity): (a) training error + complexity from
  :func:`complexity_split` (every backend) = −(Σ prequential losses) at n = 96 (1e-10);
  (b) the complexity, averaged over B = 32 prompts, fitted against log n over
  n = 1024·2^i, i = 0..6 (64x), has slope d/2 within the band of :func:`complexity_band`.
  Control: the law d·log n (the ½ dropped, as in "d log n bits").
* ``icl.bma-regret-at-most-log-k`` (identity of a bound): on every sequence -- drawn from a
  task, switching task half-way, alternating tasks every step, and far outliers (|y| ~ 1e3σ,
  losses ~ 1e6 nats, which overflow a log-sum-exp without its max shift) -- the per-step BMA
  losses of :func:`bma_log_loss` (every backend) telescope to −log((1/K) Σ_k e^{−L_k(T)})
  (1e-10) and the regret Σ loss − min_k L_k(T) <= log K at every T.  The statistic is
  max_T regret_T / log K against 1 + 8·T·eps·max L / log K (the rounding of the running sums).
  Control: a valid but non-uniform prior π_k ∝ 2^{−k} with the data drawn from the least
  likely task, whose regret tends to log(1/π_K) > log K.
* ``icl.bma-average-regret-1-over-t`` (complexity): on a sequence drawn from one of K tasks
  whose per-step KL from the true one is >= 4 nats, the average regret regret_T / T fitted
  against T over T = 16·2^i, i = 0..7 (128x), has log-log slope −1 within 0.05.  Band: the
  log-likelihood gap Δ_k(T) ~ T·KL ± √(2T·KL) exceeds 64 − 5·11.3 > 7 nats at T = 16, so
  regret_T ∈ [log K − log(1 + K e^{−7}), log K] and |slope + 1| <= g·max|log(regret_T/log K)|
  <= 0.7·0.011 < 0.01 (g: the fit's sensitivity on the grid); 0.05 leaves 5x.  Control:
  weights never updated (the prior used at every step): regret grows like T, slope 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Verdict, register
from .predictors import make_inputs
from .predictors_claims import draw_sizes
from .prequential import BACKENDS, bma_log_loss, complexity_split, gaussian_task_losses, log_evidence, prequential_log_loss

OCCAM = Paper("In-context learning and Occam's razor", 2024, "2410.14086", index=46)
BMA = Paper("What and How does In-Context Learning Learn? Bayesian Model Averaging, Parameterization, and "
            "Generalization", 2023, "2305.19420", index=71)
MODULE, TEST = "theorylab/icl/prequential.py", "tests/icl/test_prequential.py"
EPS = float(np.finfo(np.float64).eps)


def neg_log_evidence_slogdet(X, y, noise, tau):
    """−log N(y; 0, C), C = τ²XXᵀ + σ²I, by slogdet and a solve (written here, not the library's Cholesky)."""
    n = X.shape[-2]
    C = tau**2 * X @ np.swapaxes(X, -1, -2) + noise**2 * np.eye(n)
    return 0.5 * (np.einsum("...i,...i->...", y, np.linalg.solve(C, y[..., None])[..., 0])
                  + np.linalg.slogdet(C)[1] + n * math.log(2 * math.pi))


def posterior_after_update(X, y, noise, tau):
    """WRONG on purpose: y_j predicted with the posterior that has already seen (x_j, y_j)."""
    *lead, n, d = X.shape
    out = np.empty((*lead, n))
    for j in range(n):
        Xj, yj = X[..., : j + 1, :], y[..., : j + 1]
        A = np.swapaxes(Xj, -1, -2) @ Xj / noise**2 + np.eye(d) / tau**2
        Sig = np.linalg.inv(A)
        mu = (Sig @ (np.swapaxes(Xj, -1, -2) @ yj[..., None]))[..., 0] / noise**2
        x = X[..., j, :]
        s = noise**2 + np.einsum("...i,...ij,...j->...", x, Sig, x)
        e = y[..., j] - np.einsum("...i,...i->...", x, mu)
        out[..., j] = 0.5 * (math.log(2 * math.pi) + np.log(s) + e * e / s)
    return out


def _evidence_verdict(rng, size, control):
    sz = draw_sizes(rng, size)
    noise, tau = float(rng.uniform(0.2, 2.0)), float(rng.uniform(0.3, 3.0))
    p = make_inputs(rng, batch=sz["batch"], k=sz["k"], d=sz["d"], noise=noise, tau=tau)
    X, y = p["X"], p["y"]
    sizes = {"batch": sz["batch"], "n": sz["k"], "d": sz["d"], "noise": round(noise, 3), "tau": round(tau, 3)}
    ref = neg_log_evidence_slogdet(X, y, noise, tau)
    if control:
        return identity_verdict(posterior_after_update(X, y, noise, tau).sum(-1), ref, dtype=np.float64, sizes=sizes,
                                what="posterior after the update vs −log evidence")
    parts = {}
    for b in check_backends(BACKENDS):
        pl = call_backend(prequential_log_loss, b, X, y, noise, tau).sum(-1)
        parts[f"prequential_log_loss/{b}"] = identity_verdict(pl, ref, dtype=np.float64, backend=b, sizes=sizes,
                                                              what=f"Σ prequential_log_loss[{b}] vs −log evidence")
        ev = call_backend(log_evidence, b, X, y, noise, tau)
        parts[f"log_evidence/{b}"] = identity_verdict(-ev, ref, dtype=np.float64, backend=b, sizes=sizes,
                                                      what=f"log_evidence[{b}] vs slogdet form")
    return Verdict.combine(parts, sizes=sizes)


# ---- complexity ~ (d/2) log n ----------------------------------------------------------------
N0, DOUBLINGS, B_PROMPTS, Z = 1024, 6, 32, 4.0
NOISE, TAU = 0.25, 1.0


def fit_sensitivity(ts) -> float:
    """g = Σ|t − t̄| / Σ(t − t̄)²: a least-squares slope over ``ts`` moves by at most g·(max − min) of the values."""
    t = np.asarray(ts, dtype=np.float64)
    c = t - t.mean()
    return float(np.abs(c).sum() / (c * c).sum())


def complexity_band(d, n0=N0, doublings=DOUBLINGS, B=B_PROMPTS, noise=NOISE, tau=TAU, z=Z) -> float:
    """Derived band for |slope − d/2|: C(n) − (d/2) log n = const + R(n) with R(n) from
    (i) ½ log det(XᵀX/n): mean ≈ −d(d+1)/(4n), sd of the B-prompt mean √(2d/(nB))/2;
    (ii) ½ d σ²/(τ²n) (the prior in the log det);
    (iii) (|μ_n|² − |w|²)/(2τ²): 2wᵀδ with δ ~ N(0, σ²I/n), |w| <= τ√(d + z√(2d)), and the
    ridge shrinkage 2σ²|w|²/(τ²n).  Each bounded at z standard deviations at n0; the fitted
    slope moves by at most g·2·max|R|."""
    w2 = tau**2 * (d + z * math.sqrt(2 * d))
    r = (d * (d + 1) / (4 * n0) + z * math.sqrt(2 * d / (n0 * B)) / 2 + 0.5 * d * noise**2 / (tau**2 * n0)
         + (2 * z * math.sqrt(w2) * noise / math.sqrt(n0 * B) + noise**2 * (d + z * math.sqrt(2 * d)) / n0
            + 2 * noise**2 * w2 / (tau**2 * n0)) / (2 * tau**2))
    return fit_sensitivity(np.log(n0 * 2.0 ** np.arange(doublings + 1))) * 2 * r


def complexity_curve(rng, d, *, n0=N0, doublings=DOUBLINGS, B=B_PROMPTS, backend="ref"):
    """(ns, mean complexity over B prompts at each n) for prefixes of one long prompt per batch entry."""
    ns = n0 * 2 ** np.arange(doublings + 1)
    p = make_inputs(rng, batch=B, k=int(ns[-1]), d=d, noise=NOISE, tau=TAU)
    comp = [float(np.mean(call_backend(complexity_split, backend, p["X"][:, :n], p["y"][:, :n], NOISE, TAU)[1]))
            for n in ns]
    return ns, np.array(comp)


def _complexity_verdict(rng, size, control):
    d = int(rng.choice((1, 2, 3, 5, 7)))
    parts = {}
    law = d if control else d / 2
    ns, comp = complexity_curve(rng, d)
    slope = float(np.polyfit(np.log(ns), comp, 1)[0])
    band = complexity_band(d)
    sizes = {"d": d, "n_min": int(ns[0]), "n_max": int(ns[-1]), "prompts": B_PROMPTS}
    parts["slope"] = Verdict.from_error(abs(slope - law), band, backend="slope", sizes=sizes,
                                        detail=f"complexity vs log n: fitted slope {slope:.4f}, law {law} +- {band:.4f}")
    if control:
        return parts["slope"]
    q = make_inputs(rng, batch=2, k=96, d=d, noise=NOISE, tau=TAU)
    ref = call_backend(prequential_log_loss, "ref", q["X"], q["y"], NOISE, TAU).sum(-1)
    for b in check_backends(BACKENDS):
        tr, c = call_backend(complexity_split, b, q["X"], q["y"], NOISE, TAU)
        parts[f"split/{b}"] = identity_verdict(tr + c, ref, dtype=np.float64, backend=b, sizes=sizes,
                                               what=f"training error + complexity [{b}] vs Σ prequential losses")
    return Verdict.combine(parts, sizes=sizes)


# ---- BMA ------------------------------------------------------------------------------------
def _tasks(rng, K, d, kl_min):
    """K task vectors; every other task at per-step KL >= kl_min nats from task 0 (x ~ N(0, I), σ = 1)."""
    W = rng.standard_normal((K, d))
    for k in range(1, K):
        gap = W[k] - W[0]
        W[k] = W[0] + gap / np.linalg.norm(gap) * math.sqrt(2 * kl_min) * float(rng.uniform(1.0, 2.0))
    return W


def bma_sequences(rng, K, d, T):
    """(X, y) for four kinds of sequence over tasks W: drawn from one task, switching, alternating, outliers."""
    W = _tasks(rng, K, d, 0.5)
    X = rng.standard_normal((4, T, d))
    idx = np.zeros((4, T), dtype=int)
    idx[0] = int(rng.integers(K))
    idx[1, T // 2:] = (int(rng.integers(K)) + 1) % K
    idx[2] = np.arange(T) % K
    y = np.einsum("std,std->st", X, W[idx]) + rng.standard_normal((4, T))
    y[3] = 1e3 * rng.standard_normal(T) * float(rng.choice([1.0, -1.0]))  # far from every task
    return W, X, y


def _regret_verdict(rng, size, control):
    K = int(rng.choice((2, 3, 5, 8)))
    d = int(rng.choice((1, 2, 3, 5)))
    T = int(rng.integers(100 if control else 1, 200 if size == "quick" else 800))  # the control needs time to converge
    W, X, y = bma_sequences(rng, K, d, T)
    if control:  # a valid prior π_k ∝ 2^{-k}, but not uniform; the data from its least likely task
        y[:3] = np.einsum("std,d->st", X[:3], W[-1]) + rng.standard_normal((3, T))
    L = gaussian_task_losses(X, y, np.broadcast_to(W, (4, K, d)), 1.0)  # (4, K, T)
    cum = np.cumsum(L, axis=-1)  # L_k(t)
    best = cum.min(axis=-2)  # (4, T)
    log_prior = np.full(K, -math.log(K))
    if control:
        log_prior = -np.arange(1, K + 1) * math.log(2.0)
        log_prior -= np.logaddexp.reduce(log_prior)  # normalized
    sizes = {"K": K, "d": d, "T": T, "sequences": "iid, switching, alternating, outliers"}
    tol = 1.0 + 8 * T * EPS * float(best.max()) / math.log(K)
    parts = {}
    for b in check_backends(BACKENDS) if not control else ["ref"]:
        loss = call_backend(bma_log_loss, b, L, log_prior)  # (4, T)
        regret = np.cumsum(loss, axis=-1) - best
        stat = float(regret.max() / math.log(K))
        parts[f"regret/{b}"] = Verdict.from_error(stat, tol, backend=b, sizes=sizes,
                                                  detail=f"max_T regret_T / log K = {stat:.6f} [{b}]")
        if not control:
            tele = -np.logaddexp.reduce(log_prior[:, None] - cum, axis=-2)  # −log Σ π_0 e^{−L_k(t)}
            parts[f"telescoping/{b}"] = identity_verdict(np.cumsum(loss, axis=-1), tele, dtype=np.float64, backend=b,
                                                         sizes=sizes, what=f"Σ bma loss [{b}] vs −log Σ π e^(−L_k)")
    return Verdict.combine(parts, sizes=sizes)


T_GRID = 16 * 2 ** np.arange(8)


def average_regret_curve(rng, K, d, *, frozen=False, backend="ref"):
    """(T, regret_T / T) on one sequence from task 0 of K tasks at per-step KL >= 4 from it."""
    W = _tasks(rng, K, d, 4.0)
    T = int(T_GRID[-1])
    X = rng.standard_normal((T, d))
    y = X @ W[0] + rng.standard_normal(T)
    L = gaussian_task_losses(X, y, W, 1.0)  # (K, T)
    if frozen:  # WRONG on purpose: the uniform prior at every step
        loss = -np.logaddexp.reduce(-L, axis=0) + math.log(K)
    else:
        loss = call_backend(bma_log_loss, backend, L)
    regret = np.cumsum(loss) - np.cumsum(L, axis=-1).min(axis=0)
    return T_GRID, regret[T_GRID - 1] / T_GRID


def _avg_regret_verdict(rng, size, control):
    K, d = int(rng.choice((2, 3, 5, 8))), int(rng.choice((1, 2, 3, 5)))
    sizes = {"K": K, "d": d, "T_min": int(T_GRID[0]), "T_max": int(T_GRID[-1])}
    parts = {}
    for b in check_backends(BACKENDS) if not control else ["ref"]:
        Ts, avg = average_regret_curve(np.random.default_rng(rng.integers(2**32)), K, d, frozen=control, backend=b)
        if np.any(avg <= 0):
            return Verdict(holds=False, error=float("inf"), tolerance=0.05, backend=b, sizes=sizes,
                           detail="a non-positive average regret: no power law to fit")
        slope = float(np.polyfit(np.log(Ts), np.log(avg), 1)[0])
        parts[b] = Verdict.from_error(abs(slope + 1.0), 0.05, backend=b, sizes=sizes,
                                      detail=f"average regret vs T: fitted exponent {slope:.4f}, law -1 +- 0.05")
    return Verdict.combine(parts, sizes=sizes)


register(Claim(
    id="icl.prequential-code-is-evidence", paper=OCCAM, kind="identity",
    statement="For the conjugate Bayesian linear-regression learner (w ~ N(0, τ²I), noise σ²), the cumulative next-token "
    "log-loss Σ_j −log p(y_j | x_j, D_<j) (the prequential code length) equals −log p(y | X) = −log N(y; 0, τ²XXᵀ + σ²I).",
    check=lambda rng, size="quick": _evidence_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _evidence_verdict(rng, size, True),
    experiment="icl_prequential", module=MODULE, test=TEST, samples=4,
    controls="y_j predicted by the posterior that has already seen (x_j, y_j)"))

register(Claim(
    id="icl.prequential-complexity-d-log-n", paper=OCCAM, kind="complexity",
    statement="−log p(y) = training error −log p(y | μ_n) + complexity |μ_n|²/(2τ²) + ½ log det(I + τ²XᵀX/σ²) exactly, "
    "and the complexity grows like (d/2) log n (fitted slope vs log n over 64x).",
    check=lambda rng, size="quick": _complexity_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _complexity_verdict(rng, size, True),
    experiment="icl_prequential", module=MODULE, test=TEST, samples=3,
    controls="the law d·log n (the ½ dropped)"))

register(Claim(
    id="icl.bma-regret-at-most-log-k", paper=BMA, kind="identity",
    statement="Bayesian model averaging over K tasks with a uniform prior has cumulative log-loss "
    "−log((1/K) Σ_k e^{−L_k(T)}), so its regret against the best task in hindsight is <= log K on every sequence.",
    check=lambda rng, size="quick": _regret_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _regret_verdict(rng, size, True),
    experiment="icl_prequential", module=MODULE, test=TEST, samples=4,
    controls="a non-uniform prior π_k ∝ 2^-k, the data from its least likely task"))

register(Claim(
    id="icl.bma-average-regret-1-over-t", paper=BMA, kind="complexity",
    statement="The average regret of Bayesian model averaging, regret_T / T, falls like 1/T (fitted log-log slope −1 "
    "over T = 16..2048) on a sequence from one of K separated tasks.",
    check=lambda rng, size="quick": _avg_regret_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _avg_regret_verdict(rng, size, True),
    experiment="icl_prequential", module=MODULE, test=TEST, samples=3,
    controls="posterior weights never updated (the prior at every step)"))
