"""numba kernel of :mod:`theorylab.sparse.sparse_attention` (imported lazily; compiled on first call, cached on disk).

``attention_csr_numba`` must match :func:`theorylab.sparse.sparse_attention.attention_ref`.
Its ``indptr`` / ``indices`` come from ``Pattern.csr(n)``, which checks every index once
(:func:`theorylab.sparse.patterns.check_csr`: keys of row i in [0, i], strictly increasing,
ending at i); the kernel reads only those rows (tested under ``NUMBA_BOUNDSCHECK=1``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches


@njit(parallel=True, cache=True)
def _csr_kernel(q, k, v, indptr, indices, scale, out):  # pragma: no cover - compiled
    bh, n, d = q.shape
    dv = v.shape[2]
    for job in prange(bh * n):
        g = job // n
        i = job % n
        lo = indptr[i]
        hi = indptr[i + 1]
        s = np.empty(hi - lo, np.float64)
        mx = -np.inf
        for p in range(lo, hi):  # s_ij = scale <q_i, k_j> over the allowed keys
            j = indices[p]
            acc = 0.0
            for e in range(d):
                acc += q[g, i, e] * k[g, j, e]
            s[p - lo] = acc * scale
            mx = max(mx, s[p - lo])
        acc_v = np.zeros(dv, np.float64)
        z = 0.0
        for p in range(lo, hi):  # Σ e^{s − max} v_j and Σ e^{s − max}
            w = math.exp(s[p - lo] - mx)
            z += w
            j = indices[p]
            for e in range(dv):
                acc_v[e] += w * v[g, j, e]
        for e in range(dv):
            out[g, i, e] = acc_v[e] / z


def attention_csr_numba(q, k, v, indptr, indices, scale):
    """q, k (B, H, n, d), v (B, H, n, dv) float32/float64; returns (B, H, n, dv) in q's dtype."""
    B, H, n, d = q.shape
    dv = v.shape[3]
    dt = q.dtype
    qs, ks, vs = (np.ascontiguousarray(a, dtype=dt).reshape(B * H, n, -1) for a in (q, k, v))
    out = np.empty((B * H, n, dv), dt)
    _csr_kernel(qs, ks, vs, np.ascontiguousarray(indptr, np.int64), np.ascontiguousarray(indices, np.int64), float(scale), out)
    return out.reshape(B, H, n, dv)
