"""Connectivity claims: who can reach whom through stacked sparse layers.

Papers: #10 Child et al., "Generating Long Sequences with Sparse Transformers" (2019,
arXiv:1904.10509), Sec. 4.2: with two factorized heads (or two layers) "every position
attends to every earlier one": for strided and fixed, {(i, j) : j <= i} is covered in
p = 2 hops.  #53 Zaheer et al., "Big Bird" (2020, arXiv:2007.14062): with g >= 1 global
token the attention graph has diameter <= 2 (every token is adjacent to a global one).
#24 "PowerAttention" (2025, arXiv:2503.03588): with offsets {0} ∪ {2^k} the receptive
field after d layers is complete and continuous and has length >= 2^d (every offset
< 2^d is a sum of at most d powers of two), while a width-w window reaches exactly
1 + d(w − 1) and a dilated window leaves holes.

Graphs.  A pattern's mask A (n, n) (A[i, j]: i attends to j; reflexive, causal) is the
one-hop relation.  j is reached from i within p hops iff (A^p)[i, j] > 0 (boolean matrix
power; the diagonal of A makes "within" and "exactly" coincide).  For BigBird's diameter
the graph is undirected, G = A ∨ Aᵀ (BigBird's own attention is bidirectional: the window
is symmetric and global tokens attend and are attended both ways), and diameter <= 2 iff
(G²)[u, v] > 0 for all u, v.  The receptive field of query i after d layers is
F_d = {j : (A^d)[i, j] > 0}; its continuous length is the largest L with
{i − L + 1, …, i} ⊆ F_d, and its holes are the positions between min F_d and i missing
from F_d.

Claims: ``sparse.two-hop-coverage`` (strided and fixed), ``sparse.bigbird-diameter``,
``sparse.power-receptive-field``; each with a negative control named in ``controls``.

Shapes: masks (n, n) bool; reach vectors (n,) bool.
"""

from __future__ import annotations

import math

import numpy as np

from ..claims import Claim, Paper, Verdict, register
from .patterns import OffsetPattern, Pattern, bigbird, dilated_window, fixed, power_attention, sliding_window, strided

__all__ = ["reach_within", "uncovered_pairs", "pairs_beyond_two_hops", "receptive_field", "field_stats"]

CHILD = Paper("Generating Long Sequences with Sparse Transformers", 2019, "1904.10509", index=10)
BIGBIRD = Paper("Big Bird: Transformers for Longer Sequences", 2020, "2007.14062", index=53)
POWER = Paper("PowerAttention: Exponentially Scaling of Receptive Fields for Effective Sparse Attention", 2025, "2503.03588", index=24)


def _bool_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean matrix product (a @ b > 0), via float32 GEMM (counts <= n < 2^24 are exact)."""
    return (a.astype(np.float32) @ b.astype(np.float32)) > 0


def reach_within(mask: np.ndarray, hops: int) -> np.ndarray:
    """(A^hops > 0): (n, n) bool, j reachable from i in at most ``hops`` steps (A reflexive)."""
    r = mask
    for _ in range(hops - 1):
        r = _bool_product(r, mask)
    return r


def uncovered_pairs(pattern: Pattern, n: int, hops: int = 2) -> int:
    """Number of causal pairs j <= i that ``hops`` layers of ``pattern`` do not connect."""
    reach = reach_within(pattern.mask(n), hops)
    return int(np.count_nonzero(np.tril(~reach)))


def pairs_beyond_two_hops(pattern: Pattern, n: int) -> int:
    """Ordered pairs (u, v) at undirected distance > 2 in G = A ∨ Aᵀ (0 iff diameter <= 2)."""
    a = pattern.mask(n)
    g = a | a.T  # (n, n), reflexive
    return int(np.count_nonzero(~_bool_product(g, g)))


def receptive_field(pattern: Pattern, n: int, depth: int, query: int | None = None) -> np.ndarray:
    """F_d of ``query`` (default n − 1) as an (n,) bool vector, by d boolean mat-vec products."""
    a = pattern.mask(n).astype(np.float32)
    r = np.zeros(n, dtype=np.float32)
    r[n - 1 if query is None else query] = 1.0
    for _ in range(depth):
        r = ((r @ a) > 0).astype(np.float32)  # keys reached from the reached queries
    return r > 0


def field_stats(field: np.ndarray, query: int | None = None) -> dict:
    """Continuous length L ending at the query, span (query − min F + 1), size |F| and holes."""
    i = field.size - 1 if query is None else query
    reached = np.flatnonzero(field[: i + 1])
    missing = np.flatnonzero(~field[: i + 1])
    continuous = i - int(missing.max()) if missing.size else i + 1
    span = i - int(reached.min()) + 1
    return {"continuous": int(continuous), "span": int(span), "size": int(reached.size), "holes": int(span - reached.size)}


# ---------------------------------------------------------------------------------------
# 1. two hops cover every earlier position (strided, fixed)
# ---------------------------------------------------------------------------------------
def _half_window_strided(l: int) -> OffsetPattern:
    """WRONG on purpose: stride l with a local window of only ⌈l/2⌉ (0 <= i − j < ⌈l/2⌉)."""
    h = -(-l // 2)
    return OffsetPattern("half_window_strided", (("l", l),), lambda n: np.union1d(np.arange(min(h, n)), np.arange(0, n, l)).astype(np.int64))


class _StartSummaryFixed(Pattern):
    """WRONG on purpose: fixed(l, c) with the summary positions at the *start* of each block."""

    def __init__(self, l: int, c: int):
        self.l, self.c, self.name = l, c, f"start_summary_fixed(l={l}, c={c})"

    def _row(self, i, n):
        return np.flatnonzero(self.mask(n)[i])

    def nnz(self, n):
        return int(self.mask(n).sum())

    def mask(self, n):
        i, j = np.arange(n)[:, None], np.arange(n)[None, :]
        return (j <= i) & ((j // self.l == i // self.l) | (j % self.l < self.c))


def _two_hop(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        top = 400 if size == "quick" else 1024
        n = int(rng.integers(64, top + 1))
        l = int(rng.integers(2, 2 * math.isqrt(n) + 1))
        c = int(rng.integers(1, l))  # c < l so that the control's summary differs
        pats = (_half_window_strided(l), _StartSummaryFixed(l, c)) if wrong else (strided(l), fixed(l, c))
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
        module="theorylab/sparse/connectivity.py",
        test="tests/sparse/test_connectivity.py",
        controls="strided with a local window of ceil(l/2) < l; fixed with its summary positions at the block start",
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
        module="theorylab/sparse/connectivity.py",
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
        module="theorylab/sparse/connectivity.py",
        test="tests/sparse/test_connectivity.py",
        controls="a dilated window (dilation 2, as many keys per row) in place of power-of-two offsets: holes",
    )
)
