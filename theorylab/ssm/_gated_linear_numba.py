"""numba kernels of :mod:`theorylab.ssm.gated_linear` (imported lazily; compiled on first call, cached).

Each kernel is the serial recurrence of its reference, one (batch, head) pair per parallel
job, in the input's dtype, and must match it:

* ``gateloop_recurrent`` -- :func:`theorylab.ssm.gated_linear.gateloop_recurrent`;
* ``aft_recurrent``      -- :func:`theorylab.ssm.gated_linear.aft_simple_recurrent`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

__all__ = ["gateloop_recurrent", "aft_recurrent"]


@njit(parallel=True, cache=True)
def gateloop_recurrent(q, k, v, a, H):
    """H_t = diag(a_t) H_{t-1} + k_t v_tᵀ, y_t = q_tᵀ H_t; H (b, h, dk, dv) complex, in place."""
    b, L, h, dk = q.shape
    dv = v.shape[3]
    y = np.zeros((b, L, h, dv), dtype=H.dtype)
    for job in prange(b * h):
        i, j = job // h, job % h
        for t in range(L):
            for kk in range(dk):
                g = a[i, t, j, kk]
                kv = k[i, t, j, kk]
                qv = q[i, t, j, kk]
                for vv in range(dv):
                    H[i, j, kk, vv] = g * H[i, j, kk, vv] + kv * v[i, t, j, vv]
                    y[i, t, j, vv] += qv * H[i, j, kk, vv]
    return y, H


@njit(parallel=True, cache=True)
def aft_recurrent(q, k, v, m, num, den):
    """Running-max AFT-simple; m, num, den (b, h, d) updated in place (m = -inf: empty)."""
    b, L, h, d = q.shape
    y = np.empty_like(q)
    for job in prange(b * h):
        i, j = job // h, job % h
        for t in range(L):
            for c in range(d):
                kt = k[i, t, j, c]
                m_new = max(m[i, j, c], kt)
                old = math.exp(m[i, j, c] - m_new)
                new = math.exp(kt - m_new)
                num[i, j, c] = num[i, j, c] * old + new * v[i, t, j, c]
                den[i, j, c] = den[i, j, c] * old + new
                m[i, j, c] = m_new
                x = q[i, t, j, c]
                y[i, t, j, c] = 0.5 * (1.0 + math.tanh(0.5 * x)) * num[i, j, c] / den[i, j, c]
    return y, m, num, den
