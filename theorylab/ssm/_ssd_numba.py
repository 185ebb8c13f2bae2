"""numba kernel of SSD (imported lazily; compiled on first call, cached on disk).

``ssd_numba`` must match :func:`theorylab.ssm.ssd.ssd_ref`.  It runs the chunked
algorithm (blocks 1-4 of :mod:`theorylab.ssm.ssd`) with one job per (batch, head),
parallel over jobs; inside a job the state H (state x head_dim) stays in a local buffer
and every inner loop runs over a contiguous head_dim or state axis, so it vectorizes.
Only the lower triangle of each diagonal block is computed.

Log-decays are summed in float64 inside each chunk (cs[i] = Σ_{j<=i} log_a_{start+j});
a segment sum Σ_{k=s+1..t} log_a_k = cs[t] - cs[s] then has an absolute error of about
1e-16 · |cs| <= 1e-16 · Q · max|log_a|, far below float32 resolution, and the exponent
is always <= 0, so nothing overflows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, fastmath=True)
def _ssd_kernel(X, log_a, B, C, Q, Y):  # pragma: no cover - compiled
    b, L, h, p = X.shape
    n = B.shape[3]
    for job in prange(b * h):
        bi = job // h
        hi = job % h
        H = np.zeros((n, p), X.dtype)  # H_in of the current chunk, stored as (state, head_dim)
        Bt = np.empty((n, Q), X.dtype)  # the chunk's B, transposed: Bt[k, j] = B_{start+j}[k]
        y = np.empty(p, X.dtype)
        g = np.empty(Q, X.dtype)  # row t of the diagonal block: L[t, s] <C_t, B_s>
        drow = np.empty(Q, X.dtype)  # row t of the decay mask: L[t, s] = Π_{k=s+1..t} a_k
        e_start = np.empty(Q, X.dtype)  # exp(Σ_{k=start..t} log_a_k)
        e_end = np.empty(Q, X.dtype)  # exp(Σ_{k=s+1..end} log_a_k)
        cs = np.empty(Q, np.float64)
        for start in range(0, L, Q):
            T = min(Q, L - start)
            acc = 0.0
            for i in range(T):
                acc += log_a[bi, start + i, hi]
                cs[i] = acc
            for i in range(T):
                e_start[i] = math.exp(cs[i])
                e_end[i] = math.exp(cs[T - 1] - cs[i])
            for j in range(T):
                for k in range(n):
                    Bt[k, j] = B[bi, start + j, hi, k]
            for i in range(T):
                t = start + i
                # L[t, s] = a_t L[t-1, s] for s < t, L[t, t] = 1: products of factors in (0, 1]
                a_t = math.exp(log_a[bi, t, hi])
                for j in range(i):
                    drow[j] *= a_t
                drow[i] = 1.0
                # 1: g[s] = L[t, s] <C_t, B_s>, then y_t = Σ_{s<=t} g[s] x_s
                for j in range(i + 1):
                    g[j] = 0.0
                for k in range(n):
                    ck = C[bi, t, hi, k]
                    for j in range(i + 1):
                        g[j] += ck * Bt[k, j]
                for j in range(i + 1):
                    g[j] *= drow[j]
                for q in range(p):
                    y[q] = 0.0
                for j in range(i + 1):
                    gj = g[j]
                    for q in range(p):
                        y[q] += gj * X[bi, start + j, hi, q]
                # 4: y_t += exp(Σ_{k=start..t} log_a_k) Σ_k C_t[k] H[k, :]
                for k in range(n):
                    ck = e_start[i] * C[bi, t, hi, k]
                    for q in range(p):
                        y[q] += ck * H[k, q]
                for q in range(p):
                    Y[bi, t, hi, q] = y[q]
            # 3 + 2: H <- exp(Σ_{k in chunk} log_a_k) H + Σ_s exp(Σ_{k=s+1..end} log_a_k) B_s x_sᵀ
            tot = e_start[T - 1]
            for k in range(n):
                for q in range(p):
                    H[k, q] *= tot
                for j in range(T):
                    bk = e_end[j] * Bt[k, j]
                    for q in range(p):
                        H[k, q] += bk * X[bi, start + j, hi, q]


def ssd_numba(X, log_a, B, C, *, chunk_size: int = 64):
    """Chunked SSD in compiled loops; returns Y (b, L, h, p) in the dtype of ``X``."""
    dt = X.dtype
    L = X.shape[1]
    arrs = [np.ascontiguousarray(v, dtype=dt) for v in (X, log_a, B, C)]
    Y = np.empty(X.shape, dt)
    _ssd_kernel(*arrs, min(int(chunk_size), L), Y)
    return Y
