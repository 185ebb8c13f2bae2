"""numba kernels of :mod:`theorylab.icl.predictors`: one prompt per thread, float64, all prefixes.

Each kernel takes X (B, k, d), y (B, k), Xq (B, m, d) float64 (C-contiguous) and returns
(B, k, m), and must match the numpy reference of the same name (``rls_ref``, ``lstsq_ref``,
``gd_ref``, ``knn_ref``) in :mod:`theorylab.icl.predictors`.  A prompt's d x d matrices stay
in cache for its whole pass, which is what makes every prefix cost about one solve.

Floating point: ``contract`` and ``reassoc`` only (FMAs, and dot products summed in SIMD lanes,
so a d-term sum is rounded in another order than the reference's: an error ~ d·eps relative);
no ``nnan`` / ``ninf``, so a non-finite value propagates as IEEE 754 says.

Minimum-norm least squares (``_lstsq``) follows Greville's recursion of ``lstsq_ref`` but keeps
the null-space projector as an orthonormal basis U of the examples' span (classical Gram–Schmidt
applied twice: c = (I − UᵀU)²x, the reference's Q(Qx)) and forms G = (XᵀX)⁺ only when an
example first falls in the span of the earlier ones.  Until then every example brought a new
direction, X = L U with L lower triangular (the Gram–Schmidt coordinates), Greville's update
w += c e/|c|² needs no G, and G = Uᵀ(LᵀL)⁻¹U = MᵀM with M = L⁻ᵀU (one triangular solve).
For generic prompts that is d steps at ~4rd flops instead of five d x d passes each.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches

_FLAGS = {"contract", "reassoc"}  # no nnan / ninf: non-finite values must propagate


@nb.njit(cache=True, inline="always", fastmath=_FLAGS)
def _dot(a, b, n):  # pragma: no cover - compiled
    """Σ_{i<n} a[i] b[i] (summed in SIMD lanes under ``reassoc``)."""
    acc = 0.0
    for i in range(n):
        acc += a[i] * b[i]
    return acc


@nb.njit(cache=True, inline="always", fastmath=_FLAGS)
def _predict(Xq, b, w, out, j):  # pragma: no cover - compiled
    """out[b, j, q] = <Xq[b, q], w> for every query q: the prediction of prefix j's weights."""
    for q in range(Xq.shape[1]):
        out[b, j, q] = _dot(Xq[b, q], w, w.shape[0])


@nb.njit(parallel=True, cache=True, fastmath=_FLAGS)
def _rls(X, y, Xq, p0, c):
    B, k, d = X.shape
    m = Xq.shape[1]
    out = np.empty((B, k, m))
    for b in nb.prange(B):
        P = np.zeros((d, d))
        for i in range(d):
            P[i, i] = p0
        w = np.zeros(d)
        Px = np.empty(d)
        for j in range(k):
            x = X[b, j]
            for i in range(d):  # Px = P_{j-1} x_j
                Px[i] = _dot(P[i], x, d)
            s = c + _dot(x, Px, d)
            e = y[b, j] - _dot(x, w, d)
            inv = 1.0 / s
            g = e * inv
            for i in range(d):  # w += Px e/s;  P -= Px Pxᵀ/s
                w[i] += Px[i] * g
                a = Px[i] * inv
                for l in range(d):
                    P[i, l] -= a * Px[l]
            _predict(Xq, b, w, out, j)
    return out


@nb.njit(parallel=True, cache=True, fastmath=_FLAGS)
def _gd(X, y, Xq, lr, steps, first):
    B, k, d = X.shape
    m = Xq.shape[1]
    out = np.empty((B, k - first, m))  # the prefixes j >= first
    for b in nb.prange(B):
        S = np.zeros((d, d)) if steps > 1 else np.zeros((1, 1))
        bv = np.zeros(d)
        w, g = np.empty(d), np.empty(d)
        for j in range(k):
            x = X[b, j]
            yj = y[b, j]
            for i in range(d):
                bv[i] += yj * x[i]
            if steps > 1:  # S = Σ xxᵀ only when a step starts away from 0
                for i in range(d):
                    xi = x[i]
                    for l in range(d):
                        S[i, l] += xi * x[l]
            if j < first:  # running sums only
                continue
            eta = lr / (j + 1)
            for i in range(d):  # the first step from w0 = 0: w = eta b
                w[i] = eta * bv[i]
            for _ in range(steps - 1):  # w -= eta (S w - b)
                for i in range(d):
                    g[i] = _dot(S[i], w, d) - bv[i]
                for i in range(d):
                    w[i] -= eta * g[i]
            _predict(Xq, b, w, out, j - first)
    return out


@nb.njit(cache=True, inline="always", fastmath=_FLAGS)
def _materialize_G(L, U, r, d, G, M):  # pragma: no cover - compiled
    """G = (XᵀX)⁺ = Uᵀ(LᵀL)⁻¹U = MᵀM with M = L⁻ᵀU (r x d), for X = L U (L r x r lower triangular)."""
    for i in range(r - 1, -1, -1):  # back substitution: Lᵀ M = U
        for t in range(d):
            M[i, t] = U[i, t]
        for l in range(i + 1, r):
            a = L[l, i]
            for t in range(d):
                M[i, t] -= a * M[l, t]
        inv = 1.0 / L[i, i]
        for t in range(d):
            M[i, t] *= inv
    for i in range(d):
        for t in range(d):
            G[i, t] = 0.0
    for l in range(r):
        for i in range(d):
            a = M[l, i]
            for t in range(d):
                G[i, t] += a * M[l, t]


@nb.njit(parallel=True, cache=True, fastmath=_FLAGS)
def _lstsq(X, y, Xq, rank_tol):
    B, k, d = X.shape
    m = Xq.shape[1]
    out = np.empty((B, k, m))
    for b in nb.prange(B):
        U = np.empty((d, d))  # orthonormal basis of the examples' span, rows 0..r-1
        L = np.zeros((d, d))  # coordinates: X = L U while every example brought a new direction
        G = np.empty((d, d))  # (XᵀX)⁺, formed when first needed
        M = np.empty((d, d))
        w = np.zeros(d)
        a, c, bv = np.empty(d), np.empty(d), np.empty(d)
        r = 0
        have_G = False
        for j in range(k):
            x = X[b, j]
            e = y[b, j] - _dot(x, w, d)
            new = False
            cc = 0.0
            if r < d:  # c = (I - UᵀU)x, projected twice; a = U x, the coordinates of x in the span
                for i in range(d):
                    c[i] = x[i]
                for i in range(r):  # first pass: classical Gram–Schmidt
                    a[i] = _dot(U[i], x, d)
                for i in range(r):
                    ai = a[i]
                    for t in range(d):
                        c[t] -= ai * U[i, t]
                for i in range(r):  # second pass (modified Gram–Schmidt): re-orthogonalized
                    a2 = _dot(U[i], c, d)
                    a[i] += a2
                    for t in range(d):
                        c[t] -= a2 * U[i, t]
                cc = _dot(c, c, d)
                new = cc > rank_tol * rank_tol * _dot(x, x, d)
            if new:  # a new direction: w += c e/|c|², U gains the row c/|c|
                if have_G:  # Greville's G update for a new direction
                    for i in range(d):
                        bv[i] = _dot(G[i], x, d)
                    s = 1.0 + _dot(x, bv, d)
                    for i in range(d):
                        for t in range(d):
                            G[i, t] += -(bv[i] * c[t] + c[i] * bv[t]) / cc + s * c[i] * c[t] / (cc * cc)
                else:  # X's new row of L: x = Σ a_i U_i + |c| U_r
                    for i in range(r):
                        L[r, i] = a[i]
                for i in range(d):
                    w[i] += c[i] * (e / cc)
                nc = np.sqrt(cc)
                L[r, r] = nc
                for t in range(d):
                    U[r, t] = c[t] / nc
                r += 1
            else:  # x in the span (always once r = d): b = G x, w += b e/s, G -= bbᵀ/s
                if not have_G:
                    _materialize_G(L, U, r, d, G, M)
                    have_G = True
                for i in range(d):
                    bv[i] = _dot(G[i], x, d)
                s = 1.0 + _dot(x, bv, d)
                g = e / s
                inv = 1.0 / s
                for i in range(d):
                    w[i] += bv[i] * g
                    ai = bv[i] * inv
                    for t in range(d):
                        G[i, t] -= ai * bv[t]
            _predict(Xq, b, w, out, j)
    return out


@nb.njit(parallel=True, cache=True)
def _knn(X, y, Xq, n_neighbors):
    B, k, d = X.shape
    m = Xq.shape[1]
    out = np.empty((B, k, m))
    for b in nb.prange(B):
        dist = np.empty(n_neighbors)
        lab = np.empty(n_neighbors)
        for q in range(m):
            cnt = 0
            for j in range(k):
                dj = 0.0
                for i in range(d):
                    t = Xq[b, q, i] - X[b, j, i]
                    dj += t * t
                # insert after every kept neighbour at distance <= dj (ties to the earlier example)
                pos = cnt
                while pos > 0 and dist[pos - 1] > dj:
                    pos -= 1
                if pos < n_neighbors:
                    last = min(cnt, n_neighbors - 1)
                    for t2 in range(last, pos, -1):
                        dist[t2] = dist[t2 - 1]
                        lab[t2] = lab[t2 - 1]
                    dist[pos] = dj
                    lab[pos] = y[b, j]
                    if cnt < n_neighbors:
                        cnt += 1
                acc = 0.0
                for t2 in range(cnt):
                    acc += lab[t2]
                out[b, j, q] = acc / cnt
    return out


def rls(X, y, Xq, p0, c):
    """Sherman–Morrison recursion; matches ``rls_ref``."""
    return _rls(X, y, Xq, float(p0), float(c))


def lstsq(X, y, Xq, rank_tol):
    """Greville's recursion; matches ``lstsq_ref``."""
    return _lstsq(X, y, Xq, float(rank_tol))


def gd(X, y, Xq, lr, steps, first=0):
    """GD from 0 at every prefix from ``first`` on; matches ``gd_ref``."""
    return _gd(X, y, Xq, float(lr), int(steps), int(first))


def knn(X, y, Xq, n_neighbors):
    """k nearest neighbours at every prefix; matches ``knn_ref``."""
    return _knn(X, y, Xq, int(n_neighbors))
