"""torch paths of :mod:`theorylab.icl.prequential` (CPU/CUDA, differentiable, in the input dtype).

:func:`prequential_torch` must match ``prequential_ref``; :func:`bma_torch` must match ``bma_ref``.
"""

from __future__ import annotations

import math

import torch

LOG2PI = math.log(2.0 * math.pi)


def prequential_torch(X, y, noise, tau):
    """Per-step predictive log-loss of the conjugate learner, then its Kalman update: (..., n)."""
    *lead, n, d = X.shape
    Sig = (tau**2 * torch.eye(d, dtype=X.dtype, device=X.device)).expand(*lead, d, d)
    mu = X.new_zeros(*lead, d)
    outs = []
    for j in range(n):
        x = X[..., j, :]
        Sx = (Sig @ x[..., None])[..., 0]
        s = noise**2 + (x * Sx).sum(-1)
        e = y[..., j] - (x * mu).sum(-1)
        outs.append(0.5 * (LOG2PI + torch.log(s) + e * e / s))
        mu = mu + Sx * (e / s)[..., None]
        Sig = Sig - Sx[..., :, None] * Sx[..., None, :] / s[..., None, None]
    return torch.stack(outs, dim=-1)


def bma_torch(losses, log_prior):
    """Per-step BMA loss with normalized log-weights (logsumexp keeps the max shift): (..., T)."""
    logw = log_prior.expand(losses.shape[:-1])
    outs = []
    for t in range(losses.shape[-1]):
        a = logw - losses[..., t]
        lse = torch.logsumexp(a, dim=-1)
        outs.append(-lse)
        logw = a - lse[..., None]
    return torch.stack(outs, dim=-1)
