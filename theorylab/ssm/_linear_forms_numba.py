"""numba kernel of :mod:`theorylab.ssm.linear_forms` (imported lazily; compiled on first call, cached).

``la_recurrent`` is the serial recurrence of
:func:`theorylab.ssm.linear_forms.linear_attention_recurrent` (on features already applied,
values with the appended 1), one (batch, head) pair per parallel job, in the input's dtype,
and must match it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

__all__ = ["la_recurrent"]


@njit(parallel=True, cache=True)
def la_recurrent(fq, fk, v1, S):
    """S_t = S_{t-1} + φ(k_t) [v_t, 1]ᵀ, out_t = φ(q_t)ᵀ S_t; S (b, h, dk, dv+1) updated in place."""
    b, L, h, dk = fq.shape
    dv1 = v1.shape[3]
    out = np.zeros((b, L, h, dv1), dtype=fq.dtype)
    for job in prange(b * h):
        i, j = job // h, job % h
        for t in range(L):
            for kk in range(dk):
                kv = fk[i, t, j, kk]
                qv = fq[i, t, j, kk]
                for vv in range(dv1):
                    S[i, j, kk, vv] += kv * v1[i, t, j, vv]
                    out[i, t, j, vv] += qv * S[i, j, kk, vv]
    return out, S
