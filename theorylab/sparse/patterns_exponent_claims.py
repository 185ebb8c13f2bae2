"""Exponent claims: nnz(n) of each pattern follows its paper's law.

Papers: #10 Child et al., "Generating Long Sequences with Sparse Transformers" (2019,
arXiv:1904.10509), Sec. 4.2: with stride l ≈ √n the strided and fixed factorizations
keep O(n√n) of the n² attention entries; #53 Zaheer et al., "Big Bird" (2020,
arXiv:2007.14062): window + global + random is O(n); #24 "PowerAttention" (2025,
arXiv:2503.03588): power-of-two offsets cost O(n log n).

``sparse.nnz-exponent-<family>``: the least-squares log-log slope p̂ of the library's
   ``nnz(n)`` over n ∈ [2^10, 2^20] (1024×; both ends and 6 log-uniform sizes) lies within
   ``BAND`` of the law: full causal 2, strided and fixed with l = ⌈√n⌉ 1.5, sliding window
   and BigBird 1, PowerAttention 1 for nnz(n)/log2 n; and the counter equals enumeration at
   small n with the same parameters.

   Band, derived.  A least-squares slope is a positive-weighted mean of chord slopes, hence
   of local slopes d log y / d log n, so |p̂ − p| <= sup over the range of the local
   deviation.  The laws' finite-size terms: full n(n+1)/2 -> 1/n0 = 0.001; strided at
   l = √n: 1.5 n^1.5 − n -> (1/3)/√n0 = 0.010; fixed: ((1+c) n^1.5 + (1−c) n)/2 ->
   (c−1)/(2(c+1)√n0) <= 0.0156 for c <= 8; window/BigBird n·W − O(W²) with W = w + g + r
   <= 28 -> W/(2 n0) <= 0.014; power: nnz/log2 n = n (1 + h/log2 n), 0 <= h <= 0.09
   (oscillating in frac(log2 n)) -> <= 0.009 in log y.  Rounding l = ⌈√n⌉ moves log nnz by
   <= 1/(3√n) <= 0.0104, i.e. the slope by <= 2·0.0104 / ln(1024) = 0.003.  Worst sum
   0.019, so ``BAND`` = 0.02 (measured deviations <= 0.005).  A quadratic term that reaches
   25 % of the law at n = 2^20 moves the slope by >= 0.026 and is rejected.
   Controls, near misses of one log factor or less (measured distance 2-6 bands): full ->
   strided with l = ⌈log2 n⌉ (n²/log n); strided -> l = ⌈√n⌉ // ⌈log2 n⌉ (a log
   factor in the stride: n^1.5 log n); fixed -> c = ⌈log2 n⌉ summary keys (n^1.5 log n); window -> w = ⌈log2 n⌉ (n log n); BigBird -> r =
   ⌈log2 n⌉ random keys (n log n); power -> offsets 2^a + 2^b (n log² n).

Counts come from the library's own counters (:mod:`theorylab.sparse.patterns_counts`),
checked against enumeration (:func:`theorylab.sparse.patterns_claims.counter_verdict`).

Assumptions: l >= 1, 1 <= c <= l, n >= 1; l = ⌈√n⌉ where stated.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import slope_verdict
from ..claims import Claim, Verdict, register
from .patterns import OffsetPattern, Pattern, bigbird, fixed, full_causal, power_attention, sliding_window, strided
from .patterns_claims import BIGBIRD, CHILD, POWER, counter_verdict

__all__ = ["nnz_curve", "pattern_at", "EXPONENTS", "BAND", "N_RANGE", "CONTROLS"]


# ---------------------------------------------------------------------------------------
# 2. exponents
# ---------------------------------------------------------------------------------------
BAND = 0.02
N_RANGE = (2**10, 2**20)
EXPONENTS = {"full": 2.0, "strided": 1.5, "fixed": 1.5, "window": 1.0, "bigbird": 1.0, "power": 1.0}


def _sqrt_ceil(n: int) -> int:
    return math.isqrt(n - 1) + 1


def _log2_ceil(n: int) -> int:
    return max(1, (n - 1).bit_length())


def _sizes(rng: np.random.Generator, size: str) -> np.ndarray:
    """Log-uniform sizes in N_RANGE, always including both ends."""
    k = 8 if size == "quick" else 24
    inner = np.exp(rng.uniform(np.log(N_RANGE[0]), np.log(N_RANGE[1]), size=k - 2))
    return np.unique(np.concatenate([[N_RANGE[0], N_RANGE[1]], np.round(inner)]).astype(np.int64))


def _two_power_sums(n: int) -> np.ndarray:
    """WRONG on purpose for "power": offsets {0} ∪ {2^a} ∪ {2^a + 2^b} below n (O(log² n) per row)."""
    pw = [1 << k for k in range(max(n - 1, 1).bit_length()) if (1 << k) < n]
    s = {0, *pw, *(x + y for x in pw for y in pw if x + y < n)}
    return np.array(sorted(s), dtype=np.int64)


def pattern_at(family: str, n: int, params: dict, *, wrong: bool = False) -> Pattern:
    """The pattern whose count the exponent claim fits at length n (``wrong``: its control)."""
    c, w, g, r, seed = (params[k] for k in ("c", "w", "g", "r", "seed"))
    l = _sqrt_ceil(n) if not wrong else max(1, _sqrt_ceil(n) // _log2_ceil(n))
    if family == "full":
        return strided(_log2_ceil(n)) if wrong else full_causal()
    if family == "strided":
        return strided(l)
    if family == "fixed":  # control: l = ⌈√n⌉ but c = ⌈log2 n⌉ summary keys per block
        return fixed(_sqrt_ceil(n), min(_log2_ceil(n), _sqrt_ceil(n))) if wrong else fixed(l, min(c, l))
    if family == "window":
        return sliding_window(_log2_ceil(n) if wrong else w)
    if family == "bigbird":
        return bigbird(w, g, _log2_ceil(n) if wrong else r, seed)
    if family == "power":
        return OffsetPattern("power_sums", (), _two_power_sums) if wrong else power_attention()
    raise ValueError(f"family must be one of {sorted(EXPONENTS)}; got {family!r}")


def _draw_params(rng: np.random.Generator) -> dict:
    return {"c": int(rng.integers(1, 9)), "w": int(rng.integers(4, 17)), "g": int(rng.integers(1, 5)),
            "r": int(rng.integers(1, 5)), "seed": int(rng.integers(0, 2**31))}


def nnz_curve(family: str, ns, rng: np.random.Generator | None = None, *, wrong: bool = False) -> tuple[list, dict]:
    """The library's nnz(n) for each n in ``ns`` (divided by log2 n for "power"), and the drawn parameters."""
    if family not in EXPONENTS:
        raise ValueError(f"family must be one of {sorted(EXPONENTS)}; got {family!r}")
    params = _draw_params(np.random.default_rng(0) if rng is None else rng)
    ys = []
    for n in (int(v) for v in ns):
        y = pattern_at(family, n, params, wrong=wrong).nnz(n)
        ys.append(y / math.log2(n) if family == "power" else y)
    return ys, params


CONTROLS = {
    "full": "strided with l = ceil(log2 n) counted in place of the full mask: n^2 / log n",
    "strided": "stride ceil(sqrt n) // ceil(log2 n), a log factor too small: n^1.5 log n",
    "fixed": "summary width c = ceil(log2 n) instead of a constant (l = ceil(sqrt n)): n^1.5 log n",
    "window": "window width ceil(log2 n) instead of a constant: n log n",
    "bigbird": "ceil(log2 n) random keys per query instead of a constant r: n log n",
    "power": "offsets 2^a + 2^b (the two-layer reach) instead of 2^k: n log^2 n",
}


def _exponent_verdict(family: str, wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        ns = _sizes(rng, size)
        ys, params = nnz_curve(family, ns, rng, wrong=wrong)
        what = f"library nnz{'/log2 n' if family == 'power' else ''} of {pattern_at(family, int(ns[-1]), params, wrong=wrong)} at n = 2^20"
        fit = slope_verdict(ns, ys, expected=EXPONENTS[family], band=BAND, backend="fit", what=what)
        small = [int(m) for m in rng.integers(1, 97, size=2)]  # the counter at small n, against enumeration
        # (the control's patterns are the claim's own law at small n: the control is about the fit)
        vs = [counter_verdict(pattern_at(family, m, params), m) for m in small]
        counter = Verdict.from_error(sum(v.error for v in vs), 0.0, backend="counter", detail="; ".join(v.detail for v in vs))
        return Verdict.combine({"fit": fit, "counter": counter}, sizes=fit.sizes)

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
            statement=_STATEMENTS[fam] + f" Counted by the library's nnz (= enumeration at small n); band +- {BAND}, "
            "derived from the law's finite-size term (module docstring).",
            kind="complexity",
            check=_exponent_verdict(fam, wrong=False),
            negative_control=_exponent_verdict(fam, wrong=True),
            experiment="sparse_nnz",
            module="theorylab/sparse/patterns_exponent_claims.py",
            test="tests/sparse/test_counting.py",
            samples=3,
            controls=CONTROLS[fam],
        )
    )
    for fam in EXPONENTS
}
