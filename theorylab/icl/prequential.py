"""Prequential coding: next-token log-loss is a code length; Bayesian model averaging's regret.

Papers: #46 Elmoznino, Marty, Kasetty, Gagnon, Lajoie, Ghosh, Richards & Lajoie, "In-context
learning and Occam's razor" (2024, arXiv:2410.14086), Sec. 2; #71 Zhang, Zhang, Yang & Wang,
"What and How does In-Context Learning Learn? Bayesian Model Averaging, Parameterization, and
Generalization" (2023, arXiv:2305.19420), Sec. 3-4.

**Conjugate Bayesian linear regression.**  w ~ N(0, τ²I_d), y_j = w·x_j + ε_j, ε_j ~ N(0, σ²).
The learner that has seen j − 1 examples predicts y_j with the posterior predictive

    p(y_j | x_j, D_{<j}) = N(y_j; x_jᵀμ_{j−1}, σ² + x_jᵀΣ_{j−1}x_j)

(μ_0 = 0, Σ_0 = τ²I, then the Kalman update of :mod:`theorylab.icl.predictors`).  Its
**prequential code length** Σ_j −log p(y_j | x_j, D_{<j}) telescopes by the chain rule to
−log p(y_{1:n} | X) = −log N(y; 0, τ²XXᵀ + σ²I), the negative log evidence (#46: next-token
loss = prequential code length).

**Training error + complexity.**  For any w, log p(y) = log p(y|w) + log p(w) − log p(w|y);
at w = μ_n (the posterior mean, p(μ_n | y) = N(0; 0, Σ_n)):

    −log p(y) = [Σ_i (y_i − x_iᵀμ_n)²/(2σ²) + (n/2) log 2πσ²]                  (training error)
              + [|μ_n|²/(2τ²) + ½ log det(I + τ² XᵀX/σ²)]                        (complexity)

With x ~ N(0, I), XᵀX ≈ nI, so the complexity grows like (d/2) log n.

**Bayesian model averaging** (#71) over K tasks with per-step losses ℓ_{k,t} = −log p_k(y_t | ·)
and prior π_0: the mixture predicts with the posterior weights π_t(k) ∝ π_0(k) e^{−Σ_{s<t} ℓ_{k,s}},
loss_t = −log Σ_k π_t(k) e^{−ℓ_{k,t}}.  The sum telescopes: Σ_{t<=T} loss_t =
−log Σ_k π_0(k) e^{−L_k(T)}, L_k(T) = Σ_{t<=T} ℓ_{k,t}, so with π_0 uniform the regret
Σ loss_t − min_k L_k(T) <= log K on every sequence, and the average regret is <= (log K)/T.

Glossary: noise -> σ, tau -> τ, losses -> ℓ (K x T), log_prior -> log π_0.
Shapes: X (..., n, d), y (..., n); losses (..., K, T).
Backends: ``"ref"`` (numpy float64, loops over steps), ``"torch"`` (CPU/CUDA, differentiable).
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as V
from ..backends import like_input, resolve_backend, to_numpy, to_torch
from .predictors import check_positive

__all__ = ["prequential_log_loss", "log_evidence", "complexity_split", "bma_log_loss", "gaussian_task_losses",
           "prequential_ref", "bma_ref", "BACKENDS"]

BACKENDS = ("ref", "torch")
LOG2PI = math.log(2.0 * math.pi)


def _check_xy(X, y):
    kind = V.check_arrays({"X": X, "y": y})
    for name, a in (("X", X), ("y", y)):
        if V.dtype_name(a) not in ("float32", "float64"):
            raise TypeError(f"{name} must be float32 or float64; got {V.dtype_name(a)} (shape {tuple(a.shape)})")
    if X.ndim < 2:
        raise ValueError(f"X must have shape (..., n, d); got {tuple(X.shape)}")
    V.check_shape("y", y, tuple(X.shape[:-1]), {"X": X.shape, "y": y.shape})
    for name, a in (("X", X), ("y", y)):
        V.check_nonempty(name, a, "(n, d and every batch dim must be >= 1)")
        V.check_finite(name, a)
    return kind


def _finish(out, like, kind):
    out = like_input(out, like)
    return out.astype(like.dtype, copy=False) if kind == "numpy" else out


# ---------------------------------------------------------------------------------------
# references (numpy float64)
# ---------------------------------------------------------------------------------------
def prequential_ref(X, y, noise, tau):
    """Per-step −log N(y_j; x_jᵀμ_{j−1}, σ² + x_jᵀΣ_{j−1}x_j), then the Kalman update: (..., n)."""
    *lead, n, d = X.shape
    Sig = np.broadcast_to(tau**2 * np.eye(d), (*lead, d, d)).copy()
    mu = np.zeros((*lead, d))
    out = np.empty((*lead, n))
    for j in range(n):
        x = X[..., j, :]
        Sx = np.einsum("...ij,...j->...i", Sig, x)
        s = noise**2 + np.einsum("...i,...i->...", x, Sx)  # predictive variance
        e = y[..., j] - np.einsum("...i,...i->...", x, mu)  # prediction error
        out[..., j] = 0.5 * (LOG2PI + np.log(s) + e * e / s)
        mu = mu + Sx * (e / s)[..., None]  # the update after the prediction
        Sig = Sig - Sx[..., :, None] * Sx[..., None, :] / s[..., None, None]
    return out


def bma_ref(losses, log_prior):
    """Per-step BMA loss −log Σ_k π_t(k) e^{−ℓ_{k,t}} with log-weights kept normalized (max-shifted)."""
    *lead, K, T = losses.shape
    logw = np.broadcast_to(log_prior, (*lead, K)).astype(np.float64)
    out = np.empty((*lead, T))
    for t in range(T):
        a = logw - losses[..., t]  # log π_t(k) p_k(y_t)
        top = a.max(-1, keepdims=True)
        lse = top[..., 0] + np.log(np.exp(a - top).sum(-1))  # log Σ_k π_t(k) p_k(y_t)
        out[..., t] = -lse
        logw = a - lse[..., None]  # Bayes: π_{t+1}(k) ∝ π_t(k) p_k(y_t)
    return out


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def prequential_log_loss(X, y, noise, tau, *, backend="auto"):
    """Next-token log-loss of the conjugate Bayesian linear-regression learner at every step: (..., n)."""
    kind = _check_xy(X, y)
    noise, tau = check_positive("noise", noise), check_positive("tau", tau)
    backend = resolve_backend(backend, (X, y), valid=BACKENDS)
    if backend == "torch":
        from ._prequential_torch import prequential_torch

        out = prequential_torch(to_torch(X), to_torch(y), noise, tau)
    else:
        out = prequential_ref(np.asarray(to_numpy(X), np.float64), np.asarray(to_numpy(y), np.float64), noise, tau)
    return _finish(out, X, kind)


def log_evidence(X, y, noise, tau, *, backend="auto"):
    """log N(y; 0, τ²XXᵀ + σ²I) by a Cholesky factor of the n x n covariance: (...,)."""
    kind = _check_xy(X, y)
    noise, tau = check_positive("noise", noise), check_positive("tau", tau)
    backend = resolve_backend(backend, (X, y), valid=BACKENDS)
    if backend == "torch":
        import torch

        Xt, yt = to_torch(X), to_torch(y)
        C = tau**2 * Xt @ Xt.transpose(-1, -2) + noise**2 * torch.eye(Xt.shape[-2], dtype=Xt.dtype, device=Xt.device)
        Lc = torch.linalg.cholesky(C)
        z = torch.linalg.solve_triangular(Lc, yt[..., None], upper=False)[..., 0]
        logdet = 2.0 * torch.log(torch.diagonal(Lc, dim1=-2, dim2=-1)).sum(-1)
        out = -0.5 * ((z * z).sum(-1) + logdet + Xt.shape[-2] * LOG2PI)
    else:
        Xn, yn = np.asarray(to_numpy(X), np.float64), np.asarray(to_numpy(y), np.float64)
        n = Xn.shape[-2]
        Lc = np.linalg.cholesky(tau**2 * Xn @ np.swapaxes(Xn, -1, -2) + noise**2 * np.eye(n))  # (..., n, n)
        z = np.linalg.solve(Lc, yn[..., None])[..., 0]  # L z = y
        logdet = 2.0 * np.log(np.diagonal(Lc, axis1=-2, axis2=-1)).sum(-1)
        out = -0.5 * ((z * z).sum(-1) + logdet + n * LOG2PI)
    return _finish(out, X, kind)


def complexity_split(X, y, noise, tau, *, backend="auto"):
    """(training error, complexity), each (...,): −log p(y|μ_n) and |μ_n|²/(2τ²) + ½ log det(I + τ²XᵀX/σ²)."""
    kind = _check_xy(X, y)
    noise, tau = check_positive("noise", noise), check_positive("tau", tau)
    backend = resolve_backend(backend, (X, y), valid=BACKENDS)
    if backend == "torch":
        import torch

        Xt, yt = to_torch(X), to_torch(y)
        xp = dict(eye=lambda d: torch.eye(d, dtype=Xt.dtype, device=Xt.device))
        tr = lambda a: a.transpose(-1, -2)  # noqa: E731
        slogdet = lambda A: torch.linalg.slogdet(A)[1]  # noqa: E731
        solve = torch.linalg.solve
    else:
        Xt, yt = np.asarray(to_numpy(X), np.float64), np.asarray(to_numpy(y), np.float64)
        xp = dict(eye=np.eye)
        tr = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
        slogdet = lambda A: np.linalg.slogdet(A)[1]  # noqa: E731
        solve = np.linalg.solve
    n, d = Xt.shape[-2], Xt.shape[-1]
    S = tr(Xt) @ Xt  # (..., d, d)
    b = (tr(Xt) @ yt[..., None])[..., 0]  # Xᵀy (..., d)
    mu = solve(S + (noise**2 / tau**2) * xp["eye"](d), b[..., None])[..., 0]  # posterior mean
    r = yt - (Xt @ mu[..., None])[..., 0]  # (..., n)
    train = (r * r).sum(-1) / (2 * noise**2) + 0.5 * n * (LOG2PI + 2 * math.log(noise))
    comp = (mu * mu).sum(-1) / (2 * tau**2) + 0.5 * slogdet(xp["eye"](d) + (tau**2 / noise**2) * S)
    return _finish(train, X, kind), _finish(comp, X, kind)


def gaussian_task_losses(X, y, W, noise):
    """ℓ_{k,t} = −log N(y_t; x_tᵀw_k, σ²) for tasks W (..., K, d): (..., K, T) (numpy float64)."""
    X, y, W = (np.asarray(a, dtype=np.float64) for a in (X, y, W))
    pred = np.einsum("...td,...kd->...kt", X, W)  # (..., K, T)
    return 0.5 * (LOG2PI + 2 * math.log(noise) + (y[..., None, :] - pred) ** 2 / noise**2)


def bma_log_loss(losses, log_prior=None, *, backend="auto"):
    """Per-step loss of Bayesian model averaging over K tasks, (..., T), from their losses (..., K, T).

    ``log_prior`` (K,) is log π_0 (default uniform, −log K); it must be normalized (logsumexp 0)."""
    kind = V.check_arrays({"losses": losses})
    if losses.ndim < 2:
        raise ValueError(f"losses must have shape (..., K, T); got {tuple(losses.shape)}")
    V.check_nonempty("losses", losses, "(K and T must be >= 1)")
    V.check_finite("losses", losses)
    K = int(losses.shape[-2])
    lp = np.full(K, -math.log(K)) if log_prior is None else np.asarray(to_numpy(log_prior), dtype=np.float64)
    if lp.shape != (K,) or not np.all(np.isfinite(lp)):
        raise ValueError(f"log_prior must be a finite vector of shape ({K},) (losses {tuple(losses.shape)}); got {lp.shape}")
    top = lp.max()
    if abs(top + math.log(np.exp(lp - top).sum())) > 1e-9:
        raise ValueError("log_prior must be normalized: logsumexp(log_prior) = 0")
    backend = resolve_backend(backend, (losses,), valid=BACKENDS)
    if backend == "torch":
        from ._prequential_torch import bma_torch

        lt = to_torch(losses)
        out = bma_torch(lt, to_torch(lp, device=lt.device, dtype=lt.dtype))
    else:
        out = bma_ref(np.asarray(to_numpy(losses), np.float64), lp)
    return _finish(out, losses, kind)
