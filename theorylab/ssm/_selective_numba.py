"""numba kernels of the selective scan (imported lazily; compiled on first call, cached on disk).

``selective_scan_numba`` must match :func:`theorylab.ssm.selective.selective_scan_ref`;
``selective_attention_matrix_numba`` must match
:func:`theorylab.ssm.selective.selective_attention_matrix_ref`.

Speed comes from two things, both needed because numba here has no vector math
library (``math.exp`` in a loop is a scalar call that blocks vectorization):

1. ``vexp`` (:mod:`theorylab.ssm._vexp`): an exponential made only of multiplies, fused
   multiply-adds, an integer shift and bit reinterpretations, so LLVM vectorizes loops
   that call it;
2. the scan is blocked over channels: one job owns a block of adjacent channels of one
   batch row, and the innermost loop runs over those channels -- unit stride, no
   reduction across lanes -- so it becomes one vector loop (see ``_scan_kernel``).

Measured by ``benchmarks/ssm_scan.py``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .._numba_cache import ensure_cache_dir, refresh_on_change

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

from . import _vexp
from ._vexp import _CONTRACT, vexp

__all__ = ["selective_scan_numba", "selective_attention_matrix_numba"]

# ---------------------------------------------------------------------------------------
# selective scan
# ---------------------------------------------------------------------------------------
# One job owns a block of cb adjacent channels c0 .. c0 + cb - 1 of one batch row b and
# runs the whole recurrence for them; with a = A[c0:c0+cb, :]^T (state, cb) and
# h (state, cb), for t = 0 .. L-1 and every state index k:
#
#     h[k, :] <- exp(Δ[b, t, c0:c0+cb] · a[k, :]) ⊙ h[k, :] + (Δ x)[b, t, c0:c0+cb] · B[b, t, k]
#     y[b, t, c0:c0+cb] = Σ_k C[b, t, k] · h[k, :] + D[c0:c0+cb] ⊙ x[b, t, c0:c0+cb]
#
# The innermost loop runs over the cb channel lanes: unit stride, B and C are scalars in
# it, no reduction across lanes, and ``vexp`` keeps it free of calls, so LLVM turns it
# into one vector loop (8 float32 lanes per ymm register on AVX2/AVX-512 hosts).
# Long lanes amortize the loop's entry cost (once per (t, k)), so blocks are as wide as
# possible (at most _CB_MAX, keeping a and h in L1 for state 16) while still giving every
# thread a job.

_LANES = 8  # block widths are multiples of this
_CB_MAX = 256  # widest channel block


@njit(parallel=True, cache=True, fastmath=_CONTRACT)
def _scan_kernel(x, delta, At, B, C, D, h0, y, hout, cbw):  # pragma: no cover - compiled
    b, L, c = x.shape
    n = At.shape[0]
    nblk = -(-c // cbw)
    for job in prange(b * nblk):
        bi = job // nblk
        c0 = (job % nblk) * cbw
        cb = min(cbw, c - c0)
        a = np.empty((n, cb), x.dtype)  # a[k, w] = A[c0 + w, k]
        h = np.empty((n, cb), x.dtype)  # h[k, w]: state k of channel c0 + w
        for k in range(n):
            for w in range(cb):
                a[k, w] = At[k, c0 + w]
                h[k, w] = h0[bi, c0 + w, k]
        dl = np.empty(cb, x.dtype)  # Δ_t of the block
        dx = np.empty(cb, x.dtype)  # Δ_t x_t
        acc = np.empty(cb, x.dtype)  # y_t
        for t in range(L):
            for w in range(cb):
                xv = x[bi, t, c0 + w]
                dl[w] = delta[bi, t, c0 + w]
                dx[w] = dl[w] * xv
                acc[w] = D[c0 + w] * xv
            for k in range(n):
                bk = B[bi, t, k]
                ck = C[bi, t, k]
                for w in range(cb):  # the vector loop
                    hk = vexp(dl[w] * a[k, w]) * h[k, w] + dx[w] * bk
                    h[k, w] = hk
                    acc[w] += hk * ck
            for w in range(cb):
                y[bi, t, c0 + w] = acc[w]
        for k in range(n):
            for w in range(cb):
                hout[bi, c0 + w, k] = h[k, w]


def _channel_block(batch: int, channels: int) -> int:
    """Channels per job: <= _CB_MAX, a multiple of _LANES, and batch * blocks >= threads."""
    threads = numba.get_num_threads()
    nblk = max(-(-channels // _CB_MAX), min(-(-threads // batch), -(-channels // _LANES)))
    cb = -(-channels // nblk)
    return -(-cb // _LANES) * _LANES


def selective_scan_numba(x, delta, A, B, C, D=None, initial_state=None):
    """Returns ``(y, h_last)`` in the dtype of ``x`` (float32 or float64).

    Must match ``selective_scan_ref``: float64 to 1e-10 and float32 to 1e-4 normwise.
    Shapes: x, delta (b, L, c); A (c, n); B, C (b, L, n); D (c,); initial_state (b, c, n).
    """
    dt = x.dtype
    b, L, c = x.shape
    n = A.shape[1]
    D = np.zeros(c, dt) if D is None else D
    h0 = np.zeros((b, c, n), dt) if initial_state is None else initial_state
    x, delta, A, B, C, D, h0 = (np.ascontiguousarray(v, dtype=dt) for v in (x, delta, A, B, C, D, h0))
    At = np.ascontiguousarray(A.T)  # (n, c)
    y = np.empty((b, L, c), dt)
    h = np.empty((b, c, n), dt)
    _scan_kernel(x, delta, At, B, C, D, h0, y, h, _channel_block(b, c))
    return y, h


# ---------------------------------------------------------------------------------------
# hidden attention matrix
# ---------------------------------------------------------------------------------------
# M[b, c, t, s] = Δ_s · Σ_k C_t[k] · exp(Σ_{j=s+1..t} Δ_j A[c, k]) · B_s[k]  (s <= t), else 0:
# for each column s the log-decays Σ_{j=s+1..t} Δ_j A[c, :] are accumulated as t grows.
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
                    acc += C[bi, t, k] * vexp(logdec[k]) * B[bi, s, k]
                M[bi, ci, t, s] = acc * delta[bi, s, ci]


def selective_attention_matrix_numba(delta, A, B, C):
    """Hidden attention matrix M (b, c, L, L) in the dtype of ``delta``.

    Must match ``selective_attention_matrix_ref``.
    """
    dt = delta.dtype
    b, L, c = delta.shape
    arrs = [np.ascontiguousarray(v, dtype=dt) for v in (delta, A, B, C)]
    M = np.zeros((b, c, L, L), dt)
    _matrix_kernel(*arrs, M)
    return M


refresh_on_change(globals(), [_vexp.__file__])  # the kernels above call _vexp's: recompile when it changes
