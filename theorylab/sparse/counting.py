"""Complexity claims: how many entries each sparse pattern keeps.

Papers: #10 Child et al., "Generating Long Sequences with Sparse Transformers" (2019,
arXiv:1904.10509), Sec. 4.2: with stride l ≈ √n the strided and fixed factorizations
keep O(n√n) of the n² attention entries; #53 Zaheer et al., "Big Bird" (2020,
arXiv:2007.14062): window + global + random is O(n); #24 "PowerAttention" (2025,
arXiv:2503.03588): power-of-two offsets cost O(n log n), "sliding-window cost" up to a log.

Claims (``nnz(n)`` is the exact count of :mod:`theorylab.sparse.patterns`):

1. ``sparse.nnz-exponent-<family>``: the least-squares log-log slope p of nnz(n) over
   n ∈ [2^10, 2^20] lies within ``BAND`` = 0.05 of the prediction:
   full causal 2, strided and fixed with l = ⌈√n⌉ 1.5, sliding window and BigBird 1,
   PowerAttention 1 for nnz(n) / log2(n) (i.e. n log n).
2. ``sparse.nnz-closed-form``: the closed forms, n = q·l + r with 0 <= r < l,

       strided:  nnz = n(n+1)/2                                      (q = 0)
                 nnz = l(l+1)/2 + (q−1)·l² + l·q(q−1)/2 + r(l + q)   (q >= 1)
       fixed:    nnz = q·l(l+1)/2 + c·l·q(q−1)/2 + r(r+1)/2 + r·q·c

   equal the count of the mask; with n = l² their leading orders are
   nnz/n^{3/2} → 3/2 (strided) and → (1 + c)/2 (fixed).  The sympy proof sums the row
   counts block by block symbolically, checks the row counts against the set
   definitions by enumeration for n <= 48, l <= 8, and takes the limits.

Assumptions: l >= 1, 1 <= c <= l, n >= 1; l = ⌈√n⌉ where stated.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import slope_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from .patterns import OffsetPattern, bigbird, fixed, full_causal, power_attention, sliding_window, strided

__all__ = ["closed_form_strided", "closed_form_fixed", "proof_strided", "proof_fixed", "nnz_curve", "EXPONENTS", "BAND"]

CHILD = Paper("Generating Long Sequences with Sparse Transformers", 2019, "1904.10509", index=10)
BIGBIRD = Paper("Big Bird: Transformers for Longer Sequences", 2020, "2007.14062", index=53)
POWER = Paper("PowerAttention: Exponentially Scaling of Receptive Fields for Effective Sparse Attention", 2025, "2503.03588", index=24)

BAND = 0.05
N_RANGE = (2**10, 2**20)
EXPONENTS = {"full": 2.0, "strided": 1.5, "fixed": 1.5, "window": 1.0, "bigbird": 1.0, "power": 1.0}


def _sqrt_ceil(n: int) -> int:
    return math.isqrt(n - 1) + 1


def _sizes(rng: np.random.Generator, size: str) -> np.ndarray:
    """Log-uniform sizes in N_RANGE, always including both ends."""
    k = 8 if size == "quick" else 24
    inner = np.exp(rng.uniform(np.log(N_RANGE[0]), np.log(N_RANGE[1]), size=k - 2))
    return np.unique(np.concatenate([[N_RANGE[0], N_RANGE[1]], np.round(inner)]).astype(np.int64))


def nnz_curve(family: str, ns, rng: np.random.Generator | None = None, *, wrong: bool = False) -> tuple[list, dict]:
    """nnz(n) for each n in ``ns`` (divided by log2 n for "power"), and the drawn parameters.

    ``wrong=True`` builds the negative control's variant of the family (see ``CONTROLS``).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    c, w, g, r = int(rng.integers(1, 9)), int(rng.integers(8, 257)), int(rng.integers(1, 5)), int(rng.integers(1, 5))
    seed, l_const = int(rng.integers(0, 2**31)), int(rng.integers(16, 65))
    params: dict = {}
    ys = []
    for n in (int(v) for v in ns):
        if family == "full":
            y = (strided(_sqrt_ceil(n)) if wrong else full_causal()).nnz(n)
        elif family == "strided":
            l = l_const if wrong else _sqrt_ceil(n)
            params = {"l": "const %d" % l_const if wrong else "ceil(sqrt(n))"}
            y = strided(l).nnz(n)
        elif family == "fixed":
            l = l_const if wrong else _sqrt_ceil(n)
            params = {"l": "const %d" % l_const if wrong else "ceil(sqrt(n))", "c": min(c, l)}
            y = fixed(l, min(c, l)).nnz(n)
        elif family == "window":
            params = {"w": "ceil(sqrt(n))" if wrong else w}
            y = sliding_window(_sqrt_ceil(n) if wrong else w).nnz(n)
        elif family == "bigbird":
            params = {"w": w, "g": g, "r": "ceil(sqrt(n))" if wrong else r, "seed": seed}
            y = bigbird(w, g, _sqrt_ceil(n) if wrong else r, seed).nnz(n)
        elif family == "power":
            pat = _quadratic_offsets() if wrong else power_attention()
            y = pat.nnz(n) / math.log2(n)
        else:
            raise ValueError(f"family must be one of {sorted(EXPONENTS)}; got {family!r}")
        ys.append(y)
    return ys, params


def _quadratic_offsets() -> OffsetPattern:
    """WRONG on purpose for "power": offsets k² (polynomial spacing) instead of 2^k."""
    return OffsetPattern("square_offsets", (), lambda n: np.unique(np.arange(math.isqrt(n - 1) + 1, dtype=np.int64) ** 2))


CONTROLS = {
    "full": "the strided pattern (l = ceil(sqrt(n))) counted in place of the full mask",
    "strided": "stride held constant (16 <= l <= 64) instead of l = ceil(sqrt(n))",
    "fixed": "block length held constant (16 <= l <= 64) instead of l = ceil(sqrt(n))",
    "window": "window width ceil(sqrt(n)) instead of a constant",
    "bigbird": "random keys per query ceil(sqrt(n)) instead of a constant r",
    "power": "offsets k^2 (polynomial) instead of 2^k (exponential)",
}


def _exponent_verdict(family: str, wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        ns = _sizes(rng, size)
        ys, params = nnz_curve(family, ns, rng, wrong=wrong)
        what = f"nnz{'/log2 n' if family == 'power' else ''} of {family} {params}"
        return slope_verdict(ns, ys, expected=EXPONENTS[family], band=BAND, what=what)

    return run


_STATEMENTS = {
    "full": "Full causal attention keeps n(n+1)/2 entries: log-log slope 2 over n in [2^10, 2^20].",
    "strided": "The strided pattern with l = ceil(sqrt(n)) keeps O(n sqrt n) entries: slope 1.5 over n in [2^10, 2^20].",
    "fixed": "The fixed pattern with l = ceil(sqrt(n)), constant c, keeps O(n sqrt n) entries: slope 1.5 over [2^10, 2^20].",
    "window": "A sliding window of constant width keeps O(n) entries: slope 1 over n in [2^10, 2^20].",
    "bigbird": "BigBird (constant window, globals and random keys) keeps O(n) entries: slope 1 over [2^10, 2^20].",
    "power": "PowerAttention keeps O(n log n) entries: nnz/log2(n) has slope 1 over n in [2^10, 2^20].",
}
_PAPERS = {"full": CHILD, "strided": CHILD, "fixed": CHILD, "window": BIGBIRD, "bigbird": BIGBIRD, "power": POWER}

EXPONENT_CLAIMS = {
    fam: register(
        Claim(
            id=f"sparse.nnz-exponent-{fam}",
            paper=_PAPERS[fam],
            statement=_STATEMENTS[fam] + f" Band +- {BAND}.",
            kind="complexity",
            check=_exponent_verdict(fam, wrong=False),
            negative_control=_exponent_verdict(fam, wrong=True),
            experiment="sparse_nnz",
            module="theorylab/sparse/counting.py",
            test="tests/sparse/test_counting.py",
            samples=3,
            controls=CONTROLS[fam],
        )
    )
    for fam in EXPONENTS
}


# ---------------------------------------------------------------------------------------
# closed forms (the same formulas as Strided.nnz / Fixed.nnz, written once more over
# sympy-compatible arithmetic so the proof and the check share them)
# ---------------------------------------------------------------------------------------
def closed_form_strided(q, l, r):
    """nnz of strided(l) for n = q·l + r, q >= 1:  l(l+1)/2 + (q−1)l² + l·q(q−1)/2 + r(l+q)."""
    return l * (l + 1) / 2 + (q - 1) * l**2 + l * q * (q - 1) / 2 + r * (l + q)


def closed_form_fixed(q, l, r, c):
    """nnz of fixed(l, c) for n = q·l + r:  q·l(l+1)/2 + c·l·q(q−1)/2 + r(r+1)/2 + r·q·c."""
    return q * l * (l + 1) / 2 + c * l * q * (q - 1) / 2 + r * (r + 1) / 2 + r * q * c


def _count_by_definition(n: int, keep) -> int:
    """Σ_i #{j <= i : keep(i, j)} by enumeration (independent of the pattern classes)."""
    return sum(1 for i in range(n) for j in range(i + 1) if keep(i, j))


def _strided_keep(l):
    return lambda i, j: (i - j <= l) or ((i - j) % l == 0)


def _fixed_keep(l, c):
    return lambda i, j: (j // l == i // l) or (j % l >= l - c)


def proof_strided(n_max: int = 48, l_max: int = 8) -> Proof:
    """Symbolic block sum = closed form; row counts = definition for n <= n_max; limit 3/2."""
    import sympy as sp

    q, l, a, b = sp.symbols("q l a b", integer=True, positive=True)
    r = sp.symbols("r", integer=True, nonnegative=True)
    # row i = a·l + b: block a = 0 has b + 1 keys, block a >= 1 has l + a keys
    total = (
        sp.summation(b + 1, (b, 0, l - 1))
        + sp.summation(sp.summation(l + a, (b, 0, l - 1)), (a, 1, q - 1))
        + sp.summation(l + q, (b, 0, r - 1))
    )
    symbolic = sp.simplify(total - closed_form_strided(q, l, r)) == 0
    rows_ok = all(
        sum(1 for j in range(i + 1) if _strided_keep(L)(i, j)) == ((i % L) + 1 if i < L else L + i // L)
        for L in range(1, l_max + 1)
        for i in range(n_max)
    )
    count_ok = all(
        _count_by_definition(n, _strided_keep(L)) == (n * (n + 1) // 2 if n < L else int(closed_form_strided(*_qr(n, L))))
        for L in range(1, l_max + 1)
        for n in range(1, n_max + 1)
    )
    lead = sp.limit(closed_form_strided(l, l, 0) / l**3, l, sp.oo)  # n = l², so n^{3/2} = l³
    ok = bool(symbolic and rows_ok and count_ok and lead == sp.Rational(3, 2))
    return Proof(ok, f"strided: block sum = closed form (symbolic q, l, r); rows and counts = definition for n <= {n_max}, "
                     f"l <= {l_max}; nnz/n^1.5 -> {lead} at l = sqrt(n)",
                 scope=f"general n, l (symbolic block sum of a retyped closed form); enumeration n <= {n_max}")


def proof_fixed(n_max: int = 48, l_max: int = 8) -> Proof:
    """Symbolic block sum = closed form; counts = definition for small n, l, c; limit (1+c)/2."""
    import sympy as sp

    q, l, a, b, c = sp.symbols("q l a b c", integer=True, positive=True)
    r = sp.symbols("r", integer=True, nonnegative=True)
    # row i = a·l + b has b + 1 + a·c keys
    total = sp.summation(sp.summation(b + 1 + a * c, (b, 0, l - 1)), (a, 0, q - 1)) + sp.summation(b + 1 + q * c, (b, 0, r - 1))
    symbolic = sp.simplify(total - closed_form_fixed(q, l, r, c)) == 0
    count_ok = all(
        _count_by_definition(n, _fixed_keep(L, C)) == int(closed_form_fixed(*_qr(n, L), C))
        for L in range(1, l_max + 1)
        for C in range(1, L + 1)
        for n in range(1, n_max + 1, 3)
    )
    lead = sp.limit(closed_form_fixed(l, l, 0, c) / l**3, l, sp.oo)
    ok = bool(symbolic and count_ok and sp.simplify(lead - (1 + c) / 2) == 0)
    return Proof(ok, f"fixed: block sum = closed form (symbolic q, l, r, c); counts = definition for n <= {n_max}, "
                     f"l <= {l_max}, all c; nnz/n^1.5 -> {lead} at l = sqrt(n)",
                 scope=f"general n, l, c (symbolic block sum of a retyped closed form); enumeration n <= {n_max}")


def _qr(n: int, l: int) -> tuple[int, int, int]:
    q, r = divmod(n, l)
    return q, l, r


def proof_closed_forms() -> Proof:
    ps = [proof_strided(), proof_fixed()]
    return Proof(all(p.proved for p in ps), "; ".join(p.detail for p in ps), scope="; ".join(p.scope for p in ps))


def _closed_form_verdict(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        top = 1500 if size == "quick" else 5000
        l = int(rng.integers(1, 65))
        c = int(rng.integers(1, l + 1))
        n = int(rng.integers(2 * l + 1, top + 1))
        q, _, r = _qr(n, l)
        cf_strided = closed_form_strided(q, l, r) + ((n - l) if wrong else 0)  # WRONG: offset l counted in A¹ and A²
        # WRONG: in each full block, the own-block summary keys (c(c+1)/2 per block) counted again
        cf_fixed = closed_form_fixed(q, l, r, c) + (q * c * (c + 1) // 2 if wrong else 0)
        err = abs(cf_strided - int(strided(l).mask(n).sum())) + abs(cf_fixed - int(fixed(l, c).mask(n).sum()))
        return Verdict.from_error(err, 0.0, sizes={"n": n, "l": l, "c": c},
                                  detail=f"|closed form - mask count| summed over strided and fixed: {err}")

    return run


CLOSED_FORM_CLAIM = register(
    Claim(
        id="sparse.nnz-closed-form",
        paper=CHILD,
        statement="For n = q l + r: nnz(strided l) = l(l+1)/2 + (q-1) l^2 + l q(q-1)/2 + r(l+q) (q >= 1) and "
        "nnz(fixed l, c) = q l(l+1)/2 + c l q(q-1)/2 + r(r+1)/2 + r q c, exactly; at l = sqrt(n), "
        "nnz/n^1.5 -> 3/2 and (1+c)/2.",
        kind="complexity",
        check=_closed_form_verdict(False),
        negative_control=_closed_form_verdict(True),
        proof=proof_closed_forms,
        experiment="sparse_nnz",
        module="theorylab/sparse/counting.py",
        test="tests/sparse/test_counting.py",
        controls="overlap of the two sub-patterns counted twice (offset l in strided, own-block summary in fixed)",
    )
)
