"""torch paths of :mod:`theorylab.icl.predictors` (CPU/CUDA, differentiable, in the input dtype).

Each function takes prompts (B, k, d), labels (B, k), queries (B, m, d) and returns (B, k, m),
one row per prefix, and must match the numpy reference of the same name in
:mod:`theorylab.icl.predictors` (``rls_ref``, ``lstsq_ref``, ``gd_ref``, ``knn_ref``).  Updates are
out of place so autograd sees every step.
"""

from __future__ import annotations

import torch


def rls(X, y, Xq, p0, c):
    """Sherman–Morrison recursion; matches ``rls_ref``."""
    B, k, d = X.shape
    P = (p0 * torch.eye(d, dtype=X.dtype, device=X.device)).expand(B, d, d)
    w = X.new_zeros(B, d)
    outs = []
    for j in range(k):
        x = X[:, j]  # (B, d)
        Px = torch.einsum("bij,bj->bi", P, x)
        s = c + (x * Px).sum(-1)  # (B,)
        e = y[:, j] - (x * w).sum(-1)
        w = w + Px * (e / s)[:, None]
        P = P - Px[:, :, None] * Px[:, None, :] / s[:, None, None]
        outs.append(torch.einsum("bmd,bd->bm", Xq, w))
    return torch.stack(outs, dim=1)  # (B, k, m)


def lstsq(X, y, Xq, rank_tol):
    """Greville's recursion for the minimum-norm least-squares solution; matches ``lstsq_ref``."""
    B, k, d = X.shape
    Q = torch.eye(d, dtype=X.dtype, device=X.device).expand(B, d, d)
    G = X.new_zeros(B, d, d)
    w = X.new_zeros(B, d)
    outs = []
    for j in range(k):
        x = X[:, j]
        c = torch.einsum("bij,bj->bi", Q, x)
        c = torch.einsum("bij,bj->bi", Q, c)
        b = torch.einsum("bij,bj->bi", G, x)
        e = y[:, j] - (x * w).sum(-1)
        cc = (c * c).sum(-1)
        new = cc > (rank_tol**2) * (x * x).sum(-1)
        cc1 = torch.where(new, cc, torch.ones_like(cc))  # never divide by a vanishing |c|² (NaN gradients)
        s = 1.0 + (x * b).sum(-1)
        ccT, bcT = c[:, :, None] * c[:, None, :], b[:, :, None] * c[:, None, :]
        G_new = G - (bcT + bcT.transpose(1, 2)) / cc1[:, None, None] + (s / cc1**2)[:, None, None] * ccT
        G_old = G - b[:, :, None] * b[:, None, :] / s[:, None, None]
        G = torch.where(new[:, None, None], G_new, G_old)
        Q = torch.where(new[:, None, None], Q - ccT / cc1[:, None, None], Q)
        w = w + torch.where(new[:, None], c * (e / cc1)[:, None], b * (e / s)[:, None])
        outs.append(torch.einsum("bmd,bd->bm", Xq, w))
    return torch.stack(outs, dim=1)


def gd(X, y, Xq, lr, steps, first=0):
    """GD from 0 at every prefix from ``first`` on through the running sums S_j = Σ xxᵀ, b_j = Σ yx;
    matches ``gd_ref``.  The prefixes before ``first`` never step (no diverging iterate, whose
    inf would turn the gradient of the others into NaN)."""
    B, k, d = X.shape
    S = torch.cumsum(X[:, :, :, None] * X[:, :, None, :], dim=1)[:, first:]  # (B, k', d, d), k' = k − first
    bvec = torch.cumsum(X * y[:, :, None], dim=1)[:, first:]  # (B, k', d)
    n = torch.arange(first + 1, k + 1, dtype=X.dtype, device=X.device)[None, :, None]  # (1, k', 1)
    w = X.new_zeros(B, k - first, d)
    for _ in range(steps):
        w = w - (lr / n) * (torch.einsum("bkij,bkj->bki", S, w) - bvec)
    return torch.einsum("bmd,bkd->bkm", Xq, w)


def knn(X, y, Xq, n_neighbors):
    """Mean of the labels of the nearest examples among each prefix; matches ``knn_ref``."""
    B, k, d = X.shape
    D = ((Xq[:, :, None, :] - X[:, None, :, :]) ** 2).sum(-1).detach()  # (B, m, k)
    outs = []
    for j in range(k):
        nn = min(n_neighbors, j + 1)
        idx = torch.sort(D[:, :, : j + 1], dim=-1, stable=True).indices[:, :, :nn]  # (B, m, nn)
        lab = y[:, None, : j + 1].expand(B, D.shape[1], j + 1)
        outs.append(torch.gather(lab, -1, idx).mean(-1))
    return torch.stack(outs, dim=1)
