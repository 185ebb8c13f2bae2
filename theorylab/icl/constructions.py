"""One linear self-attention layer is one gradient-descent step on in-context least squares.

Papers: #34 Akyürek et al., "What learning algorithm is in-context learning? Investigations
with linear models" (2022, arXiv:2211.15661), Sec. 3 (transformers can implement GD and
ridge); the explicit one-layer weights follow von Oswald et al., "Transformers learn
in-context by gradient descent" (2023, arXiv:2212.07677), Prop. 1.

Tokens are rows z_i = [x_i; y_i] in R^{d+1} for the k context examples and z_q = [x_q; 0] for
the m queries; Z (..., k + m, d + 1) holds the context first.  A **linear self-attention
layer** (no softmax) with weights W_Q, W_K, W_V in R^{(d+1) x (d+1)} updates every token with
the context tokens as keys and values, averaged over the n = k context tokens:

    z_j  <-  z_j + (1/n) Σ_{i<n} (W_V z_i) (W_K z_i)ᵀ (W_Q z_j).

**Claim.**  With W_Q = W_K = [[I_d, 0], [0, 0]] and W_V = [[0, 0], [0, −η]], the layer
changes only the last entry: z_j[d] <- z_j[d] − (η/n) Σ_i z_i[d] x_iᵀx_j.  Write the last
entries as residuals r_i = y_i − w_tᵀx_i (context) and −w_tᵀx_q (queries); w_0 = 0 gives the
tokens above.  One GD step w_{t+1} = w_t − η∇L(w_t) = w_t + (η/n) Σ_i r_i x_i on
L(w) = 1/(2n) Σ (wᵀx_i − y_i)² makes the new residuals exactly the layer's output.  So after
L layers with these weights, the query tokens' last entry is −ŷ_q with ŷ_q = x_qᵀ w_L, the
prediction of L GD steps: :func:`lsa_predict` (L = ``steps``) = :func:`gd_predict`.

Glossary: Z -> the token matrix E, W_Q / W_K / W_V -> W_Q / W_K / W_V, lr -> η, n_context ->
N (the context length k), layers -> L.

Shapes: Z (..., N, e) with e = d + 1; W_* (e, e); X (..., k, d), y (..., k), Xq (..., m, d).
Backends: ``"ref"`` (numpy float64), ``"torch"`` (CPU/CUDA, differentiable), ``"auto"``.
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import like_input, resolve_backend, to_numpy, to_torch
from .predictors import check_positive, check_prompt

__all__ = ["gd_lsa_weights", "lsa_layer_ref", "lsa_forward", "lsa_predict", "prompt_tokens", "BACKENDS"]

BACKENDS = ("ref", "torch")


def gd_lsa_weights(d: int, lr: float, *, dtype=np.float64):
    """(W_Q, W_K, W_V), each (d+1, d+1): the weights under which one layer is one GD step of size ``lr``."""
    d = V.check_size("d", d)
    lr = check_positive("lr", lr)
    WQ = np.zeros((d + 1, d + 1), dtype=dtype)
    WQ[:d, :d] = np.eye(d)  # queries and keys read x, not y
    WV = np.zeros((d + 1, d + 1), dtype=dtype)
    WV[d, d] = -lr  # values: -η times the residual entry, written back into the residual entry
    return WQ, WQ.copy(), WV


def prompt_tokens(X, y, Xq):
    """Z (..., k + m, d + 1): rows [x_i; y_i] for the context, then [x_q; 0] for the queries."""
    if hasattr(X, "detach"):
        import torch

        ctx = torch.cat([X, y[..., None]], dim=-1)
        qry = torch.cat([Xq, Xq.new_zeros(Xq.shape[:-1] + (1,))], dim=-1)
        return torch.cat([ctx, qry], dim=-2)
    ctx = np.concatenate([X, y[..., None]], axis=-1)  # (..., k, d+1)
    qry = np.concatenate([Xq, np.zeros(Xq.shape[:-1] + (1,), dtype=Xq.dtype)], axis=-1)  # (..., m, d+1)
    return np.concatenate([ctx, qry], axis=-2)


def lsa_layer_ref(Z, WQ, WK, WV, n_context):
    """z_j + (1/n) Σ_{i<n} (W_V z_i)(W_K z_i)ᵀ(W_Q z_j) for every row j of Z (..., N, e).

    Matmuls and a division only: it also runs on object arrays of sympy symbols (the proof)."""
    ctx = Z[..., :n_context, :]  # (..., n, e): keys and values
    q = Z @ WQ.T  # (..., N, e)
    kk = ctx @ WK.T  # (..., n, e)
    v = ctx @ WV.T  # (..., n, e)
    scores = q @ np.swapaxes(kk, -1, -2)  # (..., N, n): no softmax
    return Z + (scores @ v) / n_context


def _check_weights(Z, Ws):
    e = int(Z.shape[-1])
    for name, W in zip(("WQ", "WK", "WV"), Ws):
        V.check_shape(name, W, (e, e), {"Z": Z.shape, name: W.shape})


def lsa_forward(Z, WQ, WK, WV, *, n_context, layers=1, backend="auto"):
    """``layers`` linear self-attention layers with shared weights over tokens Z (..., N, e); the first
    ``n_context`` rows are keys and values.  Returns Z after the last layer (..., N, e)."""
    kind = V.check_arrays({"Z": Z, "WQ": WQ, "WK": WK, "WV": WV})
    if Z.ndim < 2:
        raise ValueError(f"Z must have shape (..., N, e); got {tuple(Z.shape)}")
    _check_weights(Z, (WQ, WK, WV))
    for name, a in (("Z", Z), ("WQ", WQ), ("WK", WK), ("WV", WV)):
        V.check_nonempty(name, a, "(every size must be >= 1)")
        V.check_finite(name, a)
    n = V.check_size("n_context", n_context)
    if n > int(Z.shape[-2]):
        raise ValueError(f"n_context must be <= the number of tokens {int(Z.shape[-2])} (Z {tuple(Z.shape)}); got {n}")
    layers = V.check_size("layers", layers)
    backend = resolve_backend(backend, (Z, WQ, WK, WV), valid=BACKENDS)
    if backend == "torch":
        from ._constructions_torch import lsa_forward_torch

        out = lsa_forward_torch(*(to_torch(a) for a in (Z, WQ, WK, WV)), n, layers)
    else:
        out = np.asarray(to_numpy(Z), dtype=np.float64)
        Ws = [np.asarray(to_numpy(W), dtype=np.float64) for W in (WQ, WK, WV)]
        for _ in range(layers):
            out = lsa_layer_ref(out, *Ws, n)
    out = like_input(out, Z)
    return out.astype(Z.dtype, copy=False) if kind == "numpy" else out


def lsa_predict(X, y, Xq, lr, steps=1, *, backend="auto"):
    """−(last entry of each query token) after ``steps`` layers with :func:`gd_lsa_weights`: (..., m).

    Equals ``gd_predict(X, y, Xq, lr, steps)`` (the claim ``icl.lsa-layer-is-gd-step``)."""
    kind, lead, k, d, m = check_prompt(X, y, Xq)
    lr = check_positive("lr", lr)
    Ws = gd_lsa_weights(d, lr, dtype=np.float64 if kind == "torch" else X.dtype)
    if kind == "torch":
        Ws = tuple(to_torch(W, device=X.device, dtype=X.dtype) for W in Ws)
    Z = lsa_forward(prompt_tokens(X, y, Xq), *Ws, n_context=k, layers=steps, backend=backend)
    return -Z[..., k:, d]
