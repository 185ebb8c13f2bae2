"""numba kernel of SSD (imported lazily; compiled on first call, cached on disk).

``ssd_numba`` must match :func:`theorylab.ssm.duality.ssd_ref`.  It is the chunked algorithm
of :mod:`theorylab.ssm.duality` with the diagonal blocks (1) and chunk states (2) computed by
running the recurrence inside each chunk from a zero state -- on a CPU the cheapest exact
form: the (state x head_dim) state stays in L1 cache and a step costs 3·N·P flops, against
Q·(N + P) more for the quadratic diagonal block.  Three phases, each parallel:

1. every (chunk, batch, head): local recurrence H_t = a_t H_{t-1} + x_t B_tᵀ from H = 0,
   y_t = H_t C_t; the final local state is the chunk state S(c);
2. every (batch, head): inter-chunk recurrence H_in(c+1) = exp(Σ_{k in c} log_a_k) H_in(c) + S(c);
3. every (batch, head, chunk >= 1): y_t += exp(Σ_{k=start..t} log_a_k) H_in(c) C_t.

With chunk_size >= length there is one chunk and phases 2-3 vanish: the plain recurrence.
Phases 1 and 3 share one time-blocked sweep over the jobs (``_sweep``).

How phase 1 runs at the machine's FMA rate (the numbers are in BENCHMARKS.md):

* ``_steps`` advances the state two steps per pass over it, on register tiles of
  2 vectors x 2 steps written with :mod:`theorylab._simd` (explicit 64-byte vectors), so
  the y accumulators never leave registers and each state row is loaded and stored once
  per two steps.
* The rows of one head lie heads·head_dim apart in X, B, C, Y (a power-of-two stride maps
  them onto the same cache sets), so blocks of ``_STEPS`` steps are packed into contiguous
  buffers first, and the next block's rows are prefetched while this one computes.
* A thread owns a contiguous range of jobs and walks up to ``_RUN`` heads of one chunk
  in lockstep, block by block, so its reads sweep each step's rows of neighbouring heads
  together; outputs go out with non-temporal stores when rows are 64-byte aligned.

Every decay is a product of factors a_t in (0, 1] or the exp of a float64 sum <= 0, so
nothing overflows at any length.  No fast-math flags beyond FMA contraction: a NaN or inf
in X, B or C reaches the output, whose checksum the caller tests instead of scanning the
inputs first.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from .._numba_cache import ensure_cache_dir, refresh_on_change

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

from .. import _simd as S

_STEPS = 16  # time block: steps of one head packed and run at a time
_RUN = 16  # heads of one chunk advanced block by block together
_FLAGS = {"contract"}  # no nnan / ninf: non-finite values must propagate


@njit(cache=True, fastmath=_FLAGS)
def _copy_rows(src, so, ss, dst, do, ds, T, m, stream):  # pragma: no cover - compiled
    """dst[do + t·ds + q] = src[so + t·ss + q] for t < T, q < m (flat 1-d arrays).

    ``stream``: non-temporal vector stores (every dst row start 64-byte aligned, m a
    multiple of the vector length)."""
    W = S.lanes(src)
    for t in range(T):
        s = so + t * ss
        d = do + t * ds
        q = 0
        if stream:
            while q < m:
                S.stream(dst, d + q, S.load(src, s + q))
                q += W
        while q + W <= m:
            S.store(dst, d + q, S.load(src, s + q))
            q += W
        while q < m:
            dst[d + q] = src[s + q]
            q += 1


@njit(cache=True, fastmath=_FLAGS)
def _prefetch_row(Xf, Bf, Cf, xo, bo, p, n):  # pragma: no cover - compiled
    """Hint the lines of one X row (p values at xo) and one B and C row (n values at bo)."""
    W = S.lanes(Xf)
    for m in range(0, p, W):
        S.prefetch(Xf, xo + m)
    for m in range(0, n, W):
        S.prefetch(Bf, bo + m)
        S.prefetch(Cf, bo + m)


@njit(cache=True, fastmath=_FLAGS)
def _steps(Xb, ab, Bb, Cb, T, n, pp, H, Yb, Xf, Bf, Cf, nx, nb, xs, bs, p):  # pragma: no cover - compiled
    """T steps of H_t = a_t H_{t-1} + x_t B_tᵀ, y_t = H_t C_t on packed rows; returns Σ y.

    Xb, Yb: rows of pp values (head_dim p padded with zeros to whole vector pairs); Bb, Cb:
    rows of n; ab: decays; H: (n, pp) flat, updated in place.  For odd T the caller makes
    row T an identity step (a = 1, x = B = C = 0), so steps always go in pairs.  nx >= 0:
    flat offsets nx, nb of the next block's first X and B/C rows (row strides xs, bs),
    prefetched meanwhile."""
    W = S.lanes(Xb)
    chk = S.splat(Xb, 0.0)
    for i in range(0, T, 2):  # two steps per pass over H
        if nx >= 0:
            _prefetch_row(Xf, Bf, Cf, nx + i * xs, nb + i * bs, p, n)
            if i + 1 < T:
                _prefetch_row(Xf, Bf, Cf, nx + (i + 1) * xs, nb + (i + 1) * bs, p, n)
        a0 = ab[i]
        a1 = ab[i + 1]
        r0 = i * pp
        r1 = r0 + pp
        s0 = i * n
        s1 = s0 + n
        for j in range(0, pp, 2 * W):  # a tile of 2 vectors of head_dim x 2 steps
            x00 = S.load(Xb, r0 + j)
            x01 = S.load(Xb, r0 + j + W)
            x10 = S.load(Xb, r1 + j)
            x11 = S.load(Xb, r1 + j + W)
            y00 = S.splat(Xb, 0.0)
            y01 = y00
            y10 = y00
            y11 = y00
            for k in range(n):
                b0 = Bb[s0 + k]
                b1 = Bb[s1 + k]
                c0 = Cb[s0 + k]
                c1 = Cb[s1 + k]
                v00 = S.fma(a0, S.load(H, k * pp + j), S.mul(b0, x00))  # H_t = a_t H_{t-1} + x_t B_tᵀ
                v01 = S.fma(a0, S.load(H, k * pp + j + W), S.mul(b0, x01))
                v10 = S.fma(a1, v00, S.mul(b1, x10))  # H_{t+1}
                v11 = S.fma(a1, v01, S.mul(b1, x11))
                S.store(H, k * pp + j, v10)
                S.store(H, k * pp + j + W, v11)
                y00 = S.fma(c0, v00, y00)  # y_t = H_t C_t
                y01 = S.fma(c0, v01, y01)
                y10 = S.fma(c1, v10, y10)
                y11 = S.fma(c1, v11, y11)
            S.store(Yb, r0 + j, y00)
            S.store(Yb, r0 + j + W, y01)
            S.store(Yb, r1 + j, y10)
            S.store(Yb, r1 + j + W, y11)
            chk = S.add(chk, S.add(S.add(y00, y01), S.add(y10, y11)))
    return S.hsum(chk)


@njit(cache=True, fastmath=_FLAGS)
def _state_output(Cb, T, n, pp, Hin, Yb):  # pragma: no cover - compiled
    """y_t += H_in C'_t for t < T (in pairs; row T is scratch when T is odd): Yb rows of pp,
    Cb rows of n already scaled by exp(Σ_{k=start..t} log_a_k), Hin (n, pp) flat."""
    W = S.lanes(Yb)
    for i in range(0, T, 2):
        r0 = i * pp
        r1 = r0 + pp
        s0 = i * n
        s1 = s0 + n
        for j in range(0, pp, 2 * W):
            y00 = S.load(Yb, r0 + j)
            y01 = S.load(Yb, r0 + j + W)
            y10 = S.load(Yb, r1 + j)
            y11 = S.load(Yb, r1 + j + W)
            for k in range(n):
                h0 = S.load(Hin, k * pp + j)
                h1 = S.load(Hin, k * pp + j + W)
                y00 = S.fma(Cb[s0 + k], h0, y00)
                y01 = S.fma(Cb[s0 + k], h1, y01)
                y10 = S.fma(Cb[s1 + k], h0, y10)
                y11 = S.fma(Cb[s1 + k], h1, y11)
            S.store(Yb, r0 + j, y00)
            S.store(Yb, r0 + j + W, y01)
            S.store(Yb, r1 + j, y10)
            S.store(Yb, r1 + j + W, y11)


@njit(parallel=True, cache=True, fastmath=_FLAGS)
def _sweep(X, log_a, B, C, Q, Y, states, groups, stream, sums, output):  # pragma: no cover - compiled
    """Phase 1 over every (chunk, batch, head) job (``output`` False), or phase 3 over the
    jobs of chunks >= 1 (``output`` True).  Thread g owns jobs j0..j1-1 (chunk slowest) and
    walks runs of <= _RUN jobs of one chunk block by block.  states: (b, h, nc, n, pp) flat,
    the chunk states S(c) (phase 1 writes them) or H_in(c) (phase 3 reads them); with one
    chunk, phase 1 keeps its states in a scratch buffer instead."""
    b, L, h, p = X.shape
    n = B.shape[3]
    nc = (L + Q - 1) // Q
    bh = b * h
    Xf = X.ravel()
    Bf = B.ravel()
    Cf = C.ravel()
    Yf = Y.ravel()
    af = log_a.ravel()
    W = S.lanes(Xf)
    pp = -(-p // (2 * W)) * 2 * W  # head_dim padded to whole vector pairs
    first = bh if output else 0  # phase 3 starts at chunk 1
    jobs = nc * bh - first
    for g in prange(groups):
        j0 = first + g * jobs // groups
        j1 = first + (g + 1) * jobs // groups
        Hs = np.zeros(_RUN * n * pp if nc == 1 else 0, X.dtype)
        Xb = np.zeros((_STEPS + 1) * pp, X.dtype)  # (steps + 1, pp): the padding stays 0
        Yb = np.zeros((_STEPS + 1) * pp, X.dtype)
        Bb = np.zeros((_STEPS + 1) * n, X.dtype)
        Cb = np.zeros((_STEPS + 1) * n, X.dtype)
        ab = np.ones(_STEPS + 1, X.dtype)
        cs = np.zeros(_RUN)  # phase 3: Σ log_a from the chunk start, per job of the run
        total = 0.0
        r0 = j0
        while r0 < j1:
            c = r0 // bh
            r1 = min(j1, (c + 1) * bh, r0 + _RUN)  # a run: jobs r0..r1-1 share chunk c
            if nc == 1:
                Hs[: (r1 - r0) * n * pp] = 0.0
            elif not output:  # every local recurrence starts from H = 0
                for jb in range(r0, r1):
                    o = ((jb % bh) * nc + c) * n * pp
                    states[o : o + n * pp] = 0.0
            start = c * Q
            end = min(start + Q, L)
            cs[:] = 0.0
            for t0 in range(start, end, _STEPS):
                T = min(_STEPS, end - t0)
                for jb in range(r0, r1):
                    bi = (jb % bh) // h
                    hi = jb % h
                    row = (bi * L + t0) * h + hi  # flat (bi, t0, hi)
                    if nc == 1:
                        H = Hs[(jb - r0) * n * pp : (jb - r0 + 1) * n * pp]
                    else:
                        o = ((jb % bh) * nc + c) * n * pp
                        H = states[o : o + n * pp]
                    if output:  # y_t += exp(Σ_{k=start..t} log_a_k) H_in(c) C_t
                        _copy_rows(Cf, row * n, h * n, Cb, 0, n, T, n, False)
                        acc = cs[jb - r0]
                        for i in range(T):
                            acc += af[row + i * h]
                            e = math.exp(acc)
                            for k in range(n):
                                Cb[i * n + k] *= e
                        cs[jb - r0] = acc
                        _copy_rows(Yf, row * p, h * p, Yb, 0, pp, T, p, False)
                        _state_output(Cb, T, n, pp, H, Yb)
                    else:  # H_t = a_t H_{t-1} + x_t B_tᵀ, y_t = H_t C_t from H = 0 at the chunk start
                        for i in range(T):
                            ab[i] = math.exp(af[row + i * h])
                        if T % 2 == 1:  # row T: an identity step
                            ab[T] = 1.0
                            Bb[T * n : (T + 1) * n] = 0.0
                            Cb[T * n : (T + 1) * n] = 0.0
                            Xb[T * pp : (T + 1) * pp] = 0.0
                        _copy_rows(Xf, row * p, h * p, Xb, 0, pp, T, p, False)
                        _copy_rows(Bf, row * n, h * n, Bb, 0, n, T, n, False)
                        _copy_rows(Cf, row * n, h * n, Cb, 0, n, T, n, False)
                        # the block computed next: the run's next job, else its first job's next block
                        nrow = -1
                        if jb + 1 < r1:
                            nrow = (((jb + 1) % bh) // h * L + t0) * h + (jb + 1) % h
                        elif t0 + _STEPS + T <= end:
                            nrow = (((r0 % bh) // h) * L + t0 + _STEPS) * h + r0 % h
                        total += _steps(Xb, ab, Bb, Cb, T, n, pp, H, Yb, Xf, Bf, Cf,
                                        nrow * p if nrow >= 0 else -1, nrow * n, h * p, h * n, p)
                    _copy_rows(Yb, 0, pp, Yf, row * p, h * p, T, p, stream)
            r0 = r1
        S.fence()  # non-temporal stores visible before the next phase and the return
        sums[g] = total


@njit(parallel=True, cache=True, fastmath=_FLAGS)
def _carry_states(log_a, Q, states, n, pp):  # pragma: no cover - compiled
    """Phase 2, in place: states[c] <- H_in(c), H_in(c+1) = exp(Σ_{k in c} log_a_k) H_in(c) + S(c)."""
    b, L, h = log_a.shape
    nc = (L + Q - 1) // Q
    m = n * pp  # a multiple of the vector length
    for job in prange(b * h):
        bi = job // h
        hi = job % h
        run = np.zeros(m, states.dtype)
        W = S.lanes(run)
        for c in range(nc):
            tot = 0.0
            for t in range(c * Q, min(c * Q + Q, L)):
                tot += log_a[bi, t, hi]
            decay = math.exp(tot)
            o = (job * nc + c) * m
            for q in range(0, m, W):
                s = S.load(states, o + q)
                r = S.load(run, q)
                S.store(states, o + q, r)
                S.store(run, q, S.fma(decay, r, s))


def _aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    buf = np.empty(size + 64 // itemsize, dtype)
    off = (-buf.ctypes.data % 64) // itemsize
    return buf[off : off + size].reshape(shape)


def ssd_numba(X, log_a, B, C, *, chunk_size: int = 64):
    """Chunked SSD with recurrent diagonal blocks.

    Returns (Y, finite): Y (b, L, h, p) in the dtype of ``X``; ``finite`` is False when the
    sum of the diagonal-block outputs is not finite, which every NaN or inf in X, B or C
    causes (IEEE propagation); the caller then checks the inputs themselves."""
    dt = X.dtype
    b, L, h, p = X.shape
    n = B.shape[3]
    Q = min(int(chunk_size), L)
    nc = -(-L // Q)
    arrs = [np.ascontiguousarray(v, dtype=dt) for v in (X, log_a, B, C)]
    W = 64 // dt.itemsize
    pp = -(-p // (2 * W)) * 2 * W  # head_dim padded to whole vector pairs
    Y = _aligned_empty(X.shape, dt)
    states = np.empty(b * h * nc * n * pp if nc > 1 else 0, dt)  # (b, h, nc, n, pp) flat
    threads = numba.get_num_threads()
    stream = (p * dt.itemsize) % 64 == 0  # then every row of Y starts on a 64-byte boundary
    sums = np.zeros(max(1, min(threads, nc * b * h)))
    _sweep(*arrs, Q, Y, states, sums.size, stream, sums, False)  # 1: local recurrences
    if nc > 1:
        _carry_states(arrs[1], Q, states, n, pp)  # 2: states entering each chunk
        groups = max(1, min(threads, (nc - 1) * b * h))
        _sweep(*arrs, Q, Y, states, groups, stream, np.zeros(groups), True)  # 3: state -> output
    return Y, bool(np.isfinite(sums.sum()))


refresh_on_change(globals(), [S.__file__])  # the kernels above inline _simd's: recompile when it changes
