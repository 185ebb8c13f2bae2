"""numba kernels of :mod:`theorylab.icl.predictors`: one prompt per thread, float64, all prefixes.

Each kernel takes X (B, k, d), y (B, k), Xq (B, m, d) float64 (C-contiguous) and returns
(B, k, m), and must match the numpy reference of the same name (``rls_ref``, ``lstsq_ref``,
``gd_ref``, ``knn_ref``) in :mod:`theorylab.icl.predictors`.  A prompt's d x d matrices stay
in cache for its whole pass, which is what makes every prefix cost about one solve.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from .._numba_cache import ensure_cache_dir

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches


@nb.njit(cache=True, inline="always")
def _predict(Xq, b, w, out, j):  # pragma: no cover - compiled
    """out[b, j, q] = <Xq[b, q], w> for every query q: the prediction of prefix j's weights."""
    for q in range(Xq.shape[1]):
        acc = 0.0
        for i in range(w.shape[0]):
            acc += Xq[b, q, i] * w[i]
        out[b, j, q] = acc


@nb.njit(parallel=True, cache=True)
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
            s = c
            e = y[b, j]
            for i in range(d):
                acc = 0.0
                for l in range(d):
                    acc += P[i, l] * X[b, j, l]
                Px[i] = acc
                s += X[b, j, i] * acc
                e -= X[b, j, i] * w[i]
            inv = 1.0 / s
            g = e * inv
            for i in range(d):
                w[i] += Px[i] * g
                a = Px[i] * inv
                for l in range(d):
                    P[i, l] -= a * Px[l]
            _predict(Xq, b, w, out, j)  # out[b, j, :] = Xq[b] @ w
    return out


@nb.njit(parallel=True, cache=True)
def _lstsq(X, y, Xq, rank_tol):
    B, k, d = X.shape
    m = Xq.shape[1]
    out = np.empty((B, k, m))
    for b in nb.prange(B):
        Q = np.eye(d)
        G = np.zeros((d, d))
        w = np.zeros(d)
        c0, c, bv = np.empty(d), np.empty(d), np.empty(d)
        rank = 0
        for j in range(k):
            full = rank == d  # the examples span R^d: no new direction is possible, Q = 0
            x = X[b, j]
            e = y[b, j]
            xx = 0.0
            for i in range(d):
                e -= x[i] * w[i]
                xx += x[i] * x[i]
                a1 = 0.0
                for l in range(d):
                    a1 += G[i, l] * x[l]
                bv[i] = a1
            cc, s = 0.0, 1.0
            for i in range(d):
                s += x[i] * bv[i]
            if not full:
                for i in range(d):
                    a0 = 0.0
                    for l in range(d):
                        a0 += Q[i, l] * x[l]
                    c0[i] = a0
                for i in range(d):
                    acc = 0.0
                    for l in range(d):
                        acc += Q[i, l] * c0[l]
                    c[i] = acc
                    cc += acc * acc
            if not full and cc > rank_tol * rank_tol * xx:  # a new direction
                rank += 1
                for i in range(d):
                    w[i] += c[i] * e / cc
                    for l in range(d):
                        G[i, l] += -(bv[i] * c[l] + c[i] * bv[l]) / cc + s * c[i] * c[l] / (cc * cc)
                        Q[i, l] -= c[i] * c[l] / cc
            else:
                for i in range(d):
                    w[i] += bv[i] * e / s
                    for l in range(d):
                        G[i, l] -= bv[i] * bv[l] / s
            _predict(Xq, b, w, out, j)  # out[b, j, :] = Xq[b] @ w
    return out


@nb.njit(parallel=True, cache=True)
def _gd(X, y, Xq, lr, steps):
    B, k, d = X.shape
    m = Xq.shape[1]
    out = np.empty((B, k, m))
    for b in nb.prange(B):
        S = np.zeros((d, d))
        bv = np.zeros(d)
        w, g = np.empty(d), np.empty(d)
        for j in range(k):
            for i in range(d):
                bv[i] += y[b, j] * X[b, j, i]
                if steps > 1:  # one step from 0 needs only b: w = (lr/n) b
                    for l in range(d):
                        S[i, l] += X[b, j, i] * X[b, j, l]
            w[:] = 0.0
            eta = lr / (j + 1)
            for _ in range(steps):
                for i in range(d):
                    acc = -bv[i]
                    for l in range(d):
                        acc += S[i, l] * w[l]
                    g[i] = acc
                for i in range(d):
                    w[i] -= eta * g[i]
            _predict(Xq, b, w, out, j)  # out[b, j, :] = Xq[b] @ w
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


def gd(X, y, Xq, lr, steps):
    """GD from 0 at every prefix; matches ``gd_ref``."""
    return _gd(X, y, Xq, float(lr), int(steps))


def knn(X, y, Xq, n_neighbors):
    """k nearest neighbours at every prefix; matches ``knn_ref``."""
    return _knn(X, y, Xq, int(n_neighbors))
