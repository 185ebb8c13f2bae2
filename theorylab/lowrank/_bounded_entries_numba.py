"""numba path of :func:`theorylab.lowrank.eps_rank`: must match ``eps_rank_ref`` (imported lazily).

Per item (one compiled loop over the batch, no LAPACK call per matrix):

1. M scaled by 1/max|M_ij| (rank_ε is scale-free), then the Gram matrix of the shorter side,
   G = M Mᵀ (m <= n) or Mᵀ M: its eigenvalues are σ_i²;
2. Householder reduction of G to a tridiagonal T (the same eigenvalues): for each column k a
   reflector I − 2 v vᵀ zeroes G[k+2:, k], and G22 ← G22 − v wᵀ − w vᵀ with
   p = 2 G22 v, w = p − (vᵀ p) v;
3. the eigenvalues of T by implicit symmetric QR steps with the Wilkinson shift (Golub & Van
   Loan, Alg. 8.3.2): a Givens rotation on rows/columns (k, k+1) chases the bulge down the
   band; an off-diagonal |e_i| <= eps ||T||_F deflates (absolute: eigenvalues are needed to
   within u ||G|| only);
4. rank_ε: count of r with Σ_{i>=r} λ_i > (ε ||M||_F)² (λ descending, clipped at 0).

Error model: a backward-stable eigensolver on G gives |λ_i − σ_i²| <~ c n u ||G||, so every tail
sum is within δ = 64 k² u tr(G) (k = the shorter side) of the exact one.  An item where some tail
sum lies within δ of the threshold is flagged (``-1``) and the caller recomputes it by SVD:
the kernel never decides a case its rounding could flip.
"""

from __future__ import annotations

import numpy as np
from numba import njit

U_ROUND = np.finfo(np.float64).eps / 2


@njit(cache=True)
def _tridiagonalize(G, d, e):
    """Householder: symmetric G (k, k) -> diagonal d (k,), off-diagonal e (k-1,).  Overwrites G."""
    k = G.shape[0]
    v = np.empty(k)
    p = np.empty(k)
    for j in range(k - 2):
        norm2 = 0.0
        for i in range(j + 1, k):
            norm2 += G[i, j] * G[i, j]
        x0 = G[j + 1, j]
        alpha = -np.sqrt(norm2) if x0 >= 0 else np.sqrt(norm2)  # reflect x onto alpha e_1, no cancellation
        d[j] = G[j, j]
        e[j] = alpha
        vnorm2 = norm2 - x0 * x0 + (x0 - alpha) * (x0 - alpha)
        if vnorm2 == 0.0:
            continue
        inv = 1.0 / np.sqrt(vnorm2)
        for i in range(j + 1, k):
            v[i] = G[i, j] * inv
        v[j + 1] = (x0 - alpha) * inv
        vp = 0.0
        for i in range(j + 1, k):  # p = 2 G22 v from the lower triangle (G22 symmetric)
            s = 0.0
            for l in range(j + 1, i + 1):
                s += G[i, l] * v[l]
            for l in range(i + 1, k):
                s += G[l, i] * v[l]
            p[i] = 2.0 * s
            vp += v[i] * p[i]
        for i in range(j + 1, k):  # w = p − (vᵀp) v, stored in p
            p[i] -= vp * v[i]
        for i in range(j + 1, k):  # lower triangle only
            for l in range(j + 1, i + 1):
                G[i, l] -= v[i] * p[l] + p[i] * v[l]
    if k >= 2:
        d[k - 2] = G[k - 2, k - 2]
        e[k - 2] = G[k - 1, k - 2]  # lower triangle
    d[k - 1] = G[k - 1, k - 1]


@njit(cache=True)
def _qr_step(d, e, lo, hi):
    """One implicit symmetric QR step with the Wilkinson shift on the block d[lo..hi], e[lo..hi-1]."""
    t = (d[hi - 1] - d[hi]) / 2.0
    b2 = e[hi - 1] * e[hi - 1]
    den = t + (1.0 if t >= 0 else -1.0) * np.sqrt(t * t + b2)
    mu = d[hi] - (b2 / den if den != 0.0 else 0.0)
    x = d[lo] - mu
    z = e[lo]
    for k in range(lo, hi):
        r = np.sqrt(x * x + z * z)  # no hypot: entries of a Gram of finite M (non-finite results fall back)
        c, s = (1.0, 0.0) if r == 0.0 else (x / r, z / r)
        if k > lo:
            e[k - 1] = r  # the bulge at (k-1, k+1) rotated into (k-1, k)
        a, b, cc = d[k], e[k], d[k + 1]
        d[k] = c * c * a + 2.0 * c * s * b + s * s * cc
        d[k + 1] = s * s * a - 2.0 * c * s * b + c * c * cc
        e[k] = c * s * (cc - a) + (c * c - s * s) * b
        if k + 1 < hi:
            z = s * e[k + 1]  # new bulge at (k, k+2)
            e[k + 1] = c * e[k + 1]
            x = e[k]


@njit(cache=True)
def _tridiagonal_eigenvalues(d, e):
    """Eigenvalues of the symmetric tridiagonal (d, e), in place in d (unsorted)."""
    n = d.shape[0]
    norm = 0.0  # ||T||_F: deflation is absolute, |e_i| <= eps ||T||, the accuracy the caller's error model needs
    for i in range(n):
        norm += d[i] * d[i] + (2.0 * e[i] * e[i] if i < n - 1 else 0.0)
    tol = 2.0 * U_ROUND * np.sqrt(norm)
    hi = n - 1
    steps = 0
    while hi > 0 and steps < 60 * n:
        if abs(e[hi - 1]) <= tol:
            e[hi - 1] = 0.0
            hi -= 1
            continue
        lo = hi - 1
        while lo > 0 and abs(e[lo - 1]) > tol:
            lo -= 1
        _qr_step(d, e, lo, hi)
        steps += 1
    return hi == 0  # False: no convergence (the caller falls back)


@njit(cache=True)
def eps_rank_numba(M, eps):
    """rank_ε per item of M (B, m, n) float64; -1 where the decision is within rounding (recompute by SVD)."""
    B, m, n = M.shape
    k = min(m, n)
    out = np.empty(B, dtype=np.int64)
    G = np.empty((k, k))
    d = np.empty(k)
    e = np.empty(max(k - 1, 1))
    for b in range(B):
        amax = 0.0
        for i in range(m):
            for j in range(n):
                amax = max(amax, abs(M[b, i, j]))
        if amax == 0.0:  # M = 0: every tail is 0, not > 0
            out[b] = 0
            continue
        A = M[b] / amax  # rank_ε is scale-free; entries <= 1 keep the Gram and the rotations far from overflow
        fro2 = 0.0
        for i in range(m):
            for j in range(n):
                fro2 += A[i, j] * A[i, j]
        for i in range(k):  # Gram of the shorter side (lower triangle: all the reduction reads)
            for j in range(i + 1):
                s = 0.0
                if m <= n:
                    for l in range(n):
                        s += A[i, l] * A[j, l]
                else:
                    for l in range(m):
                        s += A[l, i] * A[l, j]
                G[i, j] = s
        _tridiagonalize(G, d, e)
        if not _tridiagonal_eigenvalues(d, e[: k - 1] if k > 1 else e[:0]):
            out[b] = -1
            continue
        finite = np.isfinite(fro2)
        for i in range(k):
            finite = finite and np.isfinite(d[i])
        if not finite:  # overflow in the Gram or the rotations: the SVD decides
            out[b] = -1
            continue
        lam = np.sort(np.maximum(d, 0.0))[::-1]  # σ_i², descending
        thr = eps * eps * fro2
        delta = 64.0 * k * k * U_ROUND * fro2
        tail = 0.0
        count = 0
        unsure = False
        for r in range(k - 1, -1, -1):  # tail = Σ_{i>=r} λ_i, r from the end
            tail += lam[r]
            if abs(tail - thr) <= delta:
                unsure = True
            if tail > thr:
                count += 1
        out[b] = -1 if unsure else count
    return out
