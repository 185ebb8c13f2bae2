"""LoRA: a low-rank update, its factored gradients, and NOLA's parameter count.

Papers: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models" (2021,
arXiv:2106.09685), Eq. (3); #36 Hu et al., "Computational Limits of Low-Rank Adaptation (LoRA)
for Transformer-Based Models" (2024, arXiv:2406.03136): the gradients of LoRA are chained
low-rank products; #110 Jang, Lee & Ryu, "LoRA Training in the NTK Regime has No Spurious
Local Minima" (2024, arXiv:2402.11867); #41 Koohpayegani et al., "NOLA: Networks as Linear
Combination of Low Rank Random Basis" (2023, arXiv:2310.02556).

**LoRA layer.**  Frozen W0 (d_out x d_in), trainable A (r x d_in), B (d_out x r), scale α:

    Y = X W0ᵀ + (α/r) (X Aᵀ) Bᵀ                         X (N x d_in), Y (N x d_out)

**Factored gradients.**  With G = ∂L/∂Y (N x d_out), ∂L/∂W = (α/r) Gᵀ X for W = BA, so

    ∂L/∂B = (α/r) Gᵀ (X Aᵀ)        (d_out x r)     -- never forming the d_out x d_in product
    ∂L/∂A = (α/r) (G B)ᵀ X         (r x d_in)

(:func:`lora_gradients`; the claim compares them with torch autograd of ⟨G, Y⟩.)

**Best factors.**  :func:`lora_factors` returns B = U_r √Σ_r, A = √Σ_r V_rᵀ from the SVD of a
full update ΔW: B A is the best rank-r approximation of ΔW (Eckart–Young).

**NOLA.**  A = Σ_{i<=k} a_i A_i, B = Σ_{j<=l} b_j B_j with fixed random bases A_i (r x d_in),
B_j (d_out x r); only the coefficients a (k) and b (l) are trained: k + l parameters, for every
rank r and layer shape -- against LoRA's r (d_in + d_out).  Counters:
:func:`lora_parameter_count`, :func:`nola_parameter_count`; modules in
:mod:`theorylab.lowrank._lora_torch` (``LoRALinear``, ``NOLALinear``).

Glossary (code -> paper): W0 -> W_0; A, B -> A, B; alpha -> α; k, l -> NOLA's k and l.
Shapes: X (..., d_in); W0 (d_out, d_in); A (r, d_in); B (d_out, r); G (..., d_out).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V_
from ..backends import is_tensor, like_input, resolve_backend, to_numpy, to_torch
from ._common import BACKENDS, check_inputs, check_positive_real, mismatch

__all__ = ["lora_linear", "lora_gradients", "lora_gradients_ref", "lora_factors", "lora_parameter_count",
           "nola_parameter_count", "nola_factors", "make_inputs"]


def make_inputs(rng: np.random.Generator, *, N=8, d_in=5, d_out=3, r=2, dtype=np.float64) -> dict:
    """X (N, d_in), W0 (d_out, d_in), A (r, d_in), B (d_out, r), G (N, d_out), all N(0, 1)-scaled."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    N, d_in, d_out, r = (V_.check_size(k, v) for k, v in (("N", N), ("d_in", d_in), ("d_out", d_out), ("r", r)))
    out = {"X": rng.standard_normal((N, d_in)), "W0": rng.standard_normal((d_out, d_in)) / np.sqrt(d_in),
           "A": rng.standard_normal((r, d_in)) / np.sqrt(d_in), "B": rng.standard_normal((d_out, r)),
           "G": rng.standard_normal((N, d_out))}
    return {k: v.astype(dtype) for k, v in out.items()}


def _check_lora(X, W0, A, B, G=None):
    named = {"X": X, "A": A, "B": B, **({"W0": W0} if W0 is not None else {}), **({"G": G} if G is not None else {})}
    kind = check_inputs(named, {"X": (1, "(..., d_in)"), "W0": (2, "(d_out, d_in)"), "A": (2, "(r, d_in)"),
                                "B": (2, "(d_out, r)"), "G": (1, "(..., d_out)")})
    for name in ("A", "B") + (("W0",) if W0 is not None else ()):
        V_.check_ndim(name, named[name], 2, "a matrix")
    r, d_in = A.shape
    if X.shape[-1] != d_in:
        raise mismatch("X", X, f"(..., {d_in}): d_in from A", named)
    if B.shape[1] != r:
        raise mismatch("B", B, f"(d_out, {r}): r from A", named)
    d_out = B.shape[0]
    if W0 is not None and tuple(W0.shape) != (d_out, d_in):
        raise mismatch("W0", W0, f"({d_out}, {d_in}) = (d_out from B, d_in from A)", named)
    if G is not None and tuple(G.shape) != tuple(X.shape[:-1]) + (d_out,):
        raise mismatch("G", G, f"{tuple(X.shape[:-1]) + (d_out,)}: one output gradient per row of X", named)
    return kind


def lora_linear(X, W0, A, B, *, alpha=1.0, backend="auto"):
    """Y = X W0ᵀ + (α/r)(X Aᵀ)Bᵀ (..., d_out).  Backends ``"ref"``, ``"torch"`` (differentiable), ``"auto"``."""
    kind = _check_lora(X, W0, A, B)
    alpha = check_positive_real("alpha", alpha)
    backend = resolve_backend(backend, (X, W0, A, B), valid=BACKENDS)
    if backend == "torch":
        from ._lora_torch import lora_linear_torch

        return like_input(lora_linear_torch(*(to_torch(a) for a in (X, W0, A, B)), alpha), X)
    X_, W_, A_, B_ = (to_numpy(a, np.float64) for a in (X, W0, A, B))
    out = X_ @ W_.T + (alpha / A_.shape[0]) * (X_ @ A_.T) @ B_.T  # (..., r) -> (..., d_out)
    return like_input(out, X) if kind == "torch" else out.astype(X.dtype, copy=False)


def lora_gradients_ref(X, A, B, G, alpha):
    """float64 (∂L/∂A, ∂L/∂B) = ((α/r)(G B)ᵀ X, (α/r) Gᵀ (X Aᵀ)), leading axes of X, G summed."""
    X, A, B, G = (np.asarray(a, np.float64) for a in (X, A, B, G))
    X2, G2 = X.reshape(-1, X.shape[-1]), G.reshape(-1, G.shape[-1])  # (N, d_in), (N, d_out)
    c = alpha / A.shape[0]
    dA = c * (G2 @ B).T @ X2  # (r, N) @ (N, d_in)
    dB = c * G2.T @ (X2 @ A.T)  # (d_out, N) @ (N, r)
    return dA, dB


def lora_gradients(X, A, B, G, *, alpha=1.0, backend="auto"):
    """(∂L/∂A, ∂L/∂B) of L = ⟨G, lora_linear(X, W0, A, B)⟩ by the factored formulas (module docstring).

    Backends ``"ref"`` (float64 numpy), ``"torch"`` (the same formulas in torch, CPU/CUDA), ``"auto"``.
    """
    kind = _check_lora(X, None, A, B, G)
    alpha = check_positive_real("alpha", alpha)
    backend = resolve_backend(backend, (X, A, B, G), valid=BACKENDS)
    if backend == "torch":
        from ._lora_torch import lora_gradients_torch

        return tuple(like_input(g, X) for g in lora_gradients_torch(*(to_torch(a) for a in (X, A, B, G)), alpha))
    out = lora_gradients_ref(*(to_numpy(a) for a in (X, A, B, G)), alpha)
    return tuple(like_input(g, X) if kind == "torch" else g.astype(X.dtype, copy=False) for g in out)


def lora_factors(delta, rank, *, backend="auto"):
    """(B, A) with B A the best rank-r approximation of ΔW (d_out, d_in): B = U_r √Σ_r, A = √Σ_r V_rᵀ."""
    kind = check_inputs({"delta": delta}, {"delta": (2, "(d_out, d_in)")})
    V_.check_ndim("delta", delta, 2, "a matrix (d_out, d_in)")
    rank = V_.check_size("rank", rank)
    if rank > min(delta.shape):
        raise ValueError(f"rank must be <= min(d_out, d_in) = {min(delta.shape)}; got {rank} (delta {tuple(delta.shape)})")
    backend = resolve_backend(backend, (delta,), valid=BACKENDS)
    if backend == "torch":
        import torch

        U, s, Vh = torch.linalg.svd(to_torch(delta), full_matrices=False)
        root = s[:rank].sqrt()
        return like_input(U[:, :rank] * root, delta), like_input(root[:, None] * Vh[:rank], delta)
    U, s, Vh = np.linalg.svd(to_numpy(delta, np.float64), full_matrices=False)
    root = np.sqrt(s[:rank])
    Bf, Af = U[:, :rank] * root, root[:, None] * Vh[:rank]  # (d_out, r), (r, d_in)
    if kind == "torch":
        return like_input(Bf, delta), like_input(Af, delta)
    return Bf.astype(delta.dtype, copy=False), Af.astype(delta.dtype, copy=False)


def lora_parameter_count(d_in, d_out, rank) -> int:
    """LoRA's trainable parameters: r (d_in + d_out)."""
    d_in, d_out, rank = (V_.check_size(k, v) for k, v in (("d_in", d_in), ("d_out", d_out), ("rank", rank)))
    return rank * (d_in + d_out)


def nola_parameter_count(k, l) -> int:
    """NOLA's trainable parameters: k + l mixture coefficients, whatever the rank and shape."""
    return V_.check_size("k", k) + V_.check_size("l", l)


def nola_factors(coef_a, coef_b, basis_a, basis_b, *, backend="auto"):
    """(A, B) = (Σ_i a_i A_i, Σ_j b_j B_j): coef_a (k,), basis_a (k, r, d_in), coef_b (l,), basis_b (l, d_out, r)."""
    named = {"coef_a": coef_a, "coef_b": coef_b, "basis_a": basis_a, "basis_b": basis_b}
    kind = check_inputs(named, {"coef_a": (1, "(k,)"), "coef_b": (1, "(l,)"), "basis_a": (3, "(k, r, d_in)"),
                                "basis_b": (3, "(l, d_out, r)")})
    if coef_a.ndim != 1 or basis_a.ndim != 3 or basis_a.shape[0] != coef_a.shape[0]:
        raise mismatch("basis_a", basis_a, f"({coef_a.shape[0]}, r, d_in) with coef_a of shape (k,)", named)
    if coef_b.ndim != 1 or basis_b.ndim != 3 or basis_b.shape[0] != coef_b.shape[0] or basis_b.shape[2] != basis_a.shape[1]:
        raise mismatch("basis_b", basis_b, f"({coef_b.shape[0]}, d_out, {basis_a.shape[1]}) with coef_b (l,)", named)
    backend = resolve_backend(backend, tuple(named.values()), valid=BACKENDS)
    if backend == "torch":
        import torch

        ca, cb, ba, bb = (to_torch(a) for a in (coef_a, coef_b, basis_a, basis_b))
        return (like_input(torch.einsum("k,krd->rd", ca, ba), coef_a), like_input(torch.einsum("l,lor->or", cb, bb), coef_a))
    ca, cb, ba, bb = (to_numpy(a, np.float64) for a in (coef_a, coef_b, basis_a, basis_b))
    A, B = np.einsum("k,krd->rd", ca, ba), np.einsum("l,lor->or", cb, bb)
    if kind == "torch":
        return like_input(A, coef_a), like_input(B, coef_a)
    return A.astype(coef_a.dtype, copy=False), B.astype(coef_a.dtype, copy=False)
