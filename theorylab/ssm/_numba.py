"""numba kernels of the SSM theme (imported lazily; compiled on first call, cached on disk).

``selective_scan_numba`` must match ``selective_scan_ref``;
``selective_attention_matrix_numba`` must match ``selective_attention_matrix_ref``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _scan_kernel(x, delta, A, B, C, D, h0, y, hout):  # pragma: no cover - compiled
    b, L, c = x.shape
    n = A.shape[1]
    for job in prange(b * c):
        bi = job // c
        ci = job % c
        h = h0[bi, ci].copy()
        for t in range(L):
            dt = delta[bi, t, ci]
            dx = dt * x[bi, t, ci]
            acc = 0.0
            for k in range(n):
                h[k] = math.exp(dt * A[ci, k]) * h[k] + dx * B[bi, t, k]
                acc += h[k] * C[bi, t, k]
            y[bi, t, ci] = acc + D[ci] * x[bi, t, ci]
        hout[bi, ci] = h


def selective_scan_numba(x, delta, A, B, C, D=None, initial_state=None):
    """Returns ``(y, h_last)`` in the dtype of ``x`` (float32 or float64)."""
    dt = x.dtype
    b, L, c = x.shape
    n = A.shape[1]
    D = np.zeros(c, dt) if D is None else D
    h0 = np.zeros((b, c, n), dt) if initial_state is None else initial_state
    arrs = [np.ascontiguousarray(v, dtype=dt) for v in (x, delta, A, B, C, D, h0)]
    y = np.empty((b, L, c), dt)
    h = np.empty((b, c, n), dt)
    _scan_kernel(*arrs, y, h)
    return y, h


@njit(parallel=True, cache=True)
def _matrix_kernel(delta, A, B, C, M):  # pragma: no cover - compiled
    b, L, c = delta.shape
    n = A.shape[1]
    for job in prange(b * c):
        bi = job // c
        ci = job % c
        logdec = np.empty(n, delta.dtype)
        for s in range(L):
            for k in range(n):
                logdec[k] = 0.0
            for t in range(s, L):
                if t > s:
                    for k in range(n):
                        logdec[k] += delta[bi, t, ci] * A[ci, k]
                acc = 0.0
                for k in range(n):
                    acc += C[bi, t, k] * math.exp(logdec[k]) * B[bi, s, k]
                M[bi, ci, t, s] = acc * delta[bi, s, ci]


def selective_attention_matrix_numba(delta, A, B, C):
    dt = delta.dtype
    b, L, c = delta.shape
    arrs = [np.ascontiguousarray(v, dtype=dt) for v in (delta, A, B, C)]
    M = np.zeros((b, c, L, L), dt)
    _matrix_kernel(*arrs, M)
    return M
