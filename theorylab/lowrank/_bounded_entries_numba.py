"""numba path of :func:`theorylab.lowrank.eps_rank`: must match ``eps_rank_ref`` (imported lazily).

Per item, in compiled loops with no LAPACK call per matrix.  Items run in groups of C (at most
:data:`LANES`, see :func:`lanes`); steps 2-3 work on a whole group at once with the item index
innermost (:mod:`theorylab.lowrank._eigen_lanes_numba`), so their loops vectorize across
items; the groups run in parallel on numba's threads:

1. M scaled by 1/max|M_ij| (rank_ε is scale-free), then the upper triangle of the Gram matrix
   of the shorter side, G = M Mᵀ (m <= n) or Mᵀ M, four dot products at a time
   (:func:`_gram_upper`): its eigenvalues are σ_i²;
2. Householder reduction of G to a tridiagonal T (the same eigenvalues): for each column k a
   reflector I − 2 v vᵀ zeroes G[k+2:, k], and G22 ← G22 − v wᵀ − w vᵀ with
   p = 2 G22 v, w = p − (vᵀ p) v, on the upper triangle (``tridiagonalize_lanes``);
3. the eigenvalues of T by implicit QL steps with the Wilkinson shift in the root-free form of
   Pal, Walker and Kahan (Parlett, The Symmetric Eigenvalue Problem, §8.15), every item of the
   group sweeping at once (``ql_lanes``): no square root and two divisions per rotation; an
   off-diagonal |e_i| <= 2u ||T||_F deflates (absolute: eigenvalues are needed to within
   u ||G|| only).  An item stops once its smallest eigenvalues found sum past the threshold and
   a Sturm count shows the rest all lie above them: every tail reaching into the rest then
   exceeds the threshold;
4. rank_ε: count of r with Σ_{i>=r} λ_i > (ε ||M||_F)² (λ descending, clipped at 0) (:func:`_decide`).

Error model: a backward-stable eigensolver on G gives |λ_i − σ_i²| <~ c n u ||G||, so every tail
sum is within δ = 64 k² u tr(G) (k = the shorter side) of the exact one.  An item where some tail
sum lies within δ of the threshold is flagged (``-1``) and the caller recomputes it by SVD:
the kernel never decides a case its rounding could flip.
"""

from __future__ import annotations

import numpy as np
import numba
from numba import njit, prange

from .._numba_cache import ensure_cache_dir, refresh_on_change

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

from . import _eigen_lanes_numba  # noqa: E402
from ._eigen_lanes_numba import U_ROUND, ql_lanes, tridiagonalize_lanes  # noqa: E402

LANES = 64  # items reduced together: their Gram matrices, 64 x 24 x 24 doubles = 288 KiB, stay in L2
WORKSPACE = 1 << 18  # doubles per thread for the stacked Gram matrices (2 MiB): fewer lanes for large k


def lanes(B, k, threads):
    """Items per group: LANES, fewer for a small batch (every thread gets a group and no group is
    mostly padding) or a large k (the (k, k, C) stack stays within WORKSPACE)."""
    return int(max(1, min(LANES, WORKSPACE // max(k * k, 1), -(-B // max(threads, 1)))))


def eps_rank_numba(M, eps):
    """rank_ε per item of M (B, m, n) float64; -1 where the decision is within rounding (recompute by SVD),
    -2 where the item holds a NaN or inf.

    Groups of :func:`lanes` items are independent: each of numba's T threads takes every T-th
    group with one workspace allocated once.  Every item's arithmetic is the same whatever its
    group or thread (the lanes never mix), so the result does not depend on the thread count."""
    threads = numba.get_num_threads()
    return _eps_rank_threads(M, float(eps), threads, lanes(M.shape[0], min(M.shape[1:]), threads))


@njit(cache=True, parallel=True)
def _eps_rank_threads(M, eps, threads, C):
    B, m, n = M.shape
    k, L = min(m, n), max(m, n)
    out = np.empty(B, dtype=np.int64)
    groups = (B + C - 1) // C
    T = max(1, min(threads, groups))
    for t in prange(T):
        A, G = np.empty((k, L)), np.empty((k, k, C))  # one item's vectors; the group's Grams (upper)
        for g in range(t, groups, T):
            _eps_rank_group(M, eps, g * C, min(C, B - g * C), out, A, G)
    return out


@njit(cache=True, fastmath={"reassoc"})
def _sum_abs(M, b):
    """Σ |M[b]|, vectorized (the order of the sum is free): finite iff every entry is and the sum
    does not overflow."""
    s = 0.0
    for i in range(M.shape[1]):
        for j in range(M.shape[2]):
            s += abs(M[b, i, j])
    return s


@njit(cache=True)
def _load_item(M, b, A):
    """A (k, L) <- the shorter side's vectors of M[b] (rows if m <= n, else columns) scaled by
    1/max|M_ij| (rank_ε is scale-free; entries <= 1 keep the Gram and the rotations far from
    overflow).  Returns the scale, 0.0 for M = 0, or -1.0 if M[b] holds a NaN or inf."""
    _, m, n = M.shape
    if not np.isfinite(_sum_abs(M, b)):  # a NaN or inf, or (rarely) a finite sum that overflowed
        for i in range(m):
            for j in range(n):
                if not np.isfinite(M[b, i, j]):
                    return -1.0
    amax = 0.0
    for i in range(m):
        for j in range(n):
            amax = max(amax, abs(M[b, i, j]))
    if amax == 0.0:
        return 0.0
    s = 1.0 / amax
    if m <= n:
        for i in range(m):
            for j in range(n):
                A[i, j] = M[b, i, j] * s
    else:
        for i in range(m):
            for j in range(n):
                A[j, i] = M[b, i, j] * s
    return s


@njit(cache=True, fastmath={"reassoc", "contract"})
def _gram_upper(A, G, c):
    """Upper triangle of G[:, :, c] = A Aᵀ for A (k, L), rows contiguous; returns tr(G) = ||M||_F².

    Row i against four rows at once (one load of row i feeds four dot products); the dot
    products are reassociated freely (vectorized), which stays within the error model: any
    summation order is backward stable with |ΔG| <= L u |A| |A|ᵀ."""
    k, L = A.shape
    tr = 0.0
    for i in range(k):
        i2 = i
        while i2 + 4 <= k:
            s0 = s1 = s2 = s3 = 0.0
            for l in range(L):
                a = A[i, l]
                s0 += a * A[i2, l]
                s1 += a * A[i2 + 1, l]
                s2 += a * A[i2 + 2, l]
                s3 += a * A[i2 + 3, l]
            G[i, i2, c] = s0
            G[i, i2 + 1, c] = s1
            G[i, i2 + 2, c] = s2
            G[i, i2 + 3, c] = s3
            i2 += 4
        while i2 < k:
            s0 = 0.0
            for l in range(L):
                s0 += A[i, l] * A[i2, l]
            G[i, i2, c] = s0
            i2 += 1
        tr += G[i, i, c]
    return tr


@njit(cache=True)
def _eps_rank_group(M, eps, b0, nb, out, A, G):
    """Items b0 .. b0+nb-1 (nb <= C) -> out[b0 : b0+nb]: steps 1-4 of the module docstring."""
    k, C = G.shape[0], G.shape[2]
    dd, ee, v, p = np.empty((k, C)), np.empty((k, C)), np.empty((k, C)), np.empty((k, C))
    scale = np.zeros(C)
    thr, delta = np.full(C, -1.0), np.zeros(C)  # thr < 0: no early stop (pad, zero and bad lanes)
    f = np.empty(C, dtype=np.int64)
    for c in range(C):
        scale[c] = _load_item(M, b0 + c, A) if c < nb else 0.0
        if scale[c] > 0.0:
            fro2 = _gram_upper(A, G, c)  # ||M||_F² of the scaled item
            thr[c] = eps * eps * fro2
            delta[c] = 64.0 * k * k * U_ROUND * fro2
        else:  # M = 0, a NaN/inf or a pad lane: a zero Gram, decided below
            for i in range(k):
                for i2 in range(i, k):
                    G[i, i2, c] = 0.0
    tridiagonalize_lanes(G, dd, ee, v, p)
    ql_lanes(dd, ee, thr, delta, f)
    lam = np.empty(k)
    for c in range(nb):
        if scale[c] < 0.0:
            out[b0 + c] = -2
        elif scale[c] == 0.0:  # M = 0: every tail is 0, not > 0
            out[b0 + c] = 0
        else:
            out[b0 + c] = _decide(dd[:, c], f[c], thr[c], delta[c], lam)


@njit(cache=True)
def _decide(d, f, thr, delta, lam):
    """The f smallest eigenvalues d[:f] (unsorted; f = k: all, f = -1: no convergence) -> rank_ε,
    or -1 when rounding could flip the decision.

    When the QL iteration stopped after the f smallest eigenvalues (:func:`ql_lanes`), the other
    k − f each exceed all of those, so every tail reaching into them is > thr + δ and they count
    without being computed.  lam (k,) is workspace."""
    k = d.shape[0]
    if f < 0 or not (np.isfinite(thr) and np.isfinite(delta)):
        return -1
    for i in range(f):
        if not np.isfinite(d[i]):  # overflow in the Gram or the rotations: the SVD decides
            return -1
        lam[i] = max(d[i], 0.0)
    lam[:f].sort()  # ascending: the f smallest σ_i²
    tail = 0.0
    count = k - f
    unsure = False
    for r in range(f):  # tail = Σ of the r + 1 smallest: the error of rank k − r − 1
        tail += lam[r]
        if abs(tail - thr) <= delta:
            unsure = True
        if tail > thr:
            count += 1
    return -1 if unsure else count


refresh_on_change(globals(), [_eigen_lanes_numba.__file__])  # the kernels above call its: recompile when it changes
