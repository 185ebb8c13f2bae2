"""numba kernels of the linear-attention family (imported lazily; compiled on first call, cached).

Each kernel is the serial recurrence of its reference, one (batch, head) pair per parallel
job, in the input's dtype:

* ``la_recurrent``   must match :func:`theorylab.ssm.linear_forms.linear_attention_recurrent`
  (on features already applied, values with the appended 1);
* ``gateloop_recurrent`` must match :func:`theorylab.ssm.gated_linear.gateloop_recurrent`;
* ``aft_recurrent``  must match :func:`theorylab.ssm.gated_linear.aft_simple_recurrent`;
* ``hla_recurrent``  must match :func:`theorylab.ssm.hla.hla2_recurrent`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

__all__ = ["la_recurrent", "gateloop_recurrent", "aft_recurrent", "hla_recurrent"]


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
