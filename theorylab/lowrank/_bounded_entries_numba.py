"""numba path of :func:`theorylab.lowrank.eps_rank`: must match ``eps_rank_ref`` (imported lazily).

Per item (compiled loops, no LAPACK call per matrix; steps 1-2 run on
:data:`LANES` items at once with the item index innermost, so their loops vectorize; the groups
of LANES items run in parallel on numba's threads):

1. M scaled by 1/max|M_ij| (rank_ε is scale-free), then the Gram matrix of the shorter side,
   G = M Mᵀ (m <= n) or Mᵀ M (upper triangle accumulated, then mirrored): its eigenvalues are σ_i²;
2. Householder reduction of G to a tridiagonal T (the same eigenvalues): for each column k a
   reflector I − 2 v vᵀ zeroes G[k+2:, k], and G22 ← G22 − v wᵀ − w vᵀ with
   p = 2 G22 v, w = p − (vᵀ p) v (:func:`_tridiagonalize_lanes`);
3. the eigenvalues of T by implicit QL steps with the Wilkinson shift in the root-free form of
   Pal, Walker and Kahan (Parlett, The Symmetric Eigenvalue Problem, §8.15): the sweep
   carries squared off-diagonals and cos², sin² of its rotations, so it takes no square root
   and two divisions per rotation; an off-diagonal |e_i| <= 2u ||T||_F deflates (absolute:
   eigenvalues are needed to within u ||G|| only).  It stops once the smallest eigenvalues
   found sum past the threshold and a Sturm count shows the rest all lie above them
   (:func:`_ql_eigenvalues`): every tail reaching into the rest then exceeds the threshold;
4. rank_ε: count of r with Σ_{i>=r} λ_i > (ε ||M||_F)² (λ descending, clipped at 0).

Error model: a backward-stable eigensolver on G gives |λ_i − σ_i²| <~ c n u ||G||, so every tail
sum is within δ = 64 k² u tr(G) (k = the shorter side) of the exact one.  An item where some tail
sum lies within δ of the threshold is flagged (``-1``) and the caller recomputes it by SVD:
the kernel never decides a case its rounding could flip.
"""

from __future__ import annotations

import numpy as np
import numba
from numba import njit, prange

U_ROUND = np.finfo(np.float64).eps / 2


@njit(cache=True)
def _tridiagonalize_lanes(G, d, e, v, p):
    """Householder tridiagonalization of C symmetric matrices at once, the item index innermost.

    G (k, k, C), full storage, overwritten; -> d (k, C) diagonals, e (k, C) off-diagonals
    (e[:k-1]); v, p (k, C) workspace.  The control flow is the same for every item (a zero
    column below the diagonal gets v = 0, a no-op reflector), so every innermost loop runs over
    the C items with independent lanes and the compiler vectorizes it.  Per item the arithmetic
    is that of the textbook reduction: reflector I − 2 v vᵀ zeroing G[k+2:, k], p = 2 G22 v,
    w = p − (vᵀp) v, G22 ← G22 − v wᵀ − w vᵀ (exactly symmetric: x + y = y + x)."""
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
        for l in range(j + 1, k):  # p = 2 G22 v = Σ_l 2 v_l G22[l, :]
            for i in range(j + 1, k):
                for c in range(C):
                    p[i, c] += 2.0 * v[l, c] * G[l, i, c]
        vp[:] = 0.0
        for i in range(j + 1, k):
            for c in range(C):
                vp[c] += v[i, c] * p[i, c]
        for i in range(j + 1, k):  # w = p − (vᵀp) v, stored in p
            for c in range(C):
                p[i, c] -= vp[c] * v[i, c]
        for i in range(j + 1, k):  # G22 ← G22 − v wᵀ − w vᵀ
            for l in range(j + 1, k):
                for c in range(C):
                    G[i, l, c] -= v[i, c] * p[l, c] + p[i, c] * v[l, c]
    for c in range(C):
        if k >= 2:
            d[k - 2, c] = G[k - 2, k - 2, c]
            e[k - 2, c] = G[k - 2, k - 1, c]
        d[k - 1, c] = G[k - 1, k - 1, c]


@njit(cache=True)
def _ql_sweep(d, e2, lo, hi):
    """One root-free implicit QL step (Pal-Walker-Kahan) on the block d[lo..hi], e2[lo..hi-1] = e².

    The shift σ is the eigenvalue of the top 2x2 closer to d[lo] (Wilkinson); the sweep runs from
    the bottom up with c = cos², s = sin² of each rotation, carried through p = γ²/c, so no
    square root is taken inside the sweep (one per step, for the shift)."""
    rte = np.sqrt(e2[lo])
    sg = (d[lo + 1] - d[lo]) / (2.0 * rte)
    r = np.sqrt(sg * sg + 1.0)
    sigma = d[lo] - rte / (sg + (r if sg >= 0 else -r))
    c, s = 1.0, 0.0
    gamma = d[hi] - sigma
    p = gamma * gamma
    for i in range(hi - 1, lo - 1, -1):
        bb = e2[i]
        r = p + bb
        if i != hi - 1:
            e2[i + 1] = s * r
        oldc = c
        c = p / r
        s = bb / r
        oldgam = gamma
        alpha = d[i]
        gamma = c * (alpha - sigma) - s * oldgam
        d[i + 1] = oldgam + (alpha - gamma)
        p = gamma * gamma / c if c != 0.0 else oldc * bb
    e2[lo] = s * p
    d[lo] = sigma + gamma


@njit(cache=True)
def _tridiagonal_eigenvalues(d, e):
    """Eigenvalues of the symmetric tridiagonal (d, e), in place in d (unsorted); e is overwritten.
    False if the iteration did not converge."""
    return _ql_eigenvalues(d, e, -1.0, 0.0) == d.shape[0]


@njit(cache=True)
def _sturm_count_below(d, e2, lo, x):
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
def _ql_eigenvalues(d, e, thr, delta):
    """Root-free QL (:func:`_ql_sweep`) on the top of the unreduced block; the matrix is first
    flipped so that its smaller end is on top, where QL deflates (as LAPACK's dsterf chooses
    between QL and QR); an off-diagonal with e_i² <= (2 u ||T||_F)² deflates (absolute: the
    caller needs the eigenvalues to within u ||G||).

    Returns the number f of eigenvalues found, in d[:f] (unsorted), or −1 without convergence.
    With thr >= 0 it stops early, at f < n, once the found eigenvalues (clipped at 0) sum to more
    than thr + δ and the rest of the matrix has no eigenvalue below their maximum + δ (a Sturm
    count): the rank decision needs nothing more, as every tail that reaches into the rest
    exceeds thr."""
    n = d.shape[0]
    norm = 0.0
    for i in range(n):
        norm += d[i] * d[i] + (2.0 * e[i] * e[i] if i < n - 1 else 0.0)
    tol = 2.0 * U_ROUND * np.sqrt(norm)
    tol2 = tol * tol
    if abs(d[n - 1]) < abs(d[0]):  # deflate at the small end (a Gram's reduction is graded large -> small):
        d[:] = d[::-1].copy()  # the flipped tridiagonal (P T P, P the reversal) has the same eigenvalues
        e[:] = e[::-1].copy()
    for i in range(n - 1):
        e[i] = e[i] * e[i]  # e now holds the squares
    lo = 0
    steps = 0
    found, top = 0.0, -np.inf
    while lo < n - 1:
        if e[lo] <= tol2:
            e[lo] = 0.0
            found += max(d[lo], 0.0)
            top = max(top, d[lo])
            lo += 1
            if thr >= 0.0 and found - delta > thr and _sturm_count_below(d, e, lo, top + delta) == 0:
                return lo
            continue
        if steps >= 60 * n:
            return -1  # no convergence (the caller falls back)
        hi = lo + 1
        while hi < n - 1 and e[hi] > tol2:
            hi += 1
        _ql_sweep(d, e, lo, hi)
        steps += 1
    return n


LANES = 32  # items reduced together (their Gram matrices stay in cache: 32 x 24 x 24 doubles = 144 KiB)


def eps_rank_numba(M, eps):
    """rank_ε per item of M (B, m, n) float64; -1 where the decision is within rounding (recompute by SVD),
    -2 where the item holds a NaN or inf.

    Groups of :data:`LANES` items are independent: each of numba's T threads takes every T-th
    group with one workspace allocated once, so the result does not depend on the thread count."""
    return _eps_rank_threads(M, float(eps), numba.get_num_threads())


@njit(cache=True, parallel=True)
def _eps_rank_threads(M, eps, threads):
    B, m, n = M.shape
    k, L, C = min(m, n), max(m, n), LANES
    out = np.empty(B, dtype=np.int64)
    groups = (B + C - 1) // C
    T = max(1, min(threads, groups))
    for t in prange(T):
        W, G = np.empty((L, k, C)), np.empty((k, k, C))  # (L, k, C), (k, k, C): reused by every group
        for g in range(t, groups, T):
            _eps_rank_group(M, eps, g * C, min(C, B - g * C), out, W, G)
    return out


@njit(cache=True)
def _eps_rank_group(M, eps, b0, nb, out, W, G):
    """Items b0 .. b0+nb-1 (nb <= LANES) -> out[b0 : b0+nb]: steps 1-4 of the module docstring."""
    B, m, n = M.shape
    k = min(m, n)
    L = max(m, n)
    C = LANES
    W[:, :, nb:] = 0.0  # pad lanes of a last, partial group (the copy below fills lanes < nb)
    G[:, :, :] = 0.0
    dd = np.empty((k, C))
    ee = np.empty((k, C))
    v = np.empty((k, C))
    p = np.empty((k, C))
    scale = np.zeros(C)
    fro2 = np.zeros(C)
    d = np.empty(k)
    e = np.empty(max(k - 1, 1))
    bad = np.zeros(C, dtype=np.bool_)
    for c in range(nb):
        amax, nan = 0.0, 0.0
        for i in range(m):
            for j in range(n):
                x = M[b0 + c, i, j]
                amax = max(amax, abs(x))
                nan += 0.0 * x  # 0 for finite x, NaN for NaN or ±inf (and then for good)
        if nan != 0.0:
            bad[c] = True
            amax = 0.0
        # rank_ε is scale-free; entries <= 1 keep the Gram and the rotations far from overflow
        scale[c] = 1.0 / amax if amax > 0.0 else 0.0  # M = 0 (and pad lanes): W = 0, decided below
    for i in range(m):  # W (L, k): the shorter side's vectors as columns, G = Wᵀ W (A Aᵀ or Aᵀ A)
        for j in range(n):  # lanes innermost: contiguous writes (3x faster than item by item)
            if m <= n:
                for c in range(nb):
                    W[j, i, c] = M[b0 + c, i, j] * scale[c]
            else:
                for c in range(nb):
                    W[i, j, c] = M[b0 + c, i, j] * scale[c]
    for l in range(L):
        for i in range(k):
            for c in range(C):
                fro2[c] += W[l, i, c] * W[l, i, c]
            for i2 in range(i, k):  # the upper triangle; mirrored below, so G is exactly symmetric
                for c in range(C):
                    G[i, i2, c] += W[l, i, c] * W[l, i2, c]
    for i in range(k):
        for i2 in range(i):
            for c in range(C):
                G[i, i2, c] = G[i2, i, c]
    _tridiagonalize_lanes(G, dd, ee, v, p)
    for c in range(nb):
        if bad[c]:
            out[b0 + c] = -2
            continue
        if scale[c] == 0.0:  # M = 0: every tail is 0, not > 0
            out[b0 + c] = 0
            continue
        for i in range(k):
            d[i] = dd[i, c]
            if i < k - 1:
                e[i] = ee[i, c]
        out[b0 + c] = _decide(d, e, fro2[c], eps)


@njit(cache=True)
def _decide(d, e, fro2, eps):
    """Eigenvalues of the tridiagonal (d, e) -> rank_ε, or -1 when rounding could flip the decision.

    The QL iteration may stop after the f smallest eigenvalues (:func:`_ql_eigenvalues`): the
    other k − f eigenvalues each exceed all of those, so every tail reaching into them is
    > thr + δ and they count without being computed."""
    k = d.shape[0]
    thr = eps * eps * fro2
    delta = 64.0 * k * k * U_ROUND * fro2
    if not np.isfinite(fro2):
        return -1
    f = _ql_eigenvalues(d, e[: k - 1] if k > 1 else e[:0], thr, delta)
    if f < 0:
        return -1
    finite = True
    for i in range(f):
        finite = finite and np.isfinite(d[i])
    if not finite:  # overflow in the Gram or the rotations: the SVD decides
        return -1
    lam = np.sort(np.maximum(d[:f], 0.0))[::-1]  # the f smallest σ_i², descending
    tail = 0.0
    count = k - f
    unsure = False
    for r in range(f - 1, -1, -1):  # tail = Σ_{i>=r} λ_i, r from the end
        tail += lam[r]
        if abs(tail - thr) <= delta:
            unsure = True
        if tail > thr:
            count += 1
    return -1 if unsure else count
