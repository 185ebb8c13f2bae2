"""numba kernel of SSD (imported lazily; compiled on first call, cached on disk).

``ssd_numba`` must match :func:`theorylab.ssm.ssd.ssd_ref`.  It is the chunked algorithm
of :mod:`theorylab.ssm.ssd` with the diagonal blocks (1) and chunk states (2) computed by
running the recurrence inside each chunk from a zero state, which on a CPU is the
cheapest exact form: the (state x head_dim) state stays in L1 cache and each step costs
3·N·P flops in loops that vectorize over head_dim, against Q·(N + P) per step for the
quadratic diagonal block.  Three phases, each parallel:

1. every (batch, head, chunk): local recurrence H_t = a_t H_{t-1} + x_t B_tᵀ from H = 0,
   y_t = H_t C_t; the final local state is the chunk state S(c);
2. every (batch, head): inter-chunk recurrence H_in(c+1) = exp(Σ_{k in c} log_a_k) H_in(c) + S(c);
3. every (batch, head, chunk >= 1): y_t += exp(Σ_{k=start..t} log_a_k) H_in(c) C_t.

With chunk_size >= length there is one chunk and phases 2-3 vanish: the plain recurrence,
parallel over batch x heads only.  Every decay is a product of factors a_t in (0, 1] or
the exp of a float64 sum <= 0, so nothing overflows at any length.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, fastmath=True)
def _local_recurrence(X, log_a, B, C, bi, hi, start, end, H, Y):  # pragma: no cover - compiled
    """Phase 1 for steps start..end-1 from H (zeroed by the caller); two steps per pass over H."""
    p = X.shape[3]
    n = B.shape[3]
    y0 = np.empty(p, X.dtype)
    y1 = np.empty(p, X.dtype)
    t = start
    while t + 1 < end:
        a0 = math.exp(log_a[bi, t, hi])
        a1 = math.exp(log_a[bi, t + 1, hi])
        for q in range(p):
            y0[q] = 0.0
            y1[q] = 0.0
        for k in range(n):
            b0 = B[bi, t, hi, k]
            b1 = B[bi, t + 1, hi, k]
            c0 = C[bi, t, hi, k]
            c1 = C[bi, t + 1, hi, k]
            for q in range(p):
                v0 = a0 * H[k, q] + b0 * X[bi, t, hi, q]  # H_t = a_t H_{t-1} + x_t B_tᵀ
                v1 = a1 * v0 + b1 * X[bi, t + 1, hi, q]  # H_{t+1}
                H[k, q] = v1
                y0[q] += c0 * v0  # y_t = H_t C_t
                y1[q] += c1 * v1
        for q in range(p):
            Y[bi, t, hi, q] = y0[q]
            Y[bi, t + 1, hi, q] = y1[q]
        t += 2
    if t < end:  # odd number of steps: the last one alone
        a0 = math.exp(log_a[bi, t, hi])
        for q in range(p):
            y0[q] = 0.0
        for k in range(n):
            b0 = B[bi, t, hi, k]
            c0 = C[bi, t, hi, k]
            for q in range(p):
                v0 = a0 * H[k, q] + b0 * X[bi, t, hi, q]
                H[k, q] = v0
                y0[q] += c0 * v0
        for q in range(p):
            Y[bi, t, hi, q] = y0[q]


@njit(parallel=True, cache=True, fastmath=True)
def _ssd_kernel(X, log_a, B, C, Q, Y, states):  # pragma: no cover - compiled
    b, L, h, p = X.shape
    n = B.shape[3]
    nc = (L + Q - 1) // Q
    # 1: local recurrences; S(c) -> states[bi, hi, c] (not needed for a single chunk)
    for job in prange(b * h * nc):
        bi = job // (h * nc)
        hi = (job // nc) % h
        c = job % nc
        H = np.zeros((n, p), X.dtype)
        _local_recurrence(X, log_a, B, C, bi, hi, c * Q, min(c * Q + Q, L), H, Y)
        if nc > 1:
            states[bi, hi, c] = H
    if nc == 1:
        return
    # 2: inter-chunk recurrence, in place: states[c] <- H_in(c)
    for job in prange(b * h):
        bi = job // h
        hi = job % h
        run = np.zeros((n, p), X.dtype)
        for c in range(nc):
            tot = 0.0
            for t in range(c * Q, min(c * Q + Q, L)):
                tot += log_a[bi, t, hi]
            decay = math.exp(tot)
            for k in range(n):
                for q in range(p):
                    s = states[bi, hi, c, k, q]
                    states[bi, hi, c, k, q] = run[k, q]
                    run[k, q] = decay * run[k, q] + s
    # 3: state -> output for chunks >= 1
    for job in prange(b * h * (nc - 1)):
        bi = job // (h * (nc - 1))
        hi = (job // (nc - 1)) % h
        c = job % (nc - 1) + 1
        y = np.empty(p, X.dtype)
        cs = 0.0
        for t in range(c * Q, min(c * Q + Q, L)):
            cs += log_a[bi, t, hi]
            e = math.exp(cs)  # exp(Σ_{k=start..t} log_a_k)
            for q in range(p):
                y[q] = Y[bi, t, hi, q]
            for k in range(n):
                ck = e * C[bi, t, hi, k]
                for q in range(p):
                    y[q] += ck * states[bi, hi, c, k, q]
            for q in range(p):
                Y[bi, t, hi, q] = y[q]


def ssd_numba(X, log_a, B, C, *, chunk_size: int = 64):
    """Chunked SSD with recurrent diagonal blocks; returns Y (b, L, h, p) in the dtype of ``X``."""
    dt = X.dtype
    b, L, h, p = X.shape
    n = B.shape[3]
    Q = min(int(chunk_size), L)
    nc = -(-L // Q)
    arrs = [np.ascontiguousarray(v, dtype=dt) for v in (X, log_a, B, C)]
    Y = np.empty(X.shape, dt)
    states = np.empty((b, h, nc, n, p) if nc > 1 else (0, 0, 0, n, p), dt)  # (b, h, nc, n, p)
    _ssd_kernel(*arrs, Q, Y, states)
    return Y
