"""numba path of :mod:`theorylab.lowrank.heads`: the heads (must match ``attention_heads_ref``),
the nearest-point targets and the normal equations of ``fit_output_weights``.

* :func:`heads_numba`: per (item, sample, head) the reference's arithmetic, q = Q_h y (r,),
  the logits s_i = q · (K_h x_i) shifted by their maximum m, head_h = Σ_i e^{s_i − m} x_i /
  Σ_i e^{s_i − m}, with the exponential compiled in the same loops
  (:func:`theorylab._fastexp.exp`, a few ulp of numpy's, vectorizable) and, for the fit, the
  targets x_{argmax ⟨x_i, y⟩} in the same pass: one compiled call, no temporary over all items.
* :func:`normal_equations`: per item G = ΦᵀΦ, Cholesky, G⁻¹ and its exact 1-norm condition
  number, W = G⁻¹ Φᵀ f; the items above the threshold are marked for the caller's SVD.

Inputs are flattened by :func:`heads_numba`: X (S, T, N, d), y (S, T, d) and Q, K
(S, H, r, d), one set of heads per item s shared by its T samples.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import _fastexp
from .._fastexp import exp as fexp
from .._numba_cache import ensure_cache_dir, refresh_on_change

ensure_cache_dir(__file__)  # before the decorators: a read-only install still caches


@njit(cache=True, error_model="numpy")  # IEEE division (no zero check): the loops vectorize
def _heads(X, y, Q, K, nearest):
    """heads (S, T, H, d) = Σ_i e^{s_i − m} x_i / Σ_i e^{s_i − m}, s_i = (Q_h y)·(K_h x_i), m = max_i s_i,
    and, if ``nearest``, the targets x_{argmax_i ⟨x_i, y⟩} (S, T, d) (first maximum; else (0, 0, 0)).

    One pass over the items.  Per item its points and queries are copied with the sample index
    last, xt (N, d, T) and yt (d, T), so that every step is a loop over the T samples (contiguous:
    it vectorizes, the exponential included, :func:`theorylab._fastexp.exp`; the maxima are
    selects).  The sums run in the reference's order."""
    S, T, N, d = X.shape
    H, r = Q.shape[1], Q.shape[2]
    out = np.empty((S, T, H, d))
    tgt = np.empty((S, T, d) if nearest else (0, 0, 0))
    xt = np.empty((N, d, T))
    yt = np.empty((d, T))
    q = np.empty((r, T))  # Q_h y
    w = np.empty((N, T))  # logits s_i, then weights e^{s_i − m}
    m = np.empty(T)
    tot = np.empty(T)
    acc = np.empty(T)
    arg = np.zeros(T, np.int64)
    for a in range(S):
        for t in range(T):
            for c in range(d):
                yt[c, t] = y[a, t, c]
            for i in range(N):
                for c in range(d):
                    xt[i, c, t] = X[a, t, i, c]
        if nearest:
            m[:] = -np.inf
            for i in range(N):
                acc[:] = 0.0
                for c in range(d):
                    for t in range(T):
                        acc[t] += xt[i, c, t] * yt[c, t]
                for t in range(T):
                    better = acc[t] > m[t]  # strict: the first maximum wins, as argmax
                    m[t] = acc[t] if better else m[t]
                    arg[t] = i if better else arg[t]
            for t in range(T):
                for c in range(d):
                    tgt[a, t, c] = xt[arg[t], c, t]
        for h in range(H):
            for k in range(r):
                q[k, :] = 0.0
                for c in range(d):
                    g = Q[a, h, k, c]
                    for t in range(T):
                        q[k, t] += g * yt[c, t]
            m[:] = -np.inf
            for i in range(N):
                w[i, :] = 0.0
                for k in range(r):
                    acc[:] = 0.0
                    for c in range(d):
                        g = K[a, h, k, c]
                        for t in range(T):
                            acc[t] += g * xt[i, c, t]
                    for t in range(T):
                        w[i, t] += q[k, t] * acc[t]
                for t in range(T):
                    m[t] = w[i, t] if w[i, t] > m[t] else m[t]
            tot[:] = 0.0
            for i in range(N):
                for t in range(T):
                    w[i, t] = fexp(w[i, t] - m[t])
                    tot[t] += w[i, t]
            for c in range(d):
                acc[:] = 0.0
                for i in range(N):
                    for t in range(T):
                        acc[t] += w[i, t] * xt[i, c, t]
                for t in range(T):
                    acc[t] /= tot[t]
                for t in range(T):
                    out[a, t, h, c] = acc[t]
    return out, tgt


def _flatten(X, y, Q, K):
    """X (S, T, N, d), y (S, T, d), Q, K (S, H, r, d) float64 C-contiguous, and the leading shape
    of the heads (..., H, d) (the broadcasting of ``attention_heads_ref``)."""
    X, y, Q, K = (np.asarray(a, np.float64) for a in (X, y, Q, K))
    H, r, d = Q.shape[-3:]
    N = X.shape[-2]
    if Q.ndim == X.ndim:  # one set of heads per sweep item, shared by its samples
        sweep = np.broadcast_shapes(X.shape[:-3], Q.shape[:-3])
        T = X.shape[-3]
        lead = sweep + (T,)
        Xf = np.broadcast_to(X, sweep + X.shape[-3:]).reshape(-1, T, N, d)
        yf = np.broadcast_to(y, sweep + y.shape[-2:]).reshape(-1, T, d)
        Qf, Kf = (np.broadcast_to(A, sweep + (H, r, d)).reshape(-1, H, r, d) for A in (Q, K))
    else:
        lead = np.broadcast_shapes(X.shape[:-2], Q.shape[:-3])
        if all(s == 1 for s in Q.shape[:-3]):  # heads shared by every sample: one item of all samples
            Xf = np.broadcast_to(X, lead + (N, d)).reshape(1, -1, N, d)
            yf = np.broadcast_to(y, lead + (d,)).reshape(1, -1, d)
            Qf, Kf = (A.reshape(1, H, r, d) for A in (Q, K))
        else:  # general broadcast: one item per sample
            Xf = np.broadcast_to(X, lead + (N, d)).reshape(-1, 1, N, d)
            yf = np.broadcast_to(y, lead + (d,)).reshape(-1, 1, d)
            Qf, Kf = (np.broadcast_to(A, lead + (H, r, d)).reshape(-1, H, r, d) for A in (Q, K))
    return tuple(np.ascontiguousarray(a) for a in (Xf, yf, Qf, Kf)), lead


def heads_numba(X, y, Q, K, *, nearest=False):
    """float64 heads (..., H, d), the broadcasting of ``attention_heads_ref`` (Q, K (..., H, r, d)),
    and with ``nearest`` also the nearest-point targets (..., d) of the same items (else None)."""
    (Xf, yf, Qf, Kf), lead = _flatten(X, y, Q, K)
    H, d = Qf.shape[1], Qf.shape[3]
    out, tgt = _heads(Xf, yf, Qf, Kf, bool(nearest))
    return out.reshape(lead + (H, d)), (tgt.reshape(lead + (d,)) if nearest else None)


def attention_heads_numba(X, y, Q, K) -> np.ndarray:
    """float64 heads (..., H, d), the broadcasting of ``attention_heads_ref`` (Q, K (..., H, r, d))."""
    return heads_numba(X, y, Q, K)[0]


@njit(cache=True, fastmath={"reassoc", "contract"})  # the sums over samples may be reordered: they vectorize
def normal_equations(Phi, f, widths, cond_max):
    """W (S, len(widths), P, k): for each width p in ``widths`` (increasing, <= P) the solution of
    the normal equations of the first p columns, G_p W = Φ_pᵀ f with G_p = Φ_pᵀ Φ_p, zero past
    row p; for Φ (S, T, P), f (S, T, k).  bad (S, len(widths)) marks the (item, width) pairs that
    need the SVD: a Cholesky pivot <= 0 within the first p (G_p singular to working precision)
    or an exact 1-norm condition number ||G_p||₁ ||G_p⁻¹||₁ above ``cond_max`` (or not finite).

    Every width comes from one factorization of the widest G, because the leading blocks nest:
    G = L Lᵀ (Cholesky) gives G_p = L_p L_pᵀ with L_p = L[:p, :p]; L⁻¹ by forward substitution
    gives L_p⁻¹ = (L⁻¹)[:p, :p]; and G_p⁻¹ = L_p⁻ᵀ L_p⁻¹ = Σ_{m<p} ℓ_mᵀ ℓ_m over the rows
    ℓ_m = (L⁻¹)[m, :p], accumulated row by row and read off as m reaches each width (formed:
    its 1-norm is the exact one).  W_p = G_p⁻¹ (Φ_pᵀ f), as ``lstsq_batched``'s ``"normal"``
    path with its inverse, one width at a time."""
    S, T, P = Phi.shape
    k, nw = f.shape[2], widths.shape[0]
    W = np.zeros((S, nw, P, k))
    bad = np.zeros((S, nw), np.bool_)
    pt = np.empty((P, T))  # Φᵀ of one item
    ft = np.empty((k, T))
    G = np.empty((P, P))
    b = np.empty((P, k))
    L = np.zeros((P, P))
    Li = np.zeros((P, P))  # L⁻¹ (lower)
    Gi = np.empty((P, P))  # G_p⁻¹ accumulated, upper triangle
    for a in range(S):
        for t in range(T):
            for p in range(P):
                pt[p, t] = Phi[a, t, p]
            for j in range(k):
                ft[j, t] = f[a, t, j]
        for p in range(P):
            for q in range(p + 1):
                acc = 0.0
                for t in range(T):
                    acc += pt[p, t] * pt[q, t]
                G[p, q] = acc
                G[q, p] = acc
            for j in range(k):
                acc = 0.0
                for t in range(T):
                    acc += pt[p, t] * ft[j, t]
                b[p, j] = acc
        good = P  # the leading `good` columns factor: pivots 0 .. good-1 are > 0
        for j in range(P):  # Cholesky, column by column
            s = G[j, j]
            for m in range(j):
                s -= L[j, m] * L[j, m]
            if not s > 0.0:
                good = j
                break
            L[j, j] = np.sqrt(s)
            for i in range(j + 1, P):
                s = G[i, j]
                for m in range(j):
                    s -= L[i, m] * L[j, m]
                L[i, j] = s / L[j, j]
        for j in range(good):  # L⁻¹ column j: forward substitution on e_j
            Li[j, j] = 1.0 / L[j, j]
            for i in range(j + 1, good):
                s = 0.0
                for m in range(j, i):
                    s -= L[i, m] * Li[m, j]
                Li[i, j] = s / L[i, i]
        Gi[:, :] = 0.0
        w = 0
        for m in range(min(good, widths[nw - 1])):
            for j in range(m + 1):  # G⁻¹ += ℓ_mᵀ ℓ_m on the upper triangle (i <= j <= m)
                lj = Li[m, j]
                for i in range(j + 1):
                    Gi[i, j] += Li[m, i] * lj
            if m + 1 != widths[w]:
                continue
            p = m + 1
            gnorm, inorm = 0.0, 0.0
            for j in range(p):  # 1-norms of G_p and G_p⁻¹: largest column sum of |.|
                cg, ci = 0.0, 0.0
                for i in range(p):
                    cg += abs(G[i, j])
                    ci += abs(Gi[i, j]) if i <= j else abs(Gi[j, i])
                gnorm = max(gnorm, cg)
                inorm = max(inorm, ci)
            cond = gnorm * inorm
            if not cond <= cond_max:  # also NaN / inf
                bad[a, w] = True
            else:
                for i in range(p):
                    for j in range(k):
                        s = 0.0
                        for m2 in range(p):
                            s += (Gi[i, m2] if i <= m2 else Gi[m2, i]) * b[m2, j]
                        W[a, w, i, j] = s
            w += 1
        for w2 in range(w, nw):  # widths past the first failed pivot
            bad[a, w2] = True
    return W, bad


refresh_on_change(globals(), [_fastexp.__file__])  # the kernels above inline _fastexp's exp: recompile when it changes
