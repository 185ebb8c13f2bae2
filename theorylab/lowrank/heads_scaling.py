"""Rank against heads, measured: held-out error against H, the heads needed H*(ε), its rate in d.

Paper: #12 Amsel, Yehudai & Bruna, "On the Benefits of Rank in Attention Layers" (2024,
arXiv:2407.16153): for the nearest-point target (:mod:`theorylab.lowrank.heads`) one full-rank
head suffices, while rank-r heads with r << d need a number of heads exponential in d.

**Random rank-r heads.**  Q_h, K_h (r x d) with rows uniform on the sphere of radius
√(β/r) (:func:`random_heads`; logits (Q_h y)·(K_h x) = (β/r) Σ_k (u_k·y)(v_k·x), |logit| <= β).

**Held-out error.**  Output weights O fitted by least squares (:func:`~theorylab.lowrank.heads.lstsq_batched`)
on the first ``train`` samples, the error measured on the others:

    e(H) = mean_{t held out} ||Σ_{h<=H} O_h head_h(X_t, y_t) − f(X_t, y_t)||²

for the nested prefixes of H heads (:func:`held_out_errors`).  Predicting 0 gives e = 1.

**Heads needed.**  H*(ε) = the smallest H with e(H) <= ε, interpolated linearly in (log H, e)
between the two grid points around the crossing (:func:`heads_needed`; ``inf`` when the grid
never reaches ε).  **Rate**: κ = least-squares slope of log H*(ε) against d
(:func:`exponential_rate`); H* ~ c e^{κ d}.  One full-rank head (Q = K = √β I) reaches small
error at H = 1 for every d, so its rate is 0.

**Trained heads** (comparison, :func:`trained_heads_error`): Q, K, O of H rank-r heads trained
jointly by full-batch Adam on the same training samples (torch, float64, deterministic under
its seed), error on the same held-out samples.

Glossary: H -> number of heads; r -> rank; ε -> eps; H*(ε) -> ``heads_needed``; κ -> rate.
Shapes: X (sweep..., T, N, d), y (sweep..., T, d); Q, K (sweep..., H, r, d); errors (sweep..., len(Hs)).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V_
from ..backends import is_tensor, resolve_backend, to_numpy
from ._common import check_positive_real
from .heads import HEADS_BACKENDS, attention_heads, lstsq_batched, nearest_point_target

__all__ = ["random_heads", "held_out_errors", "heads_needed", "exponential_rate", "trained_heads_error"]


def random_heads(rng: np.random.Generator, H, d, *, rank=1, beta=4.0, batch=()) -> dict:
    """Q, K (batch..., H, rank, d): rows uniform on the sphere of radius √(β/rank), independent."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    H, d, rank = V_.check_size("H", H), V_.check_size("d", d), V_.check_size("rank", rank)
    beta = check_positive_real("beta", beta)
    shape = tuple(int(b) for b in batch) + (H, rank, d)
    out = {}
    for name in ("Q", "K"):
        z = rng.standard_normal(shape)
        out[name] = np.sqrt(beta / rank) * z / np.linalg.norm(z, axis=-1, keepdims=True)
    return out


NESTED_MAX_FEATURES = 256  # above, the per-H loop's BLAS Gram matrices beat the compiled one (BENCHMARKS.md)


def held_out_errors(X, y, Q, K, Hs, *, train, backend="auto", method="auto"):
    """Held-out mean squared error (sweep..., len(Hs)) of the first H heads, weights fitted on ``train`` samples.

    The heads come from the public :func:`~theorylab.lowrank.heads.attention_heads` on ``backend``
    (all H_max at once).  On ``"numba"`` (``"auto"`` for float64 numpy) every prefix's least
    squares comes from one compiled call over the sweep: one Cholesky factorization of the widest
    normal equations per item serves every H, as the leading blocks nest
    (:func:`~theorylab.lowrank._heads_numba.normal_equations`; prefixes above the condition
    bound re-solved by the SVD), and every prefix's residuals from one batched product, while
    H_max d <= :data:`NESTED_MAX_FEATURES` (at d = 5, H_max = 32: 0.03 s against 0.05 s for the
    loop; at d = 6, H_max = 128, 6,144 samples, the compiled Gram matrix takes 2.2 s against the
    loop's BLAS 1.1 s).  On ``"ref"``, ``"torch"`` and wider problems, the plain loop: one
    :func:`lstsq_batched` over the sweep per H.
    numpy in -> numpy float64 out; torch in -> torch out."""
    Hs = [V_.check_size("Hs", h) for h in Hs]
    T = X.shape[-3] if X.ndim >= 3 else 0
    train = V_.check_size("train", train)
    if not Hs or max(Hs) > Q.shape[-3]:
        raise ValueError(f"Hs must be non-empty and <= the {Q.shape[-3]} heads given; got {Hs}")
    if train >= T:
        raise ValueError(f"train must leave held-out samples: train = {train}, samples T = {T}")
    if method not in ("auto", "normal", "svd"):
        raise ValueError(f"method must be 'auto', 'normal' or 'svd'; got {method!r}")
    heads = attention_heads(X, y, Q, K, backend=backend)  # (sweep..., T, H, d)
    f = nearest_point_target(X, y)  # (sweep..., T, d)
    d = heads.shape[-1]
    compiled = (resolve_backend(backend, (X, y, Q, K), valid=HEADS_BACKENDS) == "numba"
                and heads.dtype == np.float64 and method != "svd" and max(Hs) * d <= NESTED_MAX_FEATURES)
    if compiled:  # every prefix from one factorization per item
        from .heads import _lstsq_normal_numba

        H_all = sorted(set(Hs))
        Phi = heads[..., : H_all[-1], :].reshape(tuple(heads.shape[:-2]) + (H_all[-1] * d,))  # (sweep..., T, P)
        W = _lstsq_normal_numba(Phi[..., :train, :], f[..., :train, :], 1e-10, [H * d for H in H_all])
        r = Phi[..., None, train:, :] @ W - f[..., None, train:, :]  # (sweep..., len(H_all), T - train, d)
        e = (r**2).sum(-1).mean(-1)  # (sweep..., len(H_all))
        return e[..., [H_all.index(H) for H in Hs]]
    errs = []
    for H in Hs:
        Phi = heads[..., :H, :].reshape(tuple(heads.shape[:-2]) + (H * d,))  # (sweep..., T, H d)
        W = lstsq_batched(Phi[..., :train, :], f[..., :train, :], method=method)  # (sweep..., H d, d)
        r = Phi[..., train:, :] @ W - f[..., train:, :]  # held-out residuals
        errs.append((r**2).sum(-1).mean(-1))
    if is_tensor(heads):
        import torch

        return torch.stack(errs, dim=-1)
    return np.stack(errs, axis=-1)


def heads_needed(Hs, errors, eps) -> np.ndarray:
    """H*(ε) (...,): smallest H with error <= ε, log-linear interpolation; ``inf`` if never reached.

    ``errors`` (..., len(Hs)) over the increasing grid ``Hs``; the first grid point when it already
    reaches ε (H* = Hs[0])."""
    eps = check_positive_real("eps", eps)
    e = np.asarray(to_numpy(errors), np.float64)
    Hs = np.asarray(Hs, np.float64)
    if Hs.ndim != 1 or e.shape[-1:] != Hs.shape or np.any(np.diff(Hs) <= 0) or np.any(Hs < 1):
        raise ValueError(f"Hs must be an increasing grid >= 1 matching errors' last axis; got Hs {Hs.tolist()}, "
                         f"errors {e.shape}")
    e2 = e.reshape(-1, Hs.size)
    out = np.full(e2.shape[0], np.inf)
    for i, row in enumerate(e2):
        hit = np.flatnonzero(row <= eps)
        if hit.size == 0:
            continue
        j = int(hit[0])
        if j == 0:
            out[i] = Hs[0]
            continue
        e0, e1 = row[j - 1], row[j]  # e0 > eps >= e1
        t = (e0 - eps) / (e0 - e1)
        out[i] = float(np.exp(np.log(Hs[j - 1]) + t * (np.log(Hs[j]) - np.log(Hs[j - 1]))))
    return out.reshape(e.shape[:-1])


def exponential_rate(ds, Hstar) -> np.ndarray:
    """κ (...,): least-squares slope of log H* against d (H* (..., len(ds)))."""
    d = np.asarray(ds, np.float64)
    L = np.log(np.asarray(Hstar, np.float64))
    if d.ndim != 1 or d.size < 2 or L.shape[-1:] != d.shape:
        raise ValueError(f"need >= 2 dimensions ds matching Hstar's last axis; got ds {d.tolist()}, Hstar {L.shape}")
    dc = d - d.mean()
    return (L - L.mean(-1, keepdims=True)) @ dc / (dc @ dc)


def trained_heads_error(X, y, H, *, rank=1, train, steps=300, lr=0.05, seed=0, beta=4.0):
    """Held-out error of H rank-r heads with Q, K, O trained by full-batch Adam (torch, float64).

    X (T, N, d), y (T, d) numpy; the first ``train`` samples train, the rest are held out.
    Initialisation: :func:`random_heads` rows (radius √(β/r)) and O = 0, from ``seed``."""
    from ._heads_torch import train_heads_torch

    H, rank, steps = V_.check_size("H", H), V_.check_size("rank", rank), V_.check_size("steps", steps)
    lr = check_positive_real("lr", lr)
    init = random_heads(np.random.default_rng(seed), H, X.shape[-1], rank=rank, beta=beta)
    return float(train_heads_torch(np.asarray(X, np.float64), np.asarray(y, np.float64), init["Q"], init["K"],
                                   train=V_.check_size("train", train), steps=steps, lr=lr))
