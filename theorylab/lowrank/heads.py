"""Rank against heads: the nearest-point target, one full-rank head, many low-rank heads.

Paper: #12 Amsel, Yehudai & Bruna, "On the Benefits of Rank in Attention Layers" (2024,
arXiv:2407.16153), the nearest-point target and Thm 1-2.

Context X = (x_1, ..., x_N) and query y on the sphere S^{d−1}; the target is the nearest point

    f(X, y) = x_{i*},   i* = argmax_i ⟨x_i, y⟩.

A head with query/key maps Q_h, K_h (r x d) (rank r <= d) and values x_i outputs

    head_h(X, y) = Σ_i softmax_i(⟨Q_h y, K_h x_i⟩) x_i                      (d,)

and H heads with output weights O_h (d x d) give  F(X, y) = Σ_h O_h head_h(X, y).

* **One full-rank head**, Q = K = √β I (so ⟨Qy, Kx⟩ = β⟨y, x⟩), O = I: as β -> ∞ the softmax
  concentrates on i* and F -> f (error -> 0, monotone in β in expectation).
* **Rank-r heads** with least-squares-optimal output weights: given T samples, the features
  Φ = [head_1, ..., head_H] (T x Hd) and targets f (T x d), O = argmin ||Φ O − f||_F is one
  lstsq (:func:`fit_output_weights`, via one batched SVD over every item of a sweep).  The
  paper: for r << d the number of heads needed for a fixed error grows exponentially in d;
  a rank-1 single head cannot represent the target at all (the control).

Glossary (code -> paper): X -> X; y -> y; Q, K -> W_Q^h, W_K^h; O -> W_O^h; H -> H; r -> rank.
Shapes: X (..., N, d); y (..., d); Q, K (..., H, r, d) (leading axes broadcast with X's
leading sweep axes); heads (..., H, d); O (..., H, d, d); output (..., d).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V_
from ..backends import is_tensor, like_input, resolve_backend, to_numpy, to_torch
from ._common import check_inputs, mismatch

__all__ = ["nearest_point_target", "attention_heads", "attention_heads_ref", "multihead_lowrank",
           "fit_output_weights", "lstsq_batched", "full_rank_head", "make_inputs", "HEADS_BACKENDS"]

HEADS_BACKENDS = ("ref", "numba", "torch")  # attention_heads / fit_output_weights / held_out_errors


def make_inputs(rng: np.random.Generator, *, samples=64, N=8, d=3, batch=(), dtype=np.float64) -> dict:
    """X (batch..., samples, N, d) and y (batch..., samples, d), uniform on S^{d−1}."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    T, N, d = (V_.check_size(k, v) for k, v in (("samples", samples), ("N", N), ("d", d)))
    batch = tuple(int(b) for b in batch)

    def sphere(shape):
        z = rng.standard_normal(shape)
        return z / np.linalg.norm(z, axis=-1, keepdims=True)

    return {"X": sphere(batch + (T, N, d)).astype(dtype), "y": sphere(batch + (T, d)).astype(dtype)}


def full_rank_head(d: int, beta: float, *, dtype=np.float64) -> dict:
    """Q = K = √β I (1, d, d): the single full-rank head of the paper."""
    d = V_.check_size("d", d)
    eye = np.sqrt(float(beta)) * np.eye(d, dtype=dtype)[None]
    return {"Q": eye, "K": eye.copy()}


def _check(X, y, Q, K):
    kind = check_inputs({"X": X, "y": y, "Q": Q, "K": K},
                        {"X": (2, "(..., N, d)"), "y": (1, "(..., d)"), "Q": (3, "(..., H, r, d)"),
                         "K": (3, "(..., H, r, d)")})
    d = X.shape[-1]
    named = {"X": X, "y": y, "Q": Q, "K": K}
    if tuple(y.shape) != tuple(X.shape[:-2]) + (d,):
        raise mismatch("y", y, f"{tuple(X.shape[:-2]) + (d,)}: one query per context X", named)
    if Q.shape[-1] != d:
        raise mismatch("Q", Q, f"(..., H, r, {d})", named)
    if tuple(K.shape) != tuple(Q.shape):
        raise mismatch("K", K, f"{tuple(Q.shape)} (as Q)", named)
    return kind


def nearest_point_target(X, y):
    """f(X, y) = x_{argmax_i ⟨x_i, y⟩} (..., d), numpy or torch (not differentiable: a selection)."""
    check_inputs({"X": X, "y": y}, {"X": (2, "(..., N, d)"), "y": (1, "(..., d)")})
    if tuple(y.shape) != tuple(X.shape[:-2]) + (X.shape[-1],):
        raise mismatch("y", y, f"{tuple(X.shape[:-2]) + (X.shape[-1],)}", {"X": X, "y": y})
    i = (X @ y[..., None])[..., 0].argmax(-1)  # (...,)
    if is_tensor(i):
        import torch

        return torch.take_along_dim(X, i[..., None, None], dim=-2)[..., 0, :]
    return np.take_along_axis(X, i[..., None, None], axis=-2)[..., 0, :]


def attention_heads_ref(X, y, Q, K) -> np.ndarray:
    """float64 heads (..., H, d): head_h = Σ_i softmax_i(⟨Q_h y, K_h x_i⟩) x_i; Q, K (..., H, r, d)."""
    X, y, Q, K = (np.asarray(a, np.float64) for a in (X, y, Q, K))
    Qb = Q[..., None, :, :, :] if Q.ndim == X.ndim else Q  # sweep heads broadcast over the samples axis
    Kb = K[..., None, :, :, :] if K.ndim == X.ndim else K
    qy = np.einsum("...hrd,...d->...hr", Qb, y)  # (..., H, r)
    kx = np.einsum("...hrd,...nd->...hnr", Kb, X)  # (..., H, N, r)
    s = np.einsum("...hr,...hnr->...hn", qy, kx)  # (..., H, N) logits
    s = s - s.max(axis=-1, keepdims=True)
    w = np.exp(s)
    w = w / w.sum(axis=-1, keepdims=True)
    return np.einsum("...hn,...nd->...hd", w, X)  # (..., H, d)


def attention_heads(X, y, Q, K, *, backend="auto"):
    """Every head's output (..., H, d).  Q, K (H, r, d) shared by all samples, or (sweep..., H, r, d)
    with X (sweep..., samples, N, d).  Backends ``"ref"`` (float64 numpy einsum), ``"numba"``
    (float64, one compiled pass over items, samples and heads, the exponential included;
    :mod:`theorylab.lowrank._heads_numba`), ``"torch"`` (differentiable), ``"auto"`` (torch
    tensors -> torch, numpy -> numba when installed, else ref)."""
    kind = _check(X, y, Q, K)
    backend = resolve_backend(backend, (X, y, Q, K), valid=HEADS_BACKENDS)
    if backend == "torch":
        from ._heads_torch import attention_heads_torch

        return like_input(attention_heads_torch(*(to_torch(a) for a in (X, y, Q, K))), X)
    if backend == "numba":
        from ._heads_numba import attention_heads_numba

        out = attention_heads_numba(*(to_numpy(a) for a in (X, y, Q, K)))
    else:
        out = attention_heads_ref(*(to_numpy(a) for a in (X, y, Q, K)))
    return like_input(out, X) if kind == "torch" else out.astype(X.dtype, copy=False)


def multihead_lowrank(X, y, Q, K, O, *, backend="auto"):
    """F(X, y) = Σ_h O_h head_h(X, y) (..., d); O (H, d, d) or (sweep..., H, d, d)."""
    _check(X, y, Q, K)
    check_inputs({"X": X, "O": O}, {"X": (2, "(..., N, d)"), "O": (3, "(..., H, d, d)")})
    d, H = X.shape[-1], Q.shape[-3]
    if tuple(O.shape[-3:]) != (H, d, d):
        raise mismatch("O", O, f"(..., {H}, {d}, {d}): one d x d output map per head", {"Q": Q, "O": O})
    heads = attention_heads(X, y, Q, K, backend=backend)  # (..., T, H, d)
    Ob = O[..., None, :, :, :] if O.ndim == X.ndim else O  # sweep weights broadcast over samples
    if is_tensor(heads):
        import torch

        return torch.einsum("...hed,...hd->...e", to_torch(Ob).to(heads), heads)
    return np.einsum("...hed,...hd->...e", Ob, heads)


def fit_output_weights(X, y, Q, K, *, target=None, rcond=1e-10, method="auto", backend="auto"):
    """Least-squares O (sweep..., H, d, d) of Σ_h O_h head_h ≈ target over the samples axis.

    X (sweep..., T, N, d), Q, K (sweep..., H, r, d); ``target`` (sweep..., T, d) defaults to the
    nearest point.  With Φ (sweep..., T, H d) the heads side by side, every item of the sweep is
    solved at once by :func:`lstsq_batched` (``method``: ``"normal"``/``"auto"`` normal equations
    with a per-item conditioning check and SVD fallback, ``"svd"`` one batched SVD); the heads
    come from :func:`attention_heads` on ``backend`` (``"ref"``, ``"numba"``, ``"torch"``, ``"auto"``);
    O = V diag(1/σ) Uᵀ f with σ < rcond σ_max dropped (zero heads padded in are harmless).
    On ``"numba"`` (numpy inputs) the heads and the nearest-point targets come from one compiled
    pass, and for float64 with T >= H d the normal equations are solved by one compiled call over
    the items (Cholesky, the same exact 1-norm condition check and SVD fallback as
    :func:`lstsq_batched`).
    """
    kind = _check(X, y, Q, K)
    if target is not None:
        _check_target(target, X, Q)
    compiled = kind == "numpy" and resolve_backend(backend, (X, y, Q, K), valid=HEADS_BACKENDS) == "numba"
    if compiled:
        from ._heads_numba import heads_numba  # inputs checked once, above

        heads, f = heads_numba(X, y, Q, K, nearest=target is None)  # one compiled pass, targets included
        heads = heads.astype(X.dtype, copy=False)
        f = f.astype(X.dtype, copy=False) if target is None else np.asarray(target)
    else:
        heads = attention_heads(X, y, Q, K, backend=backend)  # (sweep..., T, H, d)
        f = nearest_point_target(X, y) if target is None else target
    shp = tuple(heads.shape)
    Phi = heads.reshape(shp[:-2] + (shp[-2] * shp[-1],))  # (sweep..., T, H d)
    if compiled and _fits_compiled_solve(Phi, f, method):
        W = _lstsq_normal_numba(Phi, f, rcond)
    else:
        W = lstsq_batched(Phi, to_torch(f).to(Phi) if is_tensor(Phi) else np.asarray(f), rcond=rcond, method=method)
    H, d = shp[-2], shp[-1]
    W = W.reshape(W.shape[:-2] + (H, d, d))  # rows (h, d_in) -> (H, d_in, d_out)
    return W.transpose(-1, -2) if is_tensor(W) else np.swapaxes(W, -1, -2)  # O_h maps head -> output


def _check_target(target, X, Q) -> None:
    """``target`` (sweep..., T, d): the samples and dimension of X, leading axes broadcasting to the sweep."""
    if not (is_tensor(target) or isinstance(target, np.ndarray)):
        raise TypeError(f"target must be a numpy array or torch tensor; got {type(target).__name__}")
    T, d = X.shape[-3], X.shape[-1]
    sweep = np.broadcast_shapes(X.shape[:-3], Q.shape[:-3])
    shape = tuple(target.shape)
    try:
        ok = len(shape) >= 2 and shape[-2:] == (T, d) and np.broadcast_shapes(shape[:-2], sweep) == sweep
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"target must have shape (sweep..., T, d) = {sweep + (T, d)}; got {shape} "
                         f"(X {tuple(X.shape)}, Q {tuple(Q.shape)})")
    V_.check_finite("target", target)


def _fits_compiled_solve(Phi, f, method) -> bool:
    """The compiled normal equations apply: float64 Φ (..., T, P) with T >= P and float64 f
    (its shape checked by :func:`_check_target`), method "auto"/"normal" (else lstsq_batched)."""
    if method not in ("auto", "normal") or Phi.dtype != np.float64 or f.dtype != np.float64:
        return False
    T, P = Phi.shape[-2:]
    return T >= P


def _lstsq_normal_numba(Phi, f, rcond, widths=None):
    """:func:`lstsq_batched`'s ``"normal"`` path in one compiled call over the items
    (:func:`._heads_numba.normal_equations`: Cholesky, exact 1-norm condition check), the items it
    marks re-solved by :func:`_lstsq_svd`.  Φ (..., T, P), f (..., T, k) float64, T >= P.

    With ``widths`` (increasing, <= P): W (..., len(widths), P, k), for each width p the least
    squares of the first p columns of Φ (rows past p zero), all from one factorization per item
    (a width above T is singular: flagged, and solved by the SVD); without: W (..., P, k)."""
    from ._heads_numba import normal_equations

    lead = np.broadcast_shapes(Phi.shape[:-2], f.shape[:-2])
    (T, P), k = Phi.shape[-2:], f.shape[-1]
    ws = np.array([P] if widths is None else widths, dtype=np.int64)
    if ws.size == 0 or ws[0] < 1 or ws[-1] > P or np.any(np.diff(ws) <= 0):
        raise ValueError(f"widths must increase strictly within 1..{P}; got {ws.tolist()}")
    Pf = np.ascontiguousarray(np.broadcast_to(Phi, lead + (T, P))).reshape(-1, T, P)  # (items, T, P)
    ff = np.ascontiguousarray(np.broadcast_to(f, lead + (T, k))).reshape(-1, T, k)  # (items, T, k)
    W, bad = normal_equations(Pf, ff, ws, COND_MAX)  # (items, widths, P, k), (items, widths)
    for w, p in enumerate(ws):
        if bad[:, w].any():
            W[bad[:, w], w, :p] = _lstsq_svd(Pf[bad[:, w], :, :p], ff[bad[:, w]], rcond)
    W = W.reshape(lead + (len(ws), P, k))
    return W[..., 0, :, :] if widths is None else W


COND_MAX = 1e6  # normal equations only where cond_1(ΦᵀΦ) <= 1e6: solution error ~ cond · eps <= ~1e-10


def _lstsq_svd(Phi, f, rcond):
    """Minimum-norm least squares by one batched SVD: V diag(1/σ) Uᵀ f, σ < rcond σ_max dropped."""
    if is_tensor(Phi):
        import torch

        U, s, Vh = torch.linalg.svd(Phi, full_matrices=False)
        inv = torch.where(s > rcond * s[..., :1], 1.0 / torch.where(s > 0, s, torch.ones_like(s)), torch.zeros_like(s))
        return Vh.transpose(-1, -2) @ (inv[..., None] * (U.transpose(-1, -2) @ f))
    U, s, Vh = np.linalg.svd(Phi, full_matrices=False)
    inv = np.where(s > rcond * s[..., :1], 1.0 / np.where(s > 0, s, 1.0), 0.0)
    return np.swapaxes(Vh, -1, -2) @ (inv[..., None] * (np.swapaxes(U, -1, -2) @ f))


def lstsq_batched(Phi, f, *, rcond=1e-10, method="auto"):
    """W (..., P, k) = argmin ||Φ W − f|| for every item of Φ (..., T, P), f (..., T, k).

    ``"normal"`` (= ``"auto"``): G = ΦᵀΦ, W = G⁻¹ Φᵀ f by one batched inverse; each item's exact
    1-norm condition number ||G||₁ ||G⁻¹||₁ is checked, and items with cond > :data:`COND_MAX`
    (or singular G: rank-deficient Φ, T < P) are re-solved by the SVD path, so the answer
    is the minimum-norm solution of :func:`_lstsq_svd` in every case (error model: normal
    equations lose cond(G) = cond(Φ)² · eps; below 1e6 that is <= 1e-10 relative).
    ``"svd"``: one batched SVD for all items.  numpy (float64) or torch (differentiable)."""
    if method not in ("auto", "normal", "svd"):
        raise ValueError(f"method must be 'auto', 'normal' or 'svd'; got {method!r}")
    if method == "svd" or Phi.shape[-2] < Phi.shape[-1]:  # fewer samples than features: G is singular
        return _lstsq_svd(Phi, f, rcond)
    if is_tensor(Phi):
        import torch

        G = Phi.transpose(-1, -2) @ Phi  # (..., P, P)
        Ginv, info = torch.linalg.inv_ex(G)
        cond = torch.linalg.matrix_norm(G, ord=1) * torch.linalg.matrix_norm(Ginv, ord=1)
        bad = (info != 0) | ~torch.isfinite(cond) | (cond > COND_MAX)
        W = Ginv @ (Phi.transpose(-1, -2) @ f)
        if bool(bad.any()):
            W = W.clone()
            W[bad] = _lstsq_svd(Phi[bad], f[bad], rcond)
        return W
    G = np.swapaxes(Phi, -1, -2) @ Phi
    G2 = G.reshape((-1,) + G.shape[-2:])
    try:
        Ginv = np.linalg.inv(G2)  # one batched call
    except np.linalg.LinAlgError:  # an exactly singular item: invert the others one by one, NaN marks it
        Ginv = np.full_like(G2, np.nan)
        for i, g in enumerate(G2):
            try:
                Ginv[i] = np.linalg.inv(g)
            except np.linalg.LinAlgError:
                pass
    Ginv = Ginv.reshape(G.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        cond = np.abs(G).sum(-2).max(-1) * np.abs(Ginv).sum(-2).max(-1)  # ||G||₁ ||G⁻¹||₁ (..,)
        W = Ginv @ (np.swapaxes(Phi, -1, -2) @ f)
    bad = ~np.isfinite(cond) | (cond > COND_MAX)
    if bad.any():
        W[bad] = _lstsq_svd(Phi[bad], f[bad], rcond)
    return W
