"""numba path of :func:`theorylab.lowrank.attention_heads`: must match ``attention_heads_ref``.

Same arithmetic as the reference, per (item, sample, head): q = Q_h y (r,), the logits
s_i = q · (K_h x_i), shifted by their maximum; the exponentials are one vectorized numpy call
over every item (a compiled scalar ``exp`` per logit is the slower part otherwise); then
head_h = Σ_i e^{s_i} x_i / Σ_i e^{s_i}.  Two compiled loops, no Python loop over items or heads.

Inputs are flattened by :func:`attention_heads_numba`: X (S, T, N, d), y (S, T, d) and Q, K
(S, H, r, d), one set of heads per item s shared by its T samples.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _logits(X, y, Q, K):
    """Shifted logits (S, T, H, N): s_i − max_j s_j with s_i = (Q_h y)·(K_h x_i)."""
    S, T, N, d = X.shape
    H, r = Q.shape[1], Q.shape[2]
    out = np.empty((S, T, H, N))
    q = np.empty(r)
    for a in range(S):
        for t in range(T):
            for h in range(H):
                for k in range(r):
                    acc = 0.0
                    for c in range(d):
                        acc += Q[a, h, k, c] * y[a, t, c]
                    q[k] = acc
                m = -np.inf
                for i in range(N):
                    s = 0.0
                    for k in range(r):
                        acc = 0.0
                        for c in range(d):
                            acc += K[a, h, k, c] * X[a, t, i, c]
                        s += q[k] * acc
                    out[a, t, h, i] = s
                    m = max(m, s)
                for i in range(N):
                    out[a, t, h, i] -= m
    return out


@njit(cache=True)
def _combine(X, w):
    """head (S, T, H, d) = Σ_i w_i x_i / Σ_i w_i for unnormalized weights w (S, T, H, N)."""
    S, T, N, d = X.shape
    H = w.shape[2]
    out = np.empty((S, T, H, d))
    for a in range(S):
        for t in range(T):
            for h in range(H):
                tot = 0.0
                for i in range(N):
                    tot += w[a, t, h, i]
                for c in range(d):
                    acc = 0.0
                    for i in range(N):
                        acc += w[a, t, h, i] * X[a, t, i, c]
                    out[a, t, h, c] = acc / tot
    return out


def attention_heads_numba(X, y, Q, K) -> np.ndarray:
    """float64 heads (..., H, d), the broadcasting of ``attention_heads_ref`` (Q, K (..., H, r, d))."""
    X, y, Q, K = (np.asarray(a, np.float64) for a in (X, y, Q, K))
    H, r, d = Q.shape[-3:]
    N = X.shape[-2]
    if Q.ndim == X.ndim:  # one set of heads per sweep item, shared by its samples
        sweep = np.broadcast_shapes(X.shape[:-3], Q.shape[:-3])
        T = X.shape[-3]
        lead = sweep + (T,)
        Xf = np.broadcast_to(X, sweep + X.shape[-3:]).reshape(-1, T, N, d)
        yf = np.broadcast_to(y, sweep + y.shape[-2:]).reshape(-1, T, d)
        Qf, Kf = (np.broadcast_to(A, sweep + (H, r, d)).reshape(-1, H, r, d) for A in (Q, K))
    else:
        lead = np.broadcast_shapes(X.shape[:-2], Q.shape[:-3])
        if all(s == 1 for s in Q.shape[:-3]):  # heads shared by every sample: one item of all samples
            Xf = np.broadcast_to(X, lead + (N, d)).reshape(1, -1, N, d)
            yf = np.broadcast_to(y, lead + (d,)).reshape(1, -1, d)
            Qf, Kf = (A.reshape(1, H, r, d) for A in (Q, K))
        else:  # general broadcast: one item per sample
            Xf = np.broadcast_to(X, lead + (N, d)).reshape(-1, 1, N, d)
            yf = np.broadcast_to(y, lead + (d,)).reshape(-1, 1, d)
            Qf, Kf = (np.broadcast_to(A, lead + (H, r, d)).reshape(-1, H, r, d) for A in (Q, K))
    Xf, yf, Qf, Kf = (np.ascontiguousarray(a) for a in (Xf, yf, Qf, Kf))
    w = _logits(Xf, yf, Qf, Kf)
    np.exp(w, out=w)
    return _combine(Xf, w).reshape(lead + (H, d))


@njit(cache=True)
def _nearest(X, y):
    """x_{argmax_i ⟨x_i, y⟩} (P, d) for X (P, N, d), y (P, d); the first maximum, as numpy's argmax."""
    P, N, d = X.shape
    out = np.empty((P, d))
    for a in range(P):
        best, arg = -np.inf, 0
        for i in range(N):
            s = 0.0
            for c in range(d):
                s += X[a, i, c] * y[a, c]
            if s > best:
                best, arg = s, i
        for c in range(d):
            out[a, c] = X[a, arg, c]
    return out


def nearest_point_numba(X, y) -> np.ndarray:
    """float64 nearest point (..., d) of X (..., N, d) to y (..., d) (inputs validated by the caller)."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    y = np.ascontiguousarray(y, dtype=np.float64)
    N, d = X.shape[-2:]
    return _nearest(X.reshape(-1, N, d), y.reshape(-1, d)).reshape(y.shape)
