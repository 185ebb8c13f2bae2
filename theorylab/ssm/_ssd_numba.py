"""numba kernel of SSD (imported lazily; compiled on first call, cached on disk).

``ssd_numba`` must match :func:`theorylab.ssm.duality.ssd_ref`.  It is the chunked algorithm
of :mod:`theorylab.ssm.duality` with the diagonal blocks (1) and chunk states (2) computed by
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


_BLOCK = 64  # steps packed at a time into contiguous buffers


@njit(cache=True, fastmath=True)
def _recurrence_block(Xb, ab, Bb, Cb, T, H, Yb):  # pragma: no cover - compiled
    """T steps of H_t = a_t H_{t-1} + x_t B_tᵀ, y_t = H_t C_t on packed rows; two steps per pass over H."""
    p = Xb.shape[1]
    n = Bb.shape[1]
    y0 = np.empty(p, Xb.dtype)
    y1 = np.empty(p, Xb.dtype)
    i = 0
    while i + 1 < T:
        a0 = ab[i]
        a1 = ab[i + 1]
        for q in range(p):
            y0[q] = 0.0
            y1[q] = 0.0
        for k in range(n):
            b0 = Bb[i, k]
            b1 = Bb[i + 1, k]
            c0 = Cb[i, k]
            c1 = Cb[i + 1, k]
            for q in range(p):
                v0 = a0 * H[k, q] + b0 * Xb[i, q]  # H_t = a_t H_{t-1} + x_t B_tᵀ
                v1 = a1 * v0 + b1 * Xb[i + 1, q]  # H_{t+1}
                H[k, q] = v1
                y0[q] += c0 * v0  # y_t = H_t C_t
                y1[q] += c1 * v1
        for q in range(p):
            Yb[i, q] = y0[q]
            Yb[i + 1, q] = y1[q]
        i += 2
    if i < T:  # odd number of steps: the last one alone
        for q in range(p):
            y0[q] = 0.0
        for k in range(n):
            b0 = Bb[i, k]
            c0 = Cb[i, k]
            for q in range(p):
                v0 = ab[i] * H[k, q] + b0 * Xb[i, q]
                H[k, q] = v0
                y0[q] += c0 * v0
        for q in range(p):
            Yb[i, q] = y0[q]


@njit(cache=True, fastmath=True)
def _local_recurrence(X, log_a, B, C, bi, hi, start, end, H, Y):  # pragma: no cover - compiled
    """Phase 1 for steps start..end-1 from H (zeroed by the caller).

    The rows of one head lie heads·head_dim apart in X, B, C, Y (a power-of-two stride
    maps them onto the same cache sets), so blocks of steps are first packed into
    contiguous buffers."""
    p = X.shape[3]
    n = B.shape[3]
    Xb = np.empty((_BLOCK, p), X.dtype)
    Bb = np.empty((_BLOCK, n), X.dtype)
    Cb = np.empty((_BLOCK, n), X.dtype)
    Yb = np.empty((_BLOCK, p), X.dtype)
    ab = np.empty(_BLOCK, X.dtype)
    for t0 in range(start, end, _BLOCK):
        T = min(_BLOCK, end - t0)
        for i in range(T):
            ab[i] = math.exp(log_a[bi, t0 + i, hi])
            for q in range(p):
                Xb[i, q] = X[bi, t0 + i, hi, q]
            for k in range(n):
                Bb[i, k] = B[bi, t0 + i, hi, k]
                Cb[i, k] = C[bi, t0 + i, hi, k]
        _recurrence_block(Xb, ab, Bb, Cb, T, H, Yb)
        for i in range(T):
            for q in range(p):
                Y[bi, t0 + i, hi, q] = Yb[i, q]


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
