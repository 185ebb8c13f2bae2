"""numba kernel of :mod:`theorylab.ssm.hla` (imported lazily; compiled on first call, cached).

``hla_recurrent`` is the serial recurrence of :func:`theorylab.ssm.hla.hla2_recurrent`, one
(batch, head) pair per parallel job, in the input's dtype, and must match it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

__all__ = ["hla_recurrent"]


@njit(parallel=True, cache=True)
def hla_recurrent(q, k, v, S, C, G):
    """Second-order HLA: G += S q vᵀ, S += k kᵀ, C += q vᵀ, y = qᵀ (S C - G); state in place."""
    b, L, h, dk = q.shape
    dv = v.shape[3]
    y = np.zeros((b, L, h, dv), dtype=q.dtype)
    for job in prange(b * h):
        i, j = job // h, job % h
        Sq = np.empty(dk, dtype=q.dtype)
        qS = np.empty(dk, dtype=q.dtype)
        for t in range(L):
            for r in range(dk):  # (S_{t-1} q_t)[r]
                acc = 0.0
                for c in range(dk):
                    acc += S[i, j, r, c] * q[i, t, j, c]
                Sq[r] = acc
            for r in range(dk):
                for vv in range(dv):
                    G[i, j, r, vv] += Sq[r] * v[i, t, j, vv]
                    C[i, j, r, vv] += q[i, t, j, r] * v[i, t, j, vv]
                for c in range(dk):
                    S[i, j, r, c] += k[i, t, j, r] * k[i, t, j, c]
            for c in range(dk):  # (q_tᵀ S_t)[c]
                acc = 0.0
                for r in range(dk):
                    acc += q[i, t, j, r] * S[i, j, r, c]
                qS[c] = acc
            for vv in range(dv):  # y_t = (qᵀ S) C - qᵀ G
                acc = 0.0
                for c in range(dk):
                    acc += qS[c] * C[i, j, c, vv] - q[i, t, j, c] * G[i, j, c, vv]
                y[i, t, j, vv] = acc
    return y, S, C, G
