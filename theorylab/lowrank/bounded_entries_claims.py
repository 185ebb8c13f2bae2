"""Claims of :mod:`theorylab.lowrank.bounded_entries`: checks, negative controls, sympy proof, registration.

* ``lowrank.polynomial-kernel-factorization`` (identity) -- the public
  :func:`polynomial_features` on every backend gives U = φ_g(Q), V = φ_g(K) with
  U Vᵀ = Σ_{j<=g} (QKᵀ)^j / j! (float64 policy 1e-10; the Taylor polynomial is computed
  entrywise here, never from features), and the feature count equals the library's
  :func:`feature_count` = C(d+g, g) = a brute-force enumeration of {α ∈ N^d : |α| <= g}.
  Instances: d in {1, 2, 3, 5, 7}, g in 0..6, logits up to 30 (rows of norm up to √30).
  Error model: every entry of U Vᵀ sums Σ_α |q^α k^α| / α! <= T_g(|q|·|k|) <= e^{|q||k|} of
  terms; the worst normwise error measured is < 1e-13 at these sizes (within the policy).
  Control: features weighted 1/√(j!) per degree instead of 1/√(α!) (the multinomial
  coefficients missing), d >= 2, g >= 2.  Proof: the count Σ_{j<=g} C(d−1+j, j) = C(d+g, g) for
  symbolic d and g (induction on g), and the expansion ⟨φ_g(q), φ_g(k)⟩ = T_g(q·k) on sympy
  symbols with the library's monomial list and coefficients, d <= 3, g <= 4.
* ``lowrank.taylor-truncation-bound`` (identity with a derived bound) -- on every backend,
  every entry obeys |exp(s) − ⟨φ_g(q), φ_g(k)⟩| <= exp(max(s,0)) |s|^{g+1}/(g+1)! + r, the
  Lagrange remainder plus a rounding allowance r = 8 (g + d) eps64 e^{Σ_l |q_l k_l|} (the
  error model above); the verdict is max over entries of |error| / (bound + r) against 1.
  Entry scales B² (the logit bound) from 0.05 to 9.  Control: features one degree short
  (g − 1, an off-by-one in the degree loop) against the degree-g bound.
* ``lowrank.eps-rank-threshold`` (complexity) -- ε-rank (ε = 1e-2) of exp(QKᵀ), d = 3, rows of
  norm B, over n in 8..512 (64x, 7 sizes, one instance per size; batched over sizes of a sweep in the experiment):
  small B = 0.5: flat -- the log-log slope within 0 +- 0.1 and rank_ε <= C(d+g, g) =
  :func:`eps_rank_bound` (derived from the Taylor remainder, independent of n) at every n;
  large B = 4 (e^{B²} ~ 9e6 >> 512: below the √log n threshold's n): growing -- slope within
  1 +- 0.3 (rank_ε <= n caps the slope near 1; measured 0.81-0.91).  The library's
  :func:`eps_rank` on every backend (ref, numba, torch) equals a rank found by forming each
  truncation U_r S_r V_rᵀ explicitly, and the numba and torch ranks of both whole sweeps (small and large B)
  and of one stack of 96 matrices 12 x 12 with B in 0.5..2 (several items per compiled group)
  equal the reference's item by item.  Control: the threshold without its scale (||M − M_r||_F <= ε instead of
  ε ||M||_F): on the flat side the rank then grows with n (measured slope 0.24-0.28, rank
  16 > bound 10).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from ..checks import backends_verdict, call_backend, check_backends, slope_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from ._common import BACKENDS
from .bounded_entries import (
    EPS_RANK_BACKENDS,
    eps_rank,
    eps_rank_bound,
    feature_count,
    make_inputs,
    monomials,
    polynomial_features,
    taylor_kernel,
    taylor_remainder_bound,
)

ALMAN_SONG = Paper("How to Capture Higher-order Correlations? Generalizing Matrix Softmax Attention to Kronecker "
                   "Computation", 2023, "2310.04064", index=98)
LORA_LIMITS = Paper("Computational Limits of Low-Rank Adaptation (LoRA) for Transformer-Based Models", 2024,
                    "2406.03136", index=36)
MODULE, TEST = "theorylab/lowrank/bounded_entries.py", "tests/lowrank/test_bounded_entries.py"
DIMS = (1, 2, 3, 5, 7)
EPS64 = float(np.finfo(np.float64).eps)


def _draw(rng, control=False):
    d = int(rng.choice(DIMS[1:] if control else DIMS))
    g = int(rng.integers(2 if control else 0, 7 if d <= 3 else 5))
    n, m = (int(x) for x in rng.integers(1, 25, size=2))
    B = float(rng.choice([0.5, 2.0, math.sqrt(30.0)]))
    return {"d": d, "degree": g, "n": n, "m": m, "B": B}


def enumerate_count(d: int, g: int) -> int:
    """Brute force: the multi-indices α ∈ {0..g}^d with |α| <= g."""
    return sum(1 for a in itertools.product(range(g + 1), repeat=d) if sum(a) <= g)


def features_without_multinomial(X, g):
    """WRONG on purpose: every monomial of degree j weighted 1/√(j!) instead of 1/√(α!)."""
    X = np.asarray(X, np.float64)
    cols = [X[..., list(t)].prod(axis=-1) / math.sqrt(math.factorial(len(t))) for t, _ in monomials(X.shape[-1], g)]
    return np.stack(cols, axis=-1)


# ---- 1. the factorization ------------------------------------------------------------------------
def _factorization(rng, size, control):
    sz = _draw(rng, control)
    p = make_inputs(rng, n=sz["n"], m=sz["m"], d=sz["d"], B=sz["B"])
    Q, K, g = p["Q"], p["K"], sz["degree"]
    ref = taylor_kernel(Q, K, g)  # Σ_j (QKᵀ)^j / j!, entrywise
    if control:
        bad = features_without_multinomial(Q, g) @ features_without_multinomial(K, g).T
        return backends_verdict(ref, {"no-multinomial": bad}, dtype=np.float64, sizes=sz,
                                what="φ without 1/√α! : UVᵀ vs T_g(QKᵀ)")
    outs, widths = {}, {}
    for b in check_backends(BACKENDS):
        U, V = call_backend(polynomial_features, b, Q, g), call_backend(polynomial_features, b, K, g)
        outs[b], widths[b] = U @ V.T, U.shape[-1]
    ident = backends_verdict(ref, outs, dtype=np.float64, sizes=sz, what="φ_g(Q) φ_g(K)ᵀ vs T_g(QKᵀ)")
    want = enumerate_count(sz["d"], g)
    err = abs(feature_count(sz["d"], g) - want) + abs(math.comb(sz["d"] + g, g) - want) + \
        sum(abs(w - want) for w in widths.values())
    counter = Verdict.from_error(err, 0.0, backend="counter", sizes=sz,
                                 detail=f"feature_count, C(d+g,g), output widths {widths} vs enumeration {want}")
    return Verdict.combine({"features": ident, "counter": counter}, sizes=sz)


def factorization_proof(max_d: int = 3, max_g: int = 4) -> Proof:
    """sympy: Σ_{j<=g} C(d−1+j, j) = C(d+g, g) by induction on g (symbolic d, g); and
    Σ_α (1/α!) q^α k^α = Σ_{j<=g} (q·k)^j/j! with the library's :func:`monomials`, d <= max_d, g <= max_g."""
    import sympy as sp

    d, g = sp.symbols("d g", positive=True, integer=True)
    base = sp.binomial(d - 1, 0) - sp.binomial(d, 0)
    step = sp.binomial(d + g, g) + sp.binomial(d + g, g + 1) - sp.binomial(d + g + 1, g + 1)
    ok = sp.simplify(base) == 0 and sp.simplify(sp.gammasimp(sp.expand_func(step))) == 0
    for dd in range(1, max_d + 1):
        q, k = sp.symbols(f"q0:{dd}"), sp.symbols(f"k0:{dd}")
        for gg in range(max_g + 1):
            terms = monomials(dd, gg)
            lhs = sum(sp.Rational(c.numerator, c.denominator) * sp.Mul(*[q[i] * k[i] for i in t]) for t, c in terms)
            s = sum(qi * ki for qi, ki in zip(q, k))
            rhs = sum(s**j / sp.factorial(j) for j in range(gg + 1))
            ok = ok and sp.expand(lhs - rhs) == 0 and len(terms) == math.comb(dd + gg, gg)
    return Proof(bool(ok), "sympy: the hockey-stick step C(d+g,g) + C(d+g,g+1) = C(d+g+1,g+1) for symbolic d, g (with "
                 "the base g = 0) gives #features = C(d+g,g) for every d, g; the library's monomial list and 1/α! "
                 "coefficients expand to Σ_j (q·k)^j/j! on symbols",
                 scope=f"count: general (symbolic d and g, induction on g; retyped binomial identity); expansion: "
                 f"d <= {max_d}, g <= {max_g}, library reference (monomials, the list the features are built from)")


# ---- 2. the truncation bound ---------------------------------------------------------------------
def _truncation(rng, size, control):
    d = int(rng.choice(DIMS))
    g = int(rng.integers(2, 7 if d <= 3 else 5))
    # the logit bound B²; the control (one degree short) misses the bound by (g+1)/(|s| e^{max(s,0)}) >= 3.6 for B² <= 0.5
    beta = float(rng.choice([0.05, 0.5] if control else [0.05, 0.5, 2.0, 9.0]))
    n, m = (int(x) for x in rng.integers(1, 25, size=2))
    sz = {"d": d, "degree": g, "n": n, "m": m, "B": math.sqrt(beta)}
    p = make_inputs(rng, n=n, m=m, d=d, B=math.sqrt(beta))
    Q, K = p["Q"], p["K"]
    S = Q @ K.T
    bound = taylor_remainder_bound(S, g)
    absdot = np.abs(Q) @ np.abs(K).T  # Σ_l |q_l k_l|: scale of the summed terms
    allowance = 8 * (g + d) * EPS64 * np.exp(absdot)
    parts = {}
    runs = {"one-degree-short": g - 1} if control else {b: g for b in check_backends(BACKENDS)}
    for name, deg in runs.items():
        be = "ref" if control else name
        U, V = call_backend(polynomial_features, be, Q, deg), call_backend(polynomial_features, be, K, deg)
        ratio = float(np.max(np.abs(np.exp(S) - U @ V.T) / (bound + allowance)))
        parts[name] = Verdict.from_error(ratio, 1.0, backend=name, sizes=sz,
                                         detail=f"max |exp(s) − φ_{deg}·φ_{deg}| / (Lagrange bound of degree {g} + "
                                         f"rounding) = {ratio:.3g}")
    return Verdict.combine(parts, sizes=sz)


# ---- 3. the ε-rank against n ---------------------------------------------------------------------
EPS_RANK = dict(d=3, eps=1e-2, ns=(8, 16, 32, 64, 128, 256, 512), per_size=1, B_small=0.5, B_large=4.0,
                band_flat=0.1, band_growth=0.3, stack=96, stack_n=12)


def rank_by_truncation(M, eps):
    """rank_ε found by forming each truncation U_r S_r V_rᵀ and measuring ||M − M_r||_F (brute force, one matrix)."""
    M = np.asarray(M, np.float64)
    U, s, Vt = np.linalg.svd(M, full_matrices=False)
    for r in range(s.size + 1):
        if np.linalg.norm(M - (U[:, :r] * s[:r]) @ Vt[:r]) <= eps * np.linalg.norm(M):
            return r
    return s.size


def eps_rank_unscaled(M, eps):
    """WRONG on purpose: the smallest r with ||M − M_r||_F <= ε (the scale ||M||_F missing), batched."""
    s2 = np.linalg.svd(np.asarray(M, np.float64), compute_uv=False) ** 2
    tail = np.cumsum(s2[..., ::-1], axis=-1)[..., ::-1]
    return np.sum(tail > eps**2, axis=-1)


def rank_curve(rng, B, *, scaled=True, backend="ref"):
    """rank_ε of exp(QKᵀ) at each n of :data:`EPS_RANK` (one batched eps_rank per n): (mean per n, ranks, matrices)."""
    c = EPS_RANK
    means, ranks, Ms = [], [], []
    for n in c["ns"]:
        p = make_inputs(rng, n=n, d=c["d"], B=B, batch=(c["per_size"],))
        M = np.exp(p["Q"] @ np.swapaxes(p["K"], -1, -2))  # (per_size, n, n)
        r = call_backend(eps_rank, backend, M, c["eps"]) if scaled else eps_rank_unscaled(M, c["eps"])
        means.append(float(np.mean(r)))
        ranks.append(np.asarray(r))
        Ms.append(M)
    return means, ranks, Ms


def _eps_rank_verdict(rng, size, control):
    c = EPS_RANK
    ns = list(c["ns"])
    scaled = not control
    small, small_ranks, small_M = rank_curve(rng, c["B_small"], scaled=scaled)
    large, large_ranks, large_M = rank_curve(rng, c["B_large"], scaled=scaled)
    flat = slope_verdict(ns, small, expected=0.0, band=c["band_flat"], backend="flat",
                         what=f"rank_ε of exp(QKᵀ), B = {c['B_small']}")
    bound = eps_rank_bound(c["B_small"], c["d"], c["eps"])
    top = max(int(np.max(r)) for r in small_ranks)
    within = Verdict.from_error(max(0, top - bound), 0.0, backend="bound",
                                detail=f"max rank_ε {top} vs the Taylor bound C(d+g,g) = {bound}")
    growth = slope_verdict(ns, large, expected=1.0, band=c["band_growth"], backend="growth",
                           what=f"rank_ε of exp(QKᵀ), B = {c['B_large']}")
    parts = {"flat": flat, "bound": within, "growth": growth}
    if not control:  # the library's eps_rank on every backend vs explicit truncations (n <= 64)
        i = int(rng.integers(0, 4))
        for label, M in (("small B", small_M[i][0]), ("large B", large_M[i][0])):
            want = rank_by_truncation(M, c["eps"])
            errs = {b: abs(int(call_backend(eps_rank, b, M, c["eps"])) - want)
                    for b in check_backends(EPS_RANK_BACKENDS)}
            for b, e in errs.items():
                key = f"eps_rank[{b}]"
                prev = parts.get(key)
                parts[key] = Verdict.from_error(e + (prev.error if prev else 0), 0.0, backend=b,
                                                detail=f"eps_rank vs explicit truncations, n = {ns[i]}")
        sweeps = list(zip(small_M + large_M, small_ranks + large_ranks))  # low ranks and ranks near n
        # one stack of STACK items of mixed scales (1.5 groups of the compiled kernel's lanes, whose
        # eigenvalue iterations run together): every item's rank as the reference's
        B = np.repeat([0.5, 1.0, 1.5, 2.0], -(-c["stack"] // 4))[: c["stack"]]
        p = make_inputs(rng, n=c["stack_n"], d=c["d"], B=1.0, batch=(c["stack"],))
        S = np.exp(B[:, None, None] ** 2 * (p["Q"] @ np.swapaxes(p["K"], -1, -2)))  # (stack, n, n), logits up to B²
        sweeps.append((S, eps_rank(S, c["eps"], backend="ref")))
        for b in check_backends(EPS_RANK_BACKENDS):  # the whole batched sweeps: every item's rank as the reference's
            if b != "ref":
                bad = sum(int(np.sum(call_backend(eps_rank, b, M, c["eps"]) != r)) for M, r in sweeps)
                parts[f"sweep[{b}]"] = Verdict.from_error(
                    bad, 0.0, backend=b, detail=f"{bad} items of the B = {c['B_small']} and {c['B_large']} sweeps "
                    f"and a stack of {c['stack']} differ")
    sizes = {"n_min": ns[0], "n_max": ns[-1], "d": c["d"], "eps": c["eps"]}
    return Verdict.combine(parts, sizes=sizes, detail=f"mean ranks small B {small}, large B {large}")


# ---- registration --------------------------------------------------------------------------------
register(Claim(
    id="lowrank.polynomial-kernel-factorization", paper=ALMAN_SONG, kind="identity",
    statement="The degree-g Taylor truncation Σ_{j<=g} (QKᵀ)^j/j! of exp(QKᵀ) factors exactly as φ_g(Q) φ_g(K)ᵀ "
    "with the C(d+g, g) features x^α/√(α!), |α| <= g (polynomial method, Alman & Song).",
    check=lambda rng, size="quick": _factorization(rng, size, False),
    negative_control=lambda rng, size="quick": _factorization(rng, size, True),
    proof=factorization_proof, experiment="lowrank_bounded_entries", module=MODULE, test=TEST, samples=4,
    controls="monomials weighted 1/√(j!) per degree (multinomial coefficients missing)"))

register(Claim(
    id="lowrank.taylor-truncation-bound", paper=ALMAN_SONG, kind="identity",
    statement="Every entry of exp(QKᵀ) − φ_g(Q)φ_g(K)ᵀ is bounded by the Lagrange remainder e^{max(s,0)}|s|^{g+1}/(g+1)! "
    "(plus float64 rounding): the error falls with the entry scale B like B^{2(g+1)}.",
    check=lambda rng, size="quick": _truncation(rng, size, False),
    negative_control=lambda rng, size="quick": _truncation(rng, size, True),
    experiment="lowrank_bounded_entries", module=MODULE, test=TEST, samples=4,
    controls="features one degree short (g − 1) against the degree-g bound"))

register(Claim(
    id="lowrank.eps-rank-threshold", paper=LORA_LIMITS, kind="complexity",
    statement="The ε-rank (||M − M_r||_F <= ε||M||_F) of exp(QKᵀ) is flat in n for a small entry scale (B = 0.5: slope "
    "0 +- 0.1 over n in 8..512, below the n-free Taylor bound C(d+g,g)) and grows like n for a large one (B = 4, "
    "n << e^{B²}: slope 1 +- 0.3) -- the bounded-entries phase change at B ~ √log n.",
    check=lambda rng, size="quick": _eps_rank_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _eps_rank_verdict(rng, size, True),
    experiment="lowrank_bounded_entries", module=MODULE, test=TEST, samples=2,
    controls="threshold ε instead of ε||M||_F (the scale missing)"))
