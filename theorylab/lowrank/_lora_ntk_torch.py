"""Torch path of :mod:`theorylab.lowrank.lora_ntk`: :func:`ntk_jacobians_torch` must match
``ntk_jacobians_ref`` (CPU/CUDA, differentiable in X, W0, V)."""

from __future__ import annotations


def ntk_jacobians_torch(X, W0, V):
    """G_{(i,k)} = (V_k ⊙ tanh'(W0 x_i)) x_iᵀ, (K N, d_out, d_in), rows ordered (i, k)."""
    import torch

    s = 1.0 - torch.tanh(X @ W0.T) ** 2  # (N, d_out)
    U = V.unsqueeze(0) * s.unsqueeze(1)  # (N, K, d_out)
    return torch.einsum("nko,ni->nkoi", U, X).reshape(-1, W0.shape[0], W0.shape[1])
