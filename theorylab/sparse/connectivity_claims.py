"""Connectivity claims (statement, graphs and glossary: :mod:`theorylab.sparse.connectivity`).

1. ``sparse.two-hop-coverage`` (#10): two layers of strided(l) or fixed(l, c) connect every
   pair j <= i.  Control, a near miss: strided with its local window one key short
   (0 <= i − j <= l − 2: offset l − 1 then needs a third hop), and fixed with its summary
   columns shifted one to the left (j mod l ∈ [l − c − 1, l − 2]: the last column of a block
   is then reached only from inside its own block).
2. ``sparse.bigbird-diameter`` (#53): with g >= 1 global token BigBird's undirected
   attention graph has diameter <= 2.  Control: g = 0 (window and random keys alone).
3. ``sparse.power-receptive-field`` (#24): after d layers PowerAttention's receptive field
   is continuous over the 2^d nearest positions, while a width-w window reaches exactly
   1 + d(w − 1).  Control: a dilated window with as many keys per row (holes).

Errors are counts of pairs (or positions) that break the statement; tolerance 0.
"""

from __future__ import annotations

import math

import numpy as np

from ..claims import Claim, Paper, Verdict, register
from .connectivity import field_stats, pairs_beyond_two_hops, receptive_field, uncovered_pairs
from .patterns import OffsetPattern, Pattern, bigbird, dilated_window, fixed, power_attention, sliding_window, strided

CHILD = Paper("Generating Long Sequences with Sparse Transformers", 2019, "1904.10509", index=10)
BIGBIRD = Paper("Big Bird: Transformers for Longer Sequences", 2020, "2007.14062", index=53)
POWER = Paper("PowerAttention: Exponentially Scaling of Receptive Fields for Effective Sparse Attention", 2025, "2503.03588", index=24)


# ---------------------------------------------------------------------------------------
# 1. two hops cover every earlier position (strided, fixed)
# ---------------------------------------------------------------------------------------
def _short_window_strided(l: int) -> OffsetPattern:
    """WRONG on purpose: strided(l) with its local window one key short, 0 <= i − j <= l − 2."""
    return OffsetPattern("short_window_strided", (("l", l),),
                         lambda n: np.union1d(np.arange(min(l - 1, n)), np.arange(0, n, l)).astype(np.int64))


class _ShiftedSummaryFixed(Pattern):
    """WRONG on purpose: fixed(l, c) with the summary columns one to the left, j mod l ∈ [l−c−1, l−2]."""

    def __init__(self, l: int, c: int):
        self.l, self.c, self.name = l, c, f"shifted_summary_fixed(l={l}, c={c})"

    def _row(self, i, n):
        return np.flatnonzero(self.mask(n)[i])

    def nnz(self, n):
        return int(self.mask(n).sum())

    def mask(self, n):
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        col = j % self.l
        return (j <= i) & ((j // self.l == i // self.l) | ((col >= self.l - self.c - 1) & (col <= self.l - 2)))


def _two_hop(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        top = 400 if size == "quick" else 1024
        n = int(rng.integers(64, top + 1))
        l = int(rng.integers(2, 2 * math.isqrt(n) + 1))
        c = int(rng.integers(1, l))  # c < l so that the control's summary differs
        pats = (_short_window_strided(l), _ShiftedSummaryFixed(l, c)) if wrong else (strided(l), fixed(l, c))
        missed = [uncovered_pairs(p, n) for p in pats]
        return Verdict.from_error(sum(missed), 0.0, sizes={"n": n, "l": l, "c": c},
                                  detail=f"causal pairs not reached in 2 hops: {pats[0]} {missed[0]}, {pats[1]} {missed[1]} of {n * (n + 1) // 2}")

    return run


TWO_HOP_CLAIM = register(
    Claim(
        id="sparse.two-hop-coverage",
        paper=CHILD,
        statement="Two layers of the strided(l) or the fixed(l, c) pattern connect every pair j <= i: (A^2)[i, j] > 0 "
        "for all j <= i (boolean matrix product), for any n and l.",
        kind="complexity",
        check=_two_hop(False),
        negative_control=_two_hop(True),
        experiment="sparse_receptive_field",
        module="theorylab/sparse/connectivity_claims.py",
        test="tests/sparse/test_connectivity.py",
        controls="near misses: strided with its local window one key short (i - j <= l - 2); fixed with its summary columns shifted one to the left",
    )
)


# ---------------------------------------------------------------------------------------
# 2. BigBird: one global token gives diameter <= 2
# ---------------------------------------------------------------------------------------
def _diameter(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        top = 400 if size == "quick" else 1024
        n = int(rng.integers(256, top + 1))
        w, r = int(rng.integers(1, 5)), int(rng.integers(0, 3))
        g = 0 if wrong else int(rng.integers(1, 4))
        pat = bigbird(w, g, r, int(rng.integers(0, 2**31)))
        far = pairs_beyond_two_hops(pat, n)
        return Verdict.from_error(far, 0.0, sizes={"n": n, "w": w, "g": g, "r": r},
                                  detail=f"{pat}: ordered pairs at undirected distance > 2: {far} of {n * n}")

    return run


DIAMETER_CLAIM = register(
    Claim(
        id="sparse.bigbird-diameter",
        paper=BIGBIRD,
        statement="BigBird's attention graph (window + g >= 1 global tokens + seeded random keys, taken undirected) "
        "has diameter <= 2: (G^2)[u, v] > 0 for all u, v.",
        kind="complexity",
        check=_diameter(False),
        negative_control=_diameter(True),
        experiment="sparse_receptive_field",
        module="theorylab/sparse/connectivity_claims.py",
        test="tests/sparse/test_connectivity.py",
        controls="no global token (g = 0): window and random keys alone",
    )
)


# ---------------------------------------------------------------------------------------
# 3. PowerAttention: complete, continuous receptive field >= 2^d
# ---------------------------------------------------------------------------------------
def _power_field(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        top = 1024 if size == "quick" else 4096
        n = int(rng.integers(256, top + 1))
        d = int(rng.integers(1, int(math.log2(n))))  # 2^d < n
        w = int(rng.integers(2, 9))
        # the control spends the same keys per row (⌊log2 n⌋ + 1) on a dilated window
        pat = dilated_window(int(math.log2(n)) + 1, 2) if wrong else power_attention()
        fp = field_stats(receptive_field(pat, n, d))
        fw = field_stats(receptive_field(sliding_window(w), n, d))
        need = min(2**d, n)
        err_power = max(0, need - fp["continuous"]) / need
        err_window = abs(fw["continuous"] - min(n, 1 + d * (w - 1))) + fw["holes"]
        return Verdict.from_error(err_power + err_window, 0.0, sizes={"n": n, "depth": d, "w": w},
                                  detail=f"after {d} layers: {pat} continuous {fp['continuous']} (>= 2^d = {2**d}), "
                                         f"holes further back {fp['holes']}; window w={w} continuous {fw['continuous']} "
                                         f"(= 1 + d(w-1) = {1 + d * (w - 1)})")

    return run


POWER_CLAIM = register(
    Claim(
        id="sparse.power-receptive-field",
        paper=POWER,
        statement="After d layers of PowerAttention (offsets {0} and 2^k) the receptive field of a token contains every "
        "one of its 2^d nearest earlier positions (complete, continuous, length >= 2^d), while a width-w sliding "
        "window reaches exactly 1 + d(w - 1).",
        kind="complexity",
        check=_power_field(False),
        negative_control=_power_field(True),
        experiment="sparse_receptive_field",
        module="theorylab/sparse/connectivity_claims.py",
        test="tests/sparse/test_connectivity.py",
        controls="a dilated window (dilation 2, as many keys per row) in place of power-of-two offsets: holes",
    )
)
