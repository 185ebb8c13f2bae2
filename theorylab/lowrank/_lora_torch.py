"""Torch paths and modules of :mod:`theorylab.lowrank.lora` (CPU/CUDA).

* :func:`lora_linear_torch` must match the float64 ``lora_linear`` reference (differentiable);
* :func:`lora_gradients_torch` must match ``lora_gradients_ref`` (the factored formulas);
* :class:`LoRALinear`, :class:`NOLALinear`: modules whose trainable parameters the NOLA count
  claim enumerates (``requires_grad`` parameters), built on the same factors.
"""

from __future__ import annotations

import torch


def lora_linear_torch(X, W0, A, B, alpha: float):
    """X W0ᵀ + (α/r)(X Aᵀ)Bᵀ."""
    return X @ W0.T + (alpha / A.shape[0]) * (X @ A.T) @ B.T


def lora_gradients_torch(X, A, B, G, alpha: float):
    """((α/r)(G B)ᵀ X, (α/r) Gᵀ (X Aᵀ)) with the leading axes of X and G flattened."""
    X2, G2 = X.reshape(-1, X.shape[-1]), G.reshape(-1, G.shape[-1])
    c = alpha / A.shape[0]
    return c * (G2 @ B).T @ X2, c * G2.T @ (X2 @ A.T)


class LoRALinear(torch.nn.Module):
    """y = x W0ᵀ + (α/r)(x Aᵀ)Bᵀ with W0 frozen (a buffer); A, B trainable (B starts at 0)."""

    def __init__(self, d_in: int, d_out: int, rank: int, *, alpha: float = 1.0, generator=None, dtype=torch.float64):
        super().__init__()
        self.register_buffer("W0", torch.randn(d_out, d_in, generator=generator, dtype=dtype) / d_in**0.5)
        self.A = torch.nn.Parameter(torch.randn(rank, d_in, generator=generator, dtype=dtype) / d_in**0.5)
        self.B = torch.nn.Parameter(torch.zeros(d_out, rank, dtype=dtype))
        self.alpha = float(alpha)

    def forward(self, x):
        return lora_linear_torch(x, self.W0, self.A, self.B, self.alpha)


class NOLALinear(torch.nn.Module):
    """LoRA with A = Σ_i a_i A_i, B = Σ_j b_j B_j: the random bases are buffers, a (k) and b (l) trainable."""

    def __init__(self, d_in: int, d_out: int, rank: int, k: int, l: int, *, alpha: float = 1.0, generator=None,
                 dtype=torch.float64):
        super().__init__()
        self.register_buffer("W0", torch.randn(d_out, d_in, generator=generator, dtype=dtype) / d_in**0.5)
        self.register_buffer("basis_a", torch.randn(k, rank, d_in, generator=generator, dtype=dtype) / d_in**0.5)
        self.register_buffer("basis_b", torch.randn(l, d_out, rank, generator=generator, dtype=dtype))
        self.coef_a = torch.nn.Parameter(torch.randn(k, generator=generator, dtype=dtype) / k**0.5)
        self.coef_b = torch.nn.Parameter(torch.zeros(l, dtype=dtype))
        self.alpha = float(alpha)

    def factors(self):
        return torch.einsum("k,krd->rd", self.coef_a, self.basis_a), torch.einsum("l,lor->or", self.coef_b, self.basis_b)

    def forward(self, x):
        A, B = self.factors()
        return lora_linear_torch(x, self.W0, A, B, self.alpha)
