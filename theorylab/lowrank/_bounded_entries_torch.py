"""Torch paths of :mod:`theorylab.lowrank.bounded_entries` (CPU/CUDA).

* :func:`polynomial_features_torch` must match ``polynomial_features_ref`` (differentiable in X);
* :func:`eps_rank_torch` must match ``eps_rank_ref`` (one batched ``svdvals``).
"""

from __future__ import annotations

import math

from .bounded_entries import monomials


def polynomial_features_torch(X, degree: int):
    """φ_g(X): per degree j, gather the j variables of each monomial and multiply, times √(1/α!)."""
    import torch

    d = X.shape[-1]
    terms = monomials(d, degree)
    cols = []
    for j in range(degree + 1):
        sel = [(t, c) for t, c in terms if len(t) == j]
        idx = torch.tensor([t for t, _ in sel], dtype=torch.long, device=X.device).reshape(len(sel), j)  # (M_j, j)
        coef = torch.tensor([math.sqrt(float(c)) for _, c in sel], dtype=X.dtype, device=X.device)  # √(1/α!)
        cols.append(X[..., idx].prod(dim=-1) * coef)  # (..., n, M_j)
    return torch.cat(cols, dim=-1)  # (..., n, C(d+g, g))


def eps_rank_torch(M, eps: float):
    """rank_ε from one batched svdvals: count of r with Σ_{i>=r} σ_i² > (ε ||M||_F)², each matrix
    first divided by its largest |entry| (scale-free; no overflow of σ², float32 included)."""
    import torch

    with torch.no_grad():
        amax = M.abs().amax(dim=(-2, -1), keepdim=True)
        M = M / torch.where(amax > 0, amax, torch.ones_like(amax))  # (..., m, n), entries in [-1, 1]
        s2 = torch.linalg.svdvals(M) ** 2  # (..., min(m, n))
        tail = torch.flip(torch.cumsum(torch.flip(s2, (-1,)), dim=-1), (-1,))
        thr = (eps * torch.linalg.matrix_norm(M)) ** 2  # Frobenius
        return (tail > thr[..., None]).sum(dim=-1)
