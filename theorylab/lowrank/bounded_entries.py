"""Bounded entries: the polynomial method and the ε-rank of exp(QKᵀ).

Papers: #98 Alman & Song, "How to Capture Higher-order Correlations? Generalizing Matrix
Softmax Attention to Kronecker Computation" (2023, arXiv:2310.04064) and their matrix case
"Fast Attention Requires Bounded Entries" (2023, arXiv:2302.13214), Lemma 3.1 (polynomial
method) and Thm 1.3/1.4 (the √log n threshold); #36 Hu et al., "Computational Limits of
Low-Rank Adaptation (LoRA) for Transformer-Based Models" (2024, arXiv:2406.03136); #65
"On Computational Limits and Provably Efficient Criteria of Visual Autoregressive Models"
(2025, arXiv:2501.04377).

**Polynomial features.**  For x ∈ R^d and a degree g, with multi-indices α ∈ N^d,
|α| = Σ α_l, α! = Π α_l!, x^α = Π x_l^{α_l}:

    φ_g(x) = ( x^α / √(α!) )_{|α| <= g}        (one feature per monomial of degree <= g)

By the multinomial theorem (q·k)^j = Σ_{|α|=j} (j!/α!) q^α k^α, hence

    ⟨φ_g(q), φ_g(k)⟩ = Σ_{j=0}^{g} (q·k)^j / j!  =  T_g(q·k),

the degree-g Taylor truncation of exp(q·k): the n x n matrix T_g(QKᵀ) (entrywise) factors
exactly as U Vᵀ with U = φ_g(Q), V = φ_g(K), of width

    #features(d, g) = Σ_{j=0}^{g} C(d−1+j, j) = C(d+g, g)      (stars and bars; hockey stick).

**Truncation error.**  Lagrange remainder: for s = q·k,

    |exp(s) − T_g(s)| <= exp(max(s, 0)) |s|^{g+1} / (g+1)!.

**ε-rank.**  For M ∈ R^{m x n} with singular values σ_1 >= σ_2 >= ...,

    rank_ε(M) = min { r : ||M − M_r||_F <= ε ||M||_F },   ||M − M_r||_F² = Σ_{i>r} σ_i²

(Eckart–Young; the threshold is scaled by ||M||_F, not by σ_1 and not absolute).  If every
logit obeys |q_i·k_j| <= β then ||M||_F >= √(mn) e^{−β} and ||M − T_g||_F <= √(mn) e^β
β^{g+1}/(g+1)!, so rank_ε(exp(QKᵀ)) <= C(d+g, g) for the smallest g with
e^{2β} β^{g+1}/(g+1)! <= ε: a bound independent of n (:func:`eps_rank_bound`).  Alman–Song's
threshold: with entries of Q, K bounded by B (logits up to ~B²), subquadratic attention
exists for B = o(√log n) and not (under SETH) for B = Ω(√log n).  With rows of norm B
(here), the ε-rank is flat in n once n >> e^{B²} and grows with n while n << e^{B²}.  At a
fixed dimension d every curve saturates eventually (at most the n-free bound above; for
d = 3 and B = 4 near n ~ 300, rank ~140); the hardness side of the threshold needs
d = Θ(log n), which a fixed-d experiment shows only before saturation.

Glossary (code -> paper): X -> a row set of Q or K; degree -> g; B -> the entry bound B
(here the row norm, so logits are bounded by β = B²); eps -> ε.

Shapes: X (..., n, d) -> φ_g(X) (..., n, C(d+g, g)); M (..., m, n) -> rank (...) (integers).
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from functools import lru_cache

import numpy as np

from .. import _validate as V
from ..backends import is_tensor, like_input, resolve_backend, to_numpy, to_torch
from ._common import BACKENDS, check_inputs, check_positive_real

__all__ = ["polynomial_features", "polynomial_features_ref", "feature_count", "monomials", "taylor_kernel",
           "taylor_remainder_bound", "eps_rank", "eps_rank_ref", "eps_rank_bound", "make_inputs"]


# ---------------------------------------------------------------------------------------
# counting and the monomial list
# ---------------------------------------------------------------------------------------
def feature_count(d, degree) -> int:
    """The library's counter: C(d + g, g) features of degree <= g in d variables."""
    d, g = V.check_size("d", d), V.check_size("degree", degree, lo=0)
    return math.comb(d + g, g)


@lru_cache(maxsize=64)
def monomials(d: int, degree: int) -> tuple:
    """Every monomial of degree <= g in d variables as ``(index_tuple, 1/α!)``, by degree.

    ``index_tuple`` lists the variables of the monomial with repetition (i_1 <= ... <= i_j;
    x^α = Π_l x[i_l]); ``1/α!`` is an exact ``Fraction`` (α_l = multiplicity of variable l).
    """
    out = []
    for j in range(degree + 1):
        for idx in itertools.combinations_with_replacement(range(d), j):  # the C(d-1+j, j) monomials of degree j
            alpha_fact = math.prod(math.factorial(idx.count(l)) for l in set(idx))
            out.append((idx, Fraction(1, alpha_fact)))
    return tuple(out)


# ---------------------------------------------------------------------------------------
# inputs and references
# ---------------------------------------------------------------------------------------
def make_inputs(rng: np.random.Generator, *, n=16, m=None, d=3, B=1.0, batch=(), dtype=np.float64) -> dict:
    """Q (batch..., m, d) and K (batch..., n, d) with rows uniform on the sphere of radius B (|q·k| <= B²)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    n, d = V.check_size("n", n), V.check_size("d", d)
    m = n if m is None else V.check_size("m", m)
    B = check_positive_real("B", B)
    batch = tuple(int(b) for b in batch)

    def sphere(rows):
        x = rng.standard_normal(batch + (rows, d))
        return B * x / np.linalg.norm(x, axis=-1, keepdims=True)

    return {"Q": sphere(m).astype(dtype), "K": sphere(n).astype(dtype)}


def polynomial_features_ref(X, degree: int) -> np.ndarray:
    """float64 φ_g(X): one loop over degrees; each degree's monomials as products of gathered columns."""
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[-1]
    cols = []
    terms = monomials(d, degree)
    for j in range(degree + 1):
        sel = [(t, c) for t, c in terms if len(t) == j]
        idx = np.array([t for t, _ in sel], dtype=np.int64).reshape(len(sel), j)  # (M_j, j)
        coef = np.sqrt(np.array([float(c) for _, c in sel]))  # √(1/α!)  (M_j,)
        cols.append(X[..., idx].prod(axis=-1) * coef)  # (..., n, M_j, j) -> (..., n, M_j)
    return np.concatenate(cols, axis=-1)  # (..., n, C(d+g, g))


def taylor_kernel(Q, K, degree: int) -> np.ndarray:
    """float64 T_g(QKᵀ) = Σ_{j<=g} (QKᵀ)^j / j! entrywise (the matrix the features must reproduce)."""
    S = np.asarray(Q, np.float64) @ np.swapaxes(np.asarray(K, np.float64), -1, -2)  # (..., m, n) logits
    out, term = np.ones_like(S), np.ones_like(S)
    for j in range(1, degree + 1):
        term = term * S / j  # s^j / j!
        out = out + term
    return out


def taylor_remainder_bound(S, degree: int) -> np.ndarray:
    """Lagrange bound exp(max(s, 0)) |s|^{g+1} / (g+1)! on |exp(s) − T_g(s)|, entrywise."""
    S = np.asarray(S, dtype=np.float64)
    return np.exp(np.maximum(S, 0.0)) * np.abs(S) ** (degree + 1) / math.factorial(degree + 1)


def eps_rank_ref(M, eps: float) -> np.ndarray:
    """float64 rank_ε: the smallest r with sqrt(Σ_{i>r} σ_i²) <= ε ||M||_F (one batched SVD).

    rank_ε is scale-free, so each matrix is first divided by its largest |entry|: σ_i² then
    neither overflows nor underflows, for entries anywhere in the float64 range."""
    M = np.asarray(M, dtype=np.float64)
    amax = np.abs(M).max(axis=(-2, -1), keepdims=True)
    M = M / np.where(amax > 0, amax, 1.0)  # (..., m, n), entries in [-1, 1]
    s2 = np.linalg.svd(M, compute_uv=False) ** 2  # (..., min(m, n))
    tail = np.cumsum(s2[..., ::-1], axis=-1)[..., ::-1]  # tail[r] = Σ_{i>=r} σ_i² (0-based): error of rank r
    thr = (eps * np.linalg.norm(M, axis=(-2, -1))) ** 2  # (ε ||M||_F)²
    return np.sum(tail > thr[..., None], axis=-1).astype(np.int64)  # tail is decreasing: count of r failing


def eps_rank_bound(B, d, eps) -> int:
    """Upper bound C(d+g, g) on rank_ε(exp(QKᵀ)) for rows of norm <= B (|logit| <= β = B²), any n.

    g is the smallest degree with e^{2β} β^{g+1} / (g+1)! <= ε (module docstring)."""
    beta = check_positive_real("B", B) ** 2
    d, eps = V.check_size("d", d), check_positive_real("eps", eps)
    g = 0
    while math.exp(2 * beta) * beta ** (g + 1) / math.factorial(g + 1) > eps:
        g += 1
    return math.comb(d + g, g)


# ---------------------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------------------
def polynomial_features(X, degree, *, backend="auto"):
    """φ_g(X) (..., n, C(d+g, g)) with ⟨φ_g(q), φ_g(k)⟩ = Σ_{j<=g} (q·k)^j/j! (module docstring).

    Backends: ``"ref"`` (float64 numpy), ``"torch"`` (CPU/CUDA, differentiable in X),
    ``"auto"`` (torch tensors -> torch, numpy -> ref).  numpy in -> numpy out (X's dtype);
    torch in -> torch out.
    """
    kind = check_inputs({"X": X}, {"X": (1, "(..., d): rows of the query or key matrix")})
    degree = V.check_size("degree", degree, lo=0)
    backend = resolve_backend(backend, (X,), valid=BACKENDS)
    if backend == "torch":
        from ._bounded_entries_torch import polynomial_features_torch

        return like_input(polynomial_features_torch(to_torch(X), degree), X)
    out = polynomial_features_ref(to_numpy(X), degree)
    return like_input(out, X) if kind == "torch" else out.astype(X.dtype, copy=False)


EPS_RANK_BACKENDS = ("ref", "numba", "torch")
AUTO_NUMBA_MAX_K = 128  # "auto": above this shorter side, LAPACK's blocked SVD beats the compiled kernel


def eps_rank(M, eps, *, backend="auto"):
    """rank_ε(M) = min {r : ||M − M_r||_F <= ε ||M||_F} for M (..., m, n): int64 array (...).

    Backends ``"ref"`` (float64 numpy: one batched SVD over the leading axes), ``"numba"``
    (float64: per item the eigenvalues of the shorter side's Gram matrix by Householder
    tridiagonalization and implicit QL, compiled, groups of items at once; an item whose
    decision lies within the eigenvalues' rounding of the threshold is recomputed by the SVD, so
    the answer equals ``"ref"``'s; :mod:`theorylab.lowrank._bounded_entries_numba`),
    ``"torch"`` (``torch.linalg.svdvals`` in M's dtype and device), ``"auto"`` (torch tensors
    -> torch; numpy -> numba when installed and the shorter side is at most
    :data:`AUTO_NUMBA_MAX_K`, else ref: one 256 x 256 matrix takes 11 ms by the SVD and 34 ms by
    the unblocked compiled reduction, while on stacks of small matrices the compiled kernel is
    the faster, see BENCHMARKS.md).  numpy in -> numpy int64 out; torch in -> torch int64 out.
    """
    check_inputs({"M": M}, {"M": (2, "(..., m, n): matrices")}, finite=False)
    eps = check_positive_real("eps", eps)
    auto = backend == "auto"
    backend = resolve_backend(backend, (M,), valid=EPS_RANK_BACKENDS)
    if auto and backend == "numba" and min(M.shape[-2:]) > AUTO_NUMBA_MAX_K:
        backend = "ref"
    if backend != "numba":  # the compiled kernel flags non-finite items itself (-2), in its one pass
        V.check_finite("M", M)
    if backend == "torch":
        from ._bounded_entries_torch import eps_rank_torch

        out = eps_rank_torch(to_torch(M), eps)
        return out if is_tensor(M) else out.cpu().numpy()
    if backend == "numba":
        from ._bounded_entries_numba import eps_rank_numba

        M64 = np.ascontiguousarray(to_numpy(M), dtype=np.float64)
        flat = M64.reshape((-1,) + M64.shape[-2:])
        out = eps_rank_numba(flat, eps)
        if (out == -2).any():
            raise ValueError(f"M contains NaN or inf (shape {tuple(M64.shape)})")
        unsure = out < 0
        if unsure.any():  # within rounding of the threshold: the SVD decides, as in the reference
            out[unsure] = eps_rank_ref(flat[unsure], eps)
        out = out.reshape(M64.shape[:-2])
    else:
        out = eps_rank_ref(to_numpy(M), eps)
    if is_tensor(M):
        import torch

        return torch.from_numpy(out).to(M.device)
    return out
