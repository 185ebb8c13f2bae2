"""In-context predictors for linear-regression prompts, at every prefix length at once.

Paper: #34 Akyürek, Schuurmans, Andreas, Ma & Zhou, "What learning algorithm is in-context
learning? Investigations with linear models" (2022, arXiv:2211.15661), Sec. 2 and 4 (the
predictors a trained in-context learner is compared with).

A prompt holds k examples (x_i, y_i), x_i in R^d, and m queries x_q.  Every predictor fits a
weight vector w on the examples and predicts ŷ_q = x_qᵀ w (kNN predicts a mean of labels):

* **ridge**        w = (XᵀX + λI)⁻¹ Xᵀy,  λ > 0;
* **least squares** (minimum norm)  w = X⁺y  (X⁺ the Moore–Penrose pseudo-inverse: the
  interpolating solution of least norm while k < d, ordinary least squares once XᵀX is invertible);
* **gradient descent** from w₀ = 0 on L(w) = 1/(2k) Σᵢ (wᵀxᵢ − yᵢ)²:
  w_{t+1} = w_t − lr ∇L(w_t) = w_t − (lr/k)(XᵀX w_t − Xᵀy), ``steps`` times;
* **averaging**    w = (1/k) Σᵢ yᵢ xᵢ  (one GD step with lr = 1);
* **k nearest neighbours**  ŷ_q = mean of the labels of the ``n_neighbors`` examples nearest to
  x_q in Euclidean distance (all of them while fewer are available; ties to the earlier example);
* **Bayes posterior mean** under w ~ N(0, τ²I), y = Xw + ε, ε ~ N(0, σ²I):
  μ = Σ Xᵀy / σ²,  Σ = (I/τ² + XᵀX/σ²)⁻¹  -- which is ridge with λ = σ²/τ²
  (:mod:`theorylab.icl.predictors_claims` checks it).

**Every prefix length** (``prefixes=True``): the output gains an axis of length k,
``out[..., j, :]`` = the predictor fitted on examples 0..j (j + 1 examples); with
``prefixes=False`` (default) only the full prompt, ``out[..., :] = out_prefixes[..., k-1, :]``.
All prefixes cost one pass over the examples, by rank-one updates:

* ridge and the posterior mean: recursive least squares (Sherman–Morrison).  With
  P_0 = p₀I, c a constant, and e_j = y_j − x_jᵀ w_{j−1} the innovation,

      s_j = c + x_jᵀ P_{j−1} x_j,   w_j = w_{j−1} + P_{j−1} x_j e_j / s_j,
      P_j = P_{j−1} − (P_{j−1}x_j)(P_{j−1}x_j)ᵀ / s_j;

  ridge: p₀ = 1/λ, c = 1, P_j = (λI + X_jᵀX_j)⁻¹;  Bayes (Kalman form): p₀ = τ², c = σ²,
  P_j = Σ_j = σ² (σ²/τ² I + X_jᵀX_j)⁻¹.
* least squares: Greville's recursion with the null-space projector Q_j = I − X_j⁺X_j and
  G_j = (X_jᵀX_j)⁺;  c = Q_{j−1}x_j (taken twice, re-orthogonalized), b = G_{j−1}x_j:
  a new direction (|c| > ``rank_tol``·|x_j|):  w += c e/|c|², Q −= ccᵀ/|c|²,
  G += −(bcᵀ + cbᵀ)/|c|² + (1 + xᵀb) ccᵀ/|c|⁴;  otherwise: s = 1 + xᵀb, w += b e/s, G −= bbᵀ/s.
* GD and averaging: the running sums S_j = Σ_{i<=j} xᵢxᵢᵀ and b_j = Σ_{i<=j} yᵢxᵢ, then
  ``steps`` updates w ← w − (lr/(j+1))(S_j w − b_j) per prefix.

Glossary: X -> X (k x d), y -> y, Xq -> the query points x_q, lam -> λ, lr -> the step size η,
noise -> σ, tau -> τ, k -> the number of in-context examples.

Shapes: X (..., k, d), y (..., k), Xq (..., m, d) with the same leading dims "...";
output (..., m), or (..., k, m) with ``prefixes=True``.  Backends: ``"ref"`` (float64 numpy,
a loop over examples vectorized over prompts), ``"numba"`` (the same recursions compiled, one
prompt per thread, float64), ``"torch"`` (the recursions on tensors, in the input dtype,
CPU/CUDA, differentiable), ``"auto"`` (torch tensors -> torch, numpy -> numba).
numpy in -> numpy out (input dtype); torch in -> torch out.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as V
from ..backends import like_input, resolve_backend, to_numpy

__all__ = ["make_inputs", "ridge_predict", "bayes_predict", "lstsq_predict", "gd_predict", "averaging_predict",
           "knn_predict", "ridge_closed_form", "rls_ref", "lstsq_ref", "gd_ref", "knn_ref", "RANK_TOL", "BACKENDS"]

BACKENDS = ("ref", "numba", "torch")
RANK_TOL = 1e-9  # |Q x| <= RANK_TOL |x|: x lies in the span of the earlier examples (like lstsq's rcond)


def make_inputs(rng: np.random.Generator, *, batch=1, k=8, d=3, m=1, noise=0.0, tau=1.0, dtype=np.float64) -> dict:
    """A linear-regression prompt: x_i, x_q ~ N(0, I_d), w ~ N(0, τ²I_d), y = Xw + σε.

    ``batch`` is an int or a tuple of leading dims.  Returns X (..., k, d), y (..., k),
    Xq (..., m, d), yq (..., m) (the noisy query targets) and w (..., d)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    lead = (batch,) if isinstance(batch, (int, np.integer)) else tuple(batch)
    for name, v in (("batch", lead), ("k", (k,)), ("d", (d,)), ("m", (m,))):
        for s in v:
            V.check_size(name, s)
    for name, v in (("noise", noise), ("tau", tau)):
        if not (isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
    w = rng.standard_normal(lead + (d,)) * tau
    X = rng.standard_normal(lead + (k, d))
    Xq = rng.standard_normal(lead + (m, d))
    y = np.einsum("...kd,...d->...k", X, w) + noise * rng.standard_normal(lead + (k,))
    yq = np.einsum("...md,...d->...m", Xq, w) + noise * rng.standard_normal(lead + (m,))
    return {key: val.astype(dtype) for key, val in dict(X=X, y=y, Xq=Xq, yq=yq, w=w).items()}


# ---------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------
def check_prompt(X, y, Xq):
    """X (..., k, d), y (..., k), Xq (..., m, d): one container and float dtype (float32/64),
    matching leading dims and d, every size >= 1, finite.  Returns (kind, lead, k, d, m)."""
    kind = V.check_arrays({"X": X, "y": y, "Xq": Xq})
    for name, a in (("X", X), ("y", y), ("Xq", Xq)):
        if V.dtype_name(a) not in ("float32", "float64"):
            raise TypeError(f"{name} must be float32 or float64; got {V.dtype_name(a)} (shape {tuple(a.shape)})")
    shapes = {"X": X.shape, "y": y.shape, "Xq": Xq.shape}
    if X.ndim < 2:
        raise ValueError(f"X must have shape (..., k, d); got {tuple(X.shape)}")
    *lead, k, d = (int(s) for s in X.shape)
    V.check_shape("y", y, (*lead, k), shapes)
    if Xq.ndim != X.ndim:
        raise ValueError(f"Xq must have shape (..., m, d) with the leading dims of X; got {tuple(Xq.shape)} "
                         f"(inputs: X {tuple(X.shape)}, y {tuple(y.shape)})")
    V.check_shape("Xq", Xq, (*lead, int(Xq.shape[-2]), d), shapes)
    for name, a in (("X", X), ("y", y), ("Xq", Xq)):
        V.check_nonempty(name, a, "(k, d, m and every batch dim must be >= 1)")
        V.check_finite(name, a)
    return kind, tuple(lead), k, d, int(Xq.shape[-2])


def check_positive(name: str, v) -> float:
    """A finite number > 0 (int, float or numpy scalar; not bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a number; got {v!r} ({type(v).__name__})")
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0; got {v!r}")
    return float(v)


def _check_flag(name, v):
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be a bool; got {v!r} ({type(v).__name__})")


# ---------------------------------------------------------------------------------------
# references: numpy float64 on (B, k, d) prompts; output (B, k, m), one row per prefix
# ---------------------------------------------------------------------------------------
def rls_ref(X, y, Xq, p0, c):
    """Recursive least squares P_0 = p0 I, s_j = c + xᵀPx (ridge: p0 = 1/λ, c = 1; Bayes: τ², σ²)."""
    B, k, d = X.shape
    P = np.broadcast_to(p0 * np.eye(d), (B, d, d)).copy()  # (B, d, d)
    w = np.zeros((B, d))
    out = np.empty((B, k, Xq.shape[1]))
    for j in range(k):
        x = X[:, j]  # (B, d)
        Px = np.einsum("bij,bj->bi", P, x)  # (B, d)
        s = c + np.einsum("bi,bi->b", x, Px)  # (B,)
        e = y[:, j] - np.einsum("bi,bi->b", x, w)  # innovation
        w = w + Px * (e / s)[:, None]
        P = P - Px[:, :, None] * Px[:, None, :] / s[:, None, None]
        out[:, j] = np.einsum("bmd,bd->bm", Xq, w)
    return out


def ridge_closed_form(X, y, Xq, lam):
    """(XⱼᵀXⱼ + λI)⁻¹Xⱼᵀyⱼ by one solve per prefix j (the closed form; k solves, for checks)."""
    B, k, d = X.shape
    out = np.empty((B, k, Xq.shape[1]))
    for j in range(k):
        Xj, yj = X[:, : j + 1], y[:, : j + 1]
        A = np.einsum("bki,bkj->bij", Xj, Xj) + lam * np.eye(d)
        w = np.linalg.solve(A, np.einsum("bki,bk->bi", Xj, yj)[..., None])[..., 0]
        out[:, j] = np.einsum("bmd,bd->bm", Xq, w)
    return out


def lstsq_ref(X, y, Xq, rank_tol=RANK_TOL):
    """Minimum-norm least squares at every prefix by Greville's recursion (module docstring)."""
    B, k, d = X.shape
    Q = np.broadcast_to(np.eye(d), (B, d, d)).copy()  # null-space projector I - X⁺X
    G = np.zeros((B, d, d))  # (XᵀX)⁺
    w = np.zeros((B, d))
    out = np.empty((B, k, Xq.shape[1]))
    for j in range(k):
        x = X[:, j]
        c = np.einsum("bij,bj->bi", Q, x)
        c = np.einsum("bij,bj->bi", Q, c)  # re-orthogonalized
        b = np.einsum("bij,bj->bi", G, x)
        e = y[:, j] - np.einsum("bi,bi->b", x, w)
        cc = np.einsum("bi,bi->b", c, c)
        new = cc > (rank_tol**2) * np.einsum("bi,bi->b", x, x)  # a new direction
        cc1 = np.where(new, cc, 1.0)
        s = 1.0 + np.einsum("bi,bi->b", x, b)
        ccT, bcT = c[:, :, None] * c[:, None, :], b[:, :, None] * c[:, None, :]
        G_new = G - (bcT + np.swapaxes(bcT, 1, 2)) / cc1[:, None, None] + (s / cc1**2)[:, None, None] * ccT
        G_old = G - b[:, :, None] * b[:, None, :] / s[:, None, None]
        G = np.where(new[:, None, None], G_new, G_old)
        Q = np.where(new[:, None, None], Q - ccT / cc1[:, None, None], Q)
        w = w + np.where(new[:, None], c * (e / cc1)[:, None], b * (e / s)[:, None])
        out[:, j] = np.einsum("bmd,bd->bm", Xq, w)
    return out


def gd_ref(X, y, Xq, lr, steps, first=0):
    """``steps`` GD steps from 0 on 1/(2n) Σ_{i<n} (wᵀxᵢ − yᵢ)² for every prefix n = j + 1 >= first + 1.

    (B, k − first, m): the prefixes from ``first`` on (the public functions ask for the last one
    alone when ``prefixes=False``, so a step size too large for the short prefixes never runs
    their diverging iterates).  Plain matmuls and sums: it also runs on object arrays of sympy
    symbols (the LSA proof)."""
    B, k, d = X.shape
    out = np.empty((B, k - first, Xq.shape[1]), dtype=X.dtype)
    for j in range(first, k):
        Xj, yj = X[:, : j + 1], y[:, : j + 1]  # (B, n, d), (B, n)
        w = np.zeros((B, d), dtype=X.dtype)
        for _ in range(steps):
            r = (Xj @ w[:, :, None])[:, :, 0] - yj  # residuals (B, n)
            w = w - (lr / (j + 1)) * (np.swapaxes(Xj, 1, 2) @ r[:, :, None])[:, :, 0]  # w - lr ∇L
        out[:, j - first] = (Xq @ w[:, :, None])[:, :, 0]
    return out


def knn_ref(X, y, Xq, n_neighbors):
    """Mean label of the ``n_neighbors`` nearest of the first j + 1 examples (stable: ties to the earlier)."""
    B, k, d = X.shape
    D = ((Xq[:, :, None, :] - X[:, None, :, :]) ** 2).sum(-1)  # (B, m, k) squared distances
    out = np.empty((B, k, Xq.shape[1]))
    for j in range(k):
        idx = np.argsort(D[:, :, : j + 1], axis=-1, kind="stable")[:, :, :n_neighbors]  # (B, m, nn)
        out[:, j] = np.take_along_axis(np.broadcast_to(y[:, None, : j + 1], idx.shape[:2] + (j + 1,)), idx, -1).mean(-1)
    return out


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def _run(name, X, y, Xq, params, prefixes, backend):
    _check_flag("prefixes", prefixes)
    kind, lead, k, d, m = check_prompt(X, y, Xq)
    backend = resolve_backend(backend, (X, y, Xq), valid=BACKENDS)
    B = int(np.prod(lead, dtype=np.int64))
    if name == "gd" and not prefixes:  # only the full prompt's prediction: the other prefixes never run
        params = dict(params, first=k - 1)
    if backend == "torch":
        from . import _predictors_torch as T
        from ..backends import to_torch

        Xt, yt, Xqt = (to_torch(a) for a in (X, y, Xq))
        out = getattr(T, name)(Xt.reshape(B, k, d), yt.reshape(B, k), Xqt.reshape(B, m, d), **params)
    else:
        X64, y64, Xq64 = (np.ascontiguousarray(to_numpy(a), dtype=np.float64) for a in (X, y, Xq))
        X64, y64, Xq64 = X64.reshape(B, k, d), y64.reshape(B, k), Xq64.reshape(B, m, d)
        if backend == "numba":
            from . import _predictors_numba as N

            out = getattr(N, name)(X64, y64, Xq64, **params)
        else:
            out = _REFS[name](X64, y64, Xq64, **params)
    out = out.reshape(*lead, -1, m)  # (..., k, m): one row per prefix (gd without prefixes: the last alone)
    if not prefixes:
        out = out[..., -1, :]  # (..., m)
    out = like_input(out, X)
    return out.astype(X.dtype, copy=False) if kind == "numpy" else out


_REFS = {
    "rls": rls_ref,
    "lstsq": lstsq_ref,
    "gd": lambda X, y, Xq, lr, steps, first=0: gd_ref(X, y, Xq, lr, steps, first),
    "knn": knn_ref,
}


def ridge_predict(X, y, Xq, lam, *, prefixes=False, backend="auto"):
    """Ridge prediction x_qᵀ(XᵀX + λI)⁻¹Xᵀy (λ > 0), (..., m); every prefix with ``prefixes=True``, (..., k, m)."""
    lam = check_positive("lam", lam)
    return _run("rls", X, y, Xq, dict(p0=1.0 / lam, c=1.0), prefixes, backend)


def bayes_predict(X, y, Xq, noise, tau, *, prefixes=False, backend="auto"):
    """Posterior-mean prediction x_qᵀμ under w ~ N(0, τ²I), noise N(0, σ²) (σ = ``noise`` > 0, τ = ``tau`` > 0),
    by the Kalman (covariance) recursion Σ_0 = τ²I, s_j = σ² + xⱼᵀΣx_j."""
    noise, tau = check_positive("noise", noise), check_positive("tau", tau)
    return _run("rls", X, y, Xq, dict(p0=tau**2, c=noise**2), prefixes, backend)


def lstsq_predict(X, y, Xq, *, prefixes=False, rank_tol=RANK_TOL, backend="auto"):
    """Minimum-norm least-squares prediction x_qᵀX⁺y (Greville's recursion; ``rank_tol`` as in the module docstring)."""
    rank_tol = check_positive("rank_tol", rank_tol)
    return _run("lstsq", X, y, Xq, dict(rank_tol=rank_tol), prefixes, backend)


def gd_predict(X, y, Xq, lr, steps=1, *, prefixes=False, backend="auto"):
    """x_qᵀw after ``steps`` GD steps w ← w − lr∇L(w) from w₀ = 0 on L(w) = 1/(2k) Σ (wᵀxᵢ − yᵢ)² (lr > 0)."""
    lr = check_positive("lr", lr)
    steps = V.check_size("steps", steps)
    return _run("gd", X, y, Xq, dict(lr=lr, steps=steps), prefixes, backend)


def averaging_predict(X, y, Xq, *, prefixes=False, backend="auto"):
    """x_qᵀ (1/k) Σᵢ yᵢxᵢ (= one GD step with lr = 1)."""
    return _run("gd", X, y, Xq, dict(lr=1.0, steps=1), prefixes, backend)


def knn_predict(X, y, Xq, n_neighbors=3, *, prefixes=False, backend="auto"):
    """Mean label of the ``n_neighbors`` examples nearest to each query (fewer while fewer exist)."""
    n_neighbors = V.check_size("n_neighbors", n_neighbors)
    return _run("knn", X, y, Xq, dict(n_neighbors=n_neighbors), prefixes, backend)
