"""Eigenvalues of C symmetric matrices at once, the item index innermost (numba), for the ε-rank kernel.

Every array holds C independent problems in its last axis ("lanes"); the loops over the lanes
are innermost and branch-free, so the compiler vectorizes them and the C problems share every
instruction, where one problem at a time would be bound by the latency of its divisions.

* :func:`tridiagonalize_lanes`: Householder reduction of G (k, k, C) to tridiagonals (d, e);
* :func:`ql_lanes`: their eigenvalues by root-free implicit QL (Pal, Walker and Kahan; Parlett,
  The Symmetric Eigenvalue Problem, §8.15), every lane sweeping at once, optionally stopping a
  lane once its smallest eigenvalues decide an ε-rank;
* :func:`sturm_count_below`: eigenvalues of one tridiagonal below x (Sylvester's law of inertia).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

U_ROUND = np.finfo(np.float64).eps / 2


@njit(cache=True)
def tridiagonalize_lanes(G, d, e, v, p):
    """Householder tridiagonalization of C symmetric matrices at once, the item index innermost.

    G (k, k, C), upper triangle read and overwritten (the lower one is never touched); -> d (k, C)
    diagonals, e (k, C) off-diagonals (e[:k-1]); v, p (k, C) workspace.  The control flow is the
    same for every item (a zero column below the diagonal gets v = 0, a no-op reflector), so
    every innermost loop runs over the C items with independent lanes and the compiler
    vectorizes it.  Per item the arithmetic is that of the textbook reduction: reflector
    I − 2 v vᵀ zeroing G[k+2:, k], p = 2 G22 v (G22 from its upper triangle: row l of it gives
    G[l, i] v_i to p_l and G[l, i] v_l to p_i), w = p − (vᵀp) v, G22 ← G22 − v wᵀ − w vᵀ on the
    upper triangle only (half the flops of the full update, and exactly symmetric by storage)."""
    k, C = G.shape[1], G.shape[2]
    norm2 = np.empty(C)
    x0 = np.empty(C)
    vp = np.empty(C)
    for j in range(k - 2):
        norm2[:] = 0.0
        for i in range(j + 1, k):
            for c in range(C):
                norm2[c] += G[j, i, c] * G[j, i, c]
        for c in range(C):
            x = G[j, j + 1, c]
            r = np.sqrt(norm2[c])
            alpha = -r if x >= 0 else r  # reflect x onto alpha e_1, no cancellation
            d[j, c] = G[j, j, c]
            e[j, c] = alpha
            vn2 = norm2[c] - x * x + (x - alpha) * (x - alpha)
            x0[c] = (x - alpha)
            norm2[c] = 1.0 / np.sqrt(vn2) if vn2 > 0.0 else 0.0  # 0: nothing to reflect, v = 0
        for i in range(j + 1, k):
            for c in range(C):
                v[i, c] = G[j, i, c] * norm2[c]
                p[i, c] = 0.0
        for c in range(C):
            v[j + 1, c] = x0[c] * norm2[c]
        for l in range(j + 1, k):  # p = G22 v from the upper triangle, then doubled
            for c in range(C):
                p[l, c] += G[l, l, c] * v[l, c]
            for i in range(l + 1, k):
                for c in range(C):
                    p[i, c] += v[l, c] * G[l, i, c]
                    p[l, c] += v[i, c] * G[l, i, c]
        vp[:] = 0.0
        for i in range(j + 1, k):
            for c in range(C):
                p[i, c] *= 2.0
                vp[c] += v[i, c] * p[i, c]
        for i in range(j + 1, k):  # w = p − (vᵀp) v, stored in p
            for c in range(C):
                p[i, c] -= vp[c] * v[i, c]
        for i in range(j + 1, k):  # G22 ← G22 − v wᵀ − w vᵀ, upper triangle
            for l in range(i, k):
                for c in range(C):
                    G[i, l, c] -= v[i, c] * p[l, c] + p[i, c] * v[l, c]
    for c in range(C):
        if k >= 2:
            d[k - 2, c] = G[k - 2, k - 2, c]
            e[k - 2, c] = G[k - 2, k - 1, c]
        d[k - 1, c] = G[k - 1, k - 1, c]


@njit(cache=True)
def sturm_count_below(d, e2, lo, x):
    """Eigenvalues < x of the tridiagonal d[lo:], e2[lo:] (squared off-diagonals): the negative
    pivots of the LDLᵀ factorization of T − xI (Sylvester); a zero pivot counts as negative."""
    count = 0
    q = 1.0
    for i in range(lo, d.shape[0]):
        q = d[i] - x - (e2[i - 1] / q if i > lo else 0.0)
        if q <= 0.0:
            count += 1
            q = min(q, -1e-300)
    return count


@njit(cache=True)
def _prepare(d, e, tol2):
    """Per lane: the deflation tolerance (2 u ||T||_F)², the flip that puts the smaller end of
    the tridiagonal on top, where QL deflates (P T P, P the reversal, has the same eigenvalues;
    a Gram's reduction is graded large -> small), and the squared off-diagonals in e."""
    k, C = d.shape
    for c in range(C):
        norm = 0.0
        for i in range(k):
            norm += d[i, c] * d[i, c] + (2.0 * e[i, c] * e[i, c] if i < k - 1 else 0.0)
        tol = 2.0 * U_ROUND * np.sqrt(norm)
        tol2[c] = tol * tol
        if abs(d[k - 1, c]) < abs(d[0, c]):
            for i in range(k // 2):
                d[i, c], d[k - 1 - i, c] = d[k - 1 - i, c], d[i, c]
            for i in range((k - 1) // 2):
                e[i, c], e[k - 2 - i, c] = e[k - 2 - i, c], e[i, c]
        for i in range(k - 1):
            e[i, c] = e[i, c] * e[i, c]


@njit(cache=True, error_model="numpy")  # IEEE division: masked lanes may divide by 0
def ql_lanes(d, e, thr, delta, f):
    """Eigenvalues of C symmetric tridiagonals at once by root-free implicit QL.

    d (k, C) diagonals, e (k, C) off-diagonals in e[:k-1] (overwritten by their squares, then
    by the iteration); thr, delta (C,).  -> f (C,): lane c's eigenvalues found are d[:f[c], c]
    (unsorted); f[c] = -1 if it did not converge within 60 k sweeps.

    Each round, every lane still iterating deflates what it can at the top of its unreduced
    block d[lo..hi] (|e_lo| <= 2u ||T||_F: absolute, as eigenvalues are needed to within
    u ||G||), takes the Wilkinson shift σ of its top 2x2, and then all lanes sweep together from
    the bottom up: row i is rotated in lane c when lo_c <= i < hi_c, and left as it is (a
    select, not a branch) otherwise.  Per lane the arithmetic is that of one PWK step: with
    c, s = cos², sin² and p = γ²/c carried along, a rotation takes no square root and two
    divisions.  With thr[c] >= 0, lane c stops early, at f < k, once its found eigenvalues
    (clipped at 0) sum to more than thr + δ and the rest of its tridiagonal has no eigenvalue
    below their maximum + δ (:func:`sturm_count_below`): every tail reaching into the rest then
    exceeds thr, which is all the ε-rank needs."""
    k, C = d.shape
    tol2, sig = np.empty(C), np.zeros(C)
    gam, pp, cs, sn = np.zeros(C), np.zeros(C), np.ones(C), np.zeros(C)
    found, top = np.zeros(C), np.full(C, -np.inf)
    lo, hi, steps = np.zeros(C, np.int64), np.zeros(C, np.int64), np.zeros(C, np.int64)
    _prepare(d, e, tol2)
    f[:] = k
    while True:
        first, last = k, 0
        for c in range(C):
            while lo[c] < k - 1 and e[lo[c], c] <= tol2[c]:  # deflate at the top
                i = lo[c]
                e[i, c] = 0.0
                found[c] += max(d[i, c], 0.0)
                top[c] = max(top[c], d[i, c])
                lo[c] = i + 1
                if thr[c] >= 0.0 and found[c] - delta[c] > thr[c] \
                        and sturm_count_below(d[:, c], e[:, c], i + 1, top[c] + delta[c]) == 0:
                    f[c] = i + 1
                    lo[c] = k  # done
            if lo[c] >= k - 1:
                hi[c] = lo[c]  # no rotation in this lane
                continue
            if steps[c] >= 60 * k:
                f[c] = -1  # no convergence (the caller falls back)
                lo[c], hi[c] = k, k
                continue
            h = lo[c] + 1
            while h < k - 1 and e[h, c] > tol2[c]:
                h += 1
            hi[c] = h
            i = lo[c]  # Wilkinson shift: the eigenvalue of the top 2x2 closer to d[lo]
            rte = np.sqrt(e[i, c])
            sg = (d[i + 1, c] - d[i, c]) / (2.0 * rte)
            r = np.sqrt(sg * sg + 1.0)
            sig[c] = d[i, c] - rte / (sg + (r if sg >= 0 else -r))
            steps[c] += 1
            first, last = min(first, lo[c]), max(last, h)
        if first >= last:
            return
        for i in range(last - 1, first - 1, -1):  # one PWK sweep in every lane, bottom up
            for c in range(C):  # every load first, then selects: no branch, so the lanes vectorize
                d0, d1, e0, e1 = d[i, c], d[i + 1, c], e[i, c], e[i + 1, c]
                sg_, gm, pv, cv, sv = sig[c], gam[c], pp[c], cs[c], sn[c]
                act = (lo[c] <= i) & (i < hi[c])
                start = i == hi[c] - 1  # the lane's sweep begins at its bottom row ...
                end = act & (i == lo[c])  # ... and ends at its top row
                g_start = d1 - sg_
                g0 = g_start if start else gm
                p0 = g_start * g_start if start else pv
                c0 = 1.0 if start else cv
                s0 = 0.0 if start else sv
                r = p0 + e0
                c1 = p0 / r
                s1 = e0 / r
                g1 = c1 * (d0 - sg_) - s1 * g0
                q = g1 * g1 / c1
                p1 = q if c1 != 0.0 else c0 * e0
                e1n = s0 * r
                d1n = g0 + (d0 - g1)
                e0n = s1 * p1
                d0n = sg_ + g1
                e[i + 1, c] = e1n if act & (not start) else e1
                d[i + 1, c] = d1n if act else d1
                e[i, c] = e0n if end else e0
                d[i, c] = d0n if end else d0
                gam[c] = g1 if act else gm
                pp[c] = p1 if act else pv
                cs[c] = c1 if act else cv
                sn[c] = s1 if act else sv
