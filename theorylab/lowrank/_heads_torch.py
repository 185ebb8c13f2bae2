"""Torch path of :mod:`theorylab.lowrank.heads`: :func:`attention_heads_torch` must match
``attention_heads_ref`` (CPU/CUDA, differentiable in X, y, Q, K)."""

from __future__ import annotations


def attention_heads_torch(X, y, Q, K):
    """head_h = Σ_i softmax_i(⟨Q_h y, K_h x_i⟩) x_i (torch.softmax shifts by the max)."""
    import torch

    Qb = Q.unsqueeze(-4) if Q.ndim == X.ndim else Q  # sweep heads broadcast over samples
    Kb = K.unsqueeze(-4) if K.ndim == X.ndim else K
    qy = torch.einsum("...hrd,...d->...hr", Qb, y)  # (..., H, r)
    kx = torch.einsum("...hrd,...nd->...hnr", Kb, X)  # (..., H, N, r)
    w = torch.softmax(torch.einsum("...hr,...hnr->...hn", qy, kx), dim=-1)  # (..., H, N)
    return torch.einsum("...hn,...nd->...hd", w, X)
