"""Linformer: attention with keys and values projected to k positions.

Paper: #59 Wang, Li, Khabsa, Fang & Ma, "Linformer: Self-Attention with Linear Complexity"
(2020, arXiv:2006.04768), Eq. (7) and Thm 1-2.

For queries Q (m x d), keys K (n x d), values V (n x dv) and projections E, F (k x n):

    softmax attention      P V,   P = softmax(Q Kᵀ / √d)              (row-wise softmax)
    Linformer              softmax(Q (E K)ᵀ / √d) (F V)                ((m x k) weights on k rows)

* **E = F = I_n** (k = n) is softmax attention exactly; so is E = F = Π for any permutation
  Π (attention is permutation-invariant over key/value pairs): the identity claim.
* **Random projections to k rows.**  With E = F = S a sampling sketch (each of the k rows of S
  picks one of the n positions uniformly, with replacement), the Linformer output is the
  self-normalized Monte-Carlo estimate Σ_{j∈S} e^{s_j} v_j / Σ_{j∈S} e^{s_j} of the n-token
  weighted mean.  For tokens drawn i.i.d. from a fixed distribution its relative error is a
  function of k (about 1/√k) and of that distribution, not of n: the statistical claim.
  (A sketch scaled for sums, √(n/k) S, multiplies the logits by √(n/k): then the error grows
  with n -- the control.  A Gaussian JL matrix, whose projected keys grow like √(n/k), fails
  the same way.)
* **Spectrum.**  The energy of P in its top-k singular values, Σ_{i<=k} σ_i² / Σ σ_i²
  (:func:`topk_energy`, one batched SVD), is the low-rank structure Linformer's Thm 1 uses.

Glossary (code -> paper): Q, K, V -> Q W^Q, K W^K, V W^V; E, F -> E_i, F_i; k -> k.

Shapes: Q (..., m, d), K (..., n, d), V (..., n, dv), E, F (..., k, n) or (k, n); output
(..., m, dv).  P (..., m, n) -> energy (...).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V_
from ..backends import is_tensor, like_input, resolve_backend, to_numpy, to_torch
from ._common import BACKENDS, check_inputs, mismatch

__all__ = ["softmax_attention", "softmax_attention_ref", "linformer_attention", "linformer_attention_ref",
           "sampling_projection", "topk_energy", "make_inputs"]


def make_inputs(rng: np.random.Generator, *, n=64, m=16, d=8, dv=8, mean=1.0, batch=(), dtype=np.float64) -> dict:
    """Tokens x_j ~ N(mean·1, I_d) i.i.d.; Q = X_q W_q, K = X W_k, V = X W_v with W ~ N(0, 1/d)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    n, m, d, dv = (V_.check_size(k, v) for k, v in (("n", n), ("m", m), ("d", d), ("dv", dv)))
    batch = tuple(int(b) for b in batch)
    Wq, Wk = (rng.standard_normal(batch + (d, d)) / np.sqrt(d) for _ in range(2))
    Wv = rng.standard_normal(batch + (d, dv)) / np.sqrt(d)
    X = rng.standard_normal(batch + (n, d)) + mean
    Xq = rng.standard_normal(batch + (m, d)) + mean
    return {k: v.astype(dtype) for k, v in {"Q": Xq @ Wq, "K": X @ Wk, "V": X @ Wv}.items()}


def sampling_projection(rng: np.random.Generator, n: int, k: int, *, batch=(), dtype=np.float64) -> np.ndarray:
    """S (batch..., k, n): row i is the unit vector of a position drawn uniformly (with replacement)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    n, k = V_.check_size("n", n), V_.check_size("k", k)
    idx = rng.integers(0, n, size=tuple(batch) + (k,))
    return (idx[..., None] == np.arange(n)).astype(dtype)


# ---------------------------------------------------------------------------------------
# references (float64 numpy)
# ---------------------------------------------------------------------------------------
def _softmax(S):
    S = S - S.max(axis=-1, keepdims=True)  # max shift: exp never overflows
    e = np.exp(S)
    return e / e.sum(axis=-1, keepdims=True)


def softmax_attention_ref(Q, K, V) -> np.ndarray:
    """float64 softmax(Q Kᵀ / √d) V."""
    Q, K, V = (np.asarray(a, np.float64) for a in (Q, K, V))
    P = _softmax(Q @ np.swapaxes(K, -1, -2) / np.sqrt(Q.shape[-1]))  # (..., m, n)
    return P @ V  # (..., m, dv)


def linformer_attention_ref(Q, K, V, E, F) -> np.ndarray:
    """float64 softmax(Q (E K)ᵀ / √d) (F V)."""
    Q, K, V, E, F = (np.asarray(a, np.float64) for a in (Q, K, V, E, F))
    return softmax_attention_ref(Q, E @ K, F @ V)  # (E K): (..., k, d); (F V): (..., k, dv)


# ---------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------
def _check_qkv(Q, K, V):
    kind = check_inputs({"Q": Q, "K": K, "V": V}, {x: (2, "(..., tokens, features)") for x in "QKV"})
    shapes = {"Q": Q, "K": K, "V": V}
    if K.shape[-1] != Q.shape[-1] or K.shape[:-2] != Q.shape[:-2]:
        raise mismatch("K", K, f"(..., n, {Q.shape[-1]}) with Q's leading axes {tuple(Q.shape[:-2])}", shapes)
    if V.shape[:-1] != K.shape[:-1]:
        raise mismatch("V", V, f"{tuple(K.shape[:-1])} + (dv,) (one value per key)", shapes)
    return kind


def softmax_attention(Q, K, V, *, backend="auto"):
    """softmax(Q Kᵀ / √d) V (..., m, dv).  Backends ``"ref"``, ``"torch"`` (differentiable), ``"auto"``."""
    kind = _check_qkv(Q, K, V)
    backend = resolve_backend(backend, (Q, K, V), valid=BACKENDS)
    if backend == "torch":
        from ._linformer_torch import softmax_attention_torch

        return like_input(softmax_attention_torch(*(to_torch(a) for a in (Q, K, V))), Q)
    out = softmax_attention_ref(*(to_numpy(a) for a in (Q, K, V)))
    return like_input(out, Q) if kind == "torch" else out.astype(Q.dtype, copy=False)


def linformer_attention(Q, K, V, E, F, *, backend="auto"):
    """softmax(Q (E K)ᵀ / √d) (F V) (..., m, dv); E, F (..., k, n) or (k, n) (module docstring).

    Backends ``"ref"`` (float64 numpy), ``"torch"`` (CPU/CUDA, differentiable in every input),
    ``"auto"`` (torch tensors -> torch, numpy -> ref).  numpy in -> numpy out; torch in -> torch out.
    """
    kind = check_inputs({"Q": Q, "K": K, "V": V, "E": E, "F": F},
                        {**{x: (2, "(..., tokens, features)") for x in "QKV"}, "E": (2, "(..., k, n)"),
                         "F": (2, "(..., k, n)")})
    _check_qkv(Q, K, V)
    n = K.shape[-2]
    shapes = {"K": K, "E": E, "F": F}
    for name, P in (("E", E), ("F", F)):
        if P.shape[-1] != n:
            raise mismatch(name, P, f"(..., k, {n}): one column per key position", shapes)
    if F.shape[-2] != E.shape[-2]:
        raise mismatch("F", F, f"(..., {E.shape[-2]}, {n}): as many rows k as E", shapes)
    backend = resolve_backend(backend, (Q, K, V, E, F), valid=BACKENDS)
    if backend == "torch":
        from ._linformer_torch import linformer_attention_torch

        return like_input(linformer_attention_torch(*(to_torch(a) for a in (Q, K, V, E, F))), Q)
    out = linformer_attention_ref(*(to_numpy(a) for a in (Q, K, V, E, F)))
    return like_input(out, Q) if kind == "torch" else out.astype(Q.dtype, copy=False)


def topk_energy(P, k, *, backend="auto"):
    """Σ_{i<=k} σ_i² / Σ_i σ_i² of P (..., m, n), one batched SVD; float array (...)."""
    kind = check_inputs({"P": P}, {"P": (2, "(..., m, n): matrices")})
    k = V_.check_size("k", k)
    backend = resolve_backend(backend, (P,), valid=BACKENDS)
    if backend == "torch":
        import torch

        with torch.no_grad():
            s2 = torch.linalg.svdvals(to_torch(P)) ** 2
            out = s2[..., :k].sum(-1) / s2.sum(-1)
        return out if is_tensor(P) else out.cpu().numpy()
    s2 = np.linalg.svd(to_numpy(P, np.float64), compute_uv=False) ** 2
    out = s2[..., :k].sum(-1) / s2.sum(-1)
    return like_input(out, P) if kind == "torch" else out
