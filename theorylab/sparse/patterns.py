"""Causal sparse attention patterns with exact nonzero counts.

Papers: #10 Child, Gray, Radford & Sutskever, "Generating Long Sequences with Sparse
Transformers" (2019, arXiv:1904.10509), Sec. 4.2 (strided and fixed factorizations);
#53 Zaheer et al., "Big Bird: Transformers for Longer Sequences" (2020, arXiv:2007.14062),
Sec. 2 (window + global + random); #24 "PowerAttention: Exponentially Scaling of
Receptive Fields for Effective Sparse Attention" (2025, arXiv:2503.03588) (power-of-two
offsets).

A pattern says which keys ``j`` a query ``i`` may attend to; every pattern here is causal
(``j <= i``) and contains the diagonal (``i`` attends to itself), so no softmax row is
empty.  With ``n`` the sequence length:

* ``strided(l)``      A¹ᵢ = {j : 0 <= i−j <= l}  ∪  A²ᵢ = {j : (i−j) mod l = 0}   (Child et al.)
* ``fixed(l, c)``     A¹ᵢ = {j : ⌊j/l⌋ = ⌊i/l⌋}  ∪  A²ᵢ = {j : j mod l >= l − c}   (Child et al.)
* ``sliding_window(w)``          0 <= i−j < w                       (w entries per full row)
* ``dilated_window(w, r)``       i−j ∈ {0, r, 2r, …, (w−1)r}
* ``power_attention()``          i−j ∈ {0} ∪ {2^k : k >= 0}
* ``window_global(w, g)``        window, plus the first g tokens as global keys and
                                 global queries (Longformer-style, causal)
* ``bigbird(w, g, r, seed)``     window_global plus, per query, min(r, m_i) random keys
                                 drawn without replacement from the m_i = max(0, i−w+1−g)
                                 keys the window and globals miss; row i's draw depends
                                 only on (seed, i), so rows do not change with n
* ``full_causal()``              j <= i

Every pattern is *prefix-consistent*: ``mask(m) == mask(n)[:m, :m]`` for m <= n.

Counts.  ``nnz(n)`` is exact, in Python integers, without building the mask: closed
forms for strided, fixed, window, window_global, bigbird and full (see each method), and
Σ_{δ ∈ D, δ < n} (n − δ) over the offset set D (O(|D|) arithmetic) for the patterns that
are a set of offsets.

Glossary (code -> paper): l -> l (stride, ≈ √n), c -> c (summary width of "fixed"),
w -> window width, g -> number of global tokens, r -> random keys per query
(BigBird) or dilation (dilated window), offsets -> the set D of allowed i − j.

Shapes: ``mask(n)`` (n, n) bool; ``row(i, n)`` (k,) int64 sorted; ``row_counts(n)`` (n,)
int64; ``csr(n)`` -> (indptr (n+1,), indices (nnz,)) int64.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "Pattern",
    "OffsetPattern",
    "Strided",
    "Fixed",
    "WindowGlobal",
    "BigBird",
    "strided",
    "fixed",
    "sliding_window",
    "dilated_window",
    "power_attention",
    "window_global",
    "bigbird",
    "full_causal",
    "strided_count",
    "fixed_count",
]


def _int(name: str, value, lo: int | None = None, hi: int | None = None, why: str = "") -> int:
    """``value`` as a Python int with ``lo <= value <= hi``; TypeError/ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer; got {type(value).__name__} {value!r}") from None
    suffix = f" ({why})" if why else ""
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}{suffix}; got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}{suffix}; got {v}")
    return v


def _tri(m: int) -> int:
    """1 + 2 + … + m (0 for m <= 0)."""
    return m * (m + 1) // 2 if m > 0 else 0


def _sum_clip(x0: int, x1: int, lo: int, hi: int) -> int:
    """Σ_{x = x0}^{x1 − 1} clip(x, lo, hi) for integers, lo <= hi, in O(1)."""
    if x1 <= x0:
        return 0
    below = max(0, min(x1, lo) - x0)  # x < lo contribute lo each
    above = max(0, x1 - max(x0, hi + 1))  # x > hi contribute hi each
    m0, m1 = max(x0, lo), min(x1, hi + 1)  # x in [m0, m1) contribute x
    mid = (m0 + m1 - 1) * (m1 - m0) // 2 if m1 > m0 else 0
    return below * lo + above * hi + mid


def _half(x):
    """x / 2 for an even x: exact ``//`` on integers, ``/`` on sympy expressions (the proofs)."""
    return x // 2 if isinstance(x, int) else x / 2


def strided_count(q, l, r):
    """nnz of strided(l) at n = q·l + r, q >= 1, 0 <= r < l (integers or sympy symbols).

    Row i = a·l + b has min(i, l) + 1 window keys and ⌊i/l⌋ + 1 stride keys, sharing
    i − j = 0 and (for i >= l) i − j = l: so b + 1 keys in block a = 0 and l + a keys in
    block a >= 1.  Summing the blocks:
        l(l+1)/2 + (q−1)·l² + l·q(q−1)/2 + r·(l + q).
    (For q = 0, n < l, every row is its whole prefix: n(n+1)/2.)
    """
    return _half(l * (l + 1)) + (q - 1) * l * l + _half(l * q * (q - 1)) + r * (l + q)


def fixed_count(q, l, r, c):
    """nnz of fixed(l, c) at n = q·l + r, 0 <= r < l (integers or sympy symbols).

    Row i = a·l + b has b + 1 keys in its own block and c summary keys in each of the a
    earlier blocks (its own block's summary keys are already in A¹):  b + 1 + a·c.
    Summing:  q·l(l+1)/2 + c·l·q(q−1)/2 + r(r+1)/2 + r·q·c.
    """
    return q * _half(l * (l + 1)) + c * l * _half(q * (q - 1)) + _half(r * (r + 1)) + r * q * c


class Pattern:
    """Base class: a causal pattern defined by its rows; subclasses give ``_row`` and ``nnz``."""

    def _row(self, i: int, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def nnz(self, n) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- public, validated -------------------------------------------------------------
    def row(self, i, n) -> np.ndarray:
        """Allowed keys of query ``i`` in a length-``n`` sequence, sorted, int64 (k,)."""
        n = _int("n", n, 1, why="sequence length")
        i = _int("i", i, 0, n - 1, why=f"a query index of a length-{n} sequence")
        return self._row(i, n)

    def row_counts(self, n) -> np.ndarray:
        """Number of allowed keys per query, (n,) int64."""
        n = _int("n", n, 1, why="sequence length")
        return np.array([self._row(i, n).size for i in range(n)], dtype=np.int64)

    def csr(self, n) -> tuple[np.ndarray, np.ndarray]:
        """Compressed rows: keys of query i are ``indices[indptr[i]:indptr[i+1]]`` (sorted)."""
        n = _int("n", n, 1, why="sequence length")
        rows = [self._row(i, n) for i in range(n)]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([r.size for r in rows], out=indptr[1:])
        return indptr, np.concatenate(rows).astype(np.int64)

    def mask(self, n) -> np.ndarray:
        """Boolean (n, n) mask: ``mask[i, j]`` iff query i may attend to key j."""
        n = _int("n", n, 1, why="sequence length")
        indptr, indices = self.csr(n)
        m = np.zeros((n, n), dtype=bool)
        m[np.repeat(np.arange(n), np.diff(indptr)), indices] = True
        return m

    def density(self, n) -> float:
        """Nominal density: nnz over the n(n+1)/2 entries of the causal triangle."""
        n = _int("n", n, 1, why="sequence length")
        return self.nnz(n) / _tri(n)

    def block_density(self, n, block: int = 128) -> float:
        """Fraction of the causal (block × block) tiles that hold at least one allowed entry.

        This is the work a block-sparse kernel does relative to dense causal attention.
        """
        n = _int("n", n, 1, why="sequence length")
        block = _int("block", block, 1)
        indptr, indices = self.csr(n)
        rows = np.repeat(np.arange(n), np.diff(indptr)) // block
        nb = -(-n // block)
        touched = np.unique(rows * nb + indices // block).size
        return touched / _tri(nb)

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, repr=False)
class OffsetPattern(Pattern):
    """Query i attends to i − δ for every offset δ in a fixed set D (δ <= i)."""

    kind: str
    params: tuple
    offset_fn: object = field(compare=False)  # n -> sorted unique int64 offsets in [0, n), containing 0

    @property
    def name(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.params)})"

    def offsets(self, n) -> np.ndarray:
        """The sorted offsets δ = i − j in [0, n) this pattern allows, int64."""
        n = _int("n", n, 1, why="sequence length")
        return self.offset_fn(n)

    def _row(self, i, n):
        d = self.offset_fn(n)
        return np.sort(i - d[d <= i])

    def nnz(self, n) -> int:
        """Σ_{δ ∈ D, δ < n} (n − δ): offset δ lies on n − δ rows."""
        n = _int("n", n, 1, why="sequence length")
        d = self.offset_fn(n)
        return int(n * d.size - int(d.sum()))

    def row_counts(self, n):
        n = _int("n", n, 1, why="sequence length")
        return np.searchsorted(self.offset_fn(n), np.arange(n), side="right").astype(np.int64)

    def csr(self, n):
        n = _int("n", n, 1, why="sequence length")
        d = self.offset_fn(n)
        counts = np.searchsorted(d, np.arange(n), side="right")  # (n,)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        rows = np.repeat(np.arange(n, dtype=np.int64), counts)  # (nnz,)
        t = np.arange(indptr[-1], dtype=np.int64) - indptr[rows]  # position inside the row
        # keys ascending: i − d[c−1], …, i − d[0]
        return indptr, rows - d[counts[rows] - 1 - t]

    def mask(self, n):
        n = _int("n", n, 1, why="sequence length")
        m = np.zeros((n, n), dtype=bool)
        for delta in self.offset_fn(n):
            idx = np.arange(n - delta)
            m[idx + delta, idx] = True
        return m


@dataclass(frozen=True, repr=False)
class Strided(OffsetPattern):
    """Child et al. strided pattern; offsets {0, …, l} ∪ {0, l, 2l, …}."""

    l: int = 1

    def nnz(self, n) -> int:
        """Closed form :func:`strided_count` (proof: :func:`theorylab.sparse.patterns_claims.proof_strided`)."""
        n = _int("n", n, 1, why="sequence length")
        q, r = divmod(n, self.l)
        return _tri(n) if q == 0 else strided_count(q, self.l, r)


@dataclass(frozen=True, repr=False)
class Fixed(Pattern):
    """Child et al. fixed pattern: own block, plus the last c positions of every block."""

    l: int
    c: int

    @property
    def name(self) -> str:
        return f"fixed(l={self.l}, c={self.c})"

    def _row(self, i, n):
        l, c = self.l, self.c
        a = i // l
        summary = (np.arange(a, dtype=np.int64)[:, None] * l + np.arange(l - c, l)[None]).reshape(-1)
        return np.concatenate([summary, np.arange(a * l, i + 1, dtype=np.int64)])

    def row_counts(self, n):
        n = _int("n", n, 1, why="sequence length")
        i = np.arange(n, dtype=np.int64)
        return i % self.l + 1 + (i // self.l) * self.c

    def nnz(self, n) -> int:
        """Closed form :func:`fixed_count` (proof: :func:`theorylab.sparse.patterns_claims.proof_fixed`)."""
        n = _int("n", n, 1, why="sequence length")
        q, r = divmod(n, self.l)
        return fixed_count(q, self.l, r, self.c)

    def mask(self, n):
        n = _int("n", n, 1, why="sequence length")
        i = np.arange(n)[:, None]
        j = np.arange(n)[None, :]
        return (j <= i) & ((j // self.l == i // self.l) | (j % self.l >= self.l - self.c))


@dataclass(frozen=True, repr=False)
class WindowGlobal(Pattern):
    """Sliding window of width w plus g global tokens (the first g positions)."""

    w: int
    g: int

    @property
    def name(self) -> str:
        return f"window_global(w={self.w}, g={self.g})"

    def _row(self, i, n):
        if i < self.g:  # a global query sees every earlier token
            return np.arange(i + 1, dtype=np.int64)
        lo = max(0, i - self.w + 1)
        return np.concatenate([np.arange(min(self.g, lo), dtype=np.int64), np.arange(lo, i + 1, dtype=np.int64)])

    def nnz(self, n) -> int:
        """Global rows i < g: i + 1 keys.  Rows i >= g: min(i+1, w) window keys plus g globals
        minus their overlap clip(g + w − 1 − i, 0, g); each sum is a clipped arithmetic series."""
        n = _int("n", n, 1, why="sequence length")
        w, g = self.w, self.g
        head = _tri(min(g, n))
        window = _sum_clip(g + 1, n + 1, 0, w)  # Σ_{i=g}^{n−1} min(i+1, w)
        overlap = _sum_clip(g + w - n, w, 0, g)  # Σ_{i=g}^{n−1} clip(g+w−1−i, 0, g)
        return head + window + g * max(0, n - g) - overlap

    def mask(self, n):
        n = _int("n", n, 1, why="sequence length")
        i = np.arange(n)[:, None]
        j = np.arange(n)[None, :]
        return (j <= i) & ((i - j < self.w) | (j < self.g) | (i < self.g))


@dataclass(frozen=True, repr=False)
class BigBird(WindowGlobal):
    """window_global plus min(r, m_i) seeded random keys per query (m_i = max(0, i−w+1−g))."""

    r: int = 0
    seed: int = 0

    @property
    def name(self) -> str:
        return f"bigbird(w={self.w}, g={self.g}, r={self.r}, seed={self.seed})"

    def _random_keys(self, i: int) -> np.ndarray:
        """Keys drawn for row i from [g, i − w]: depends on (seed, i) only."""
        m = i - self.w + 1 - self.g
        if m <= 0 or self.r == 0:
            return np.empty(0, dtype=np.int64)
        rng = np.random.default_rng([self.seed, i])
        return self.g + rng.choice(m, size=min(self.r, m), replace=False).astype(np.int64)

    def _row(self, i, n):
        return np.sort(np.concatenate([super()._row(i, n), self._random_keys(i)]))

    def nnz(self, n) -> int:
        """window_global's count plus Σ_i min(r, max(0, i − w + 1 − g))."""
        n = _int("n", n, 1, why="sequence length")
        return super().nnz(n) + _sum_clip(1 - self.w - self.g, n + 1 - self.w - self.g, 0, self.r)

    def mask(self, n):
        m = super().mask(n)
        for i in range(n):
            m[i, self._random_keys(i)] = True
        return m


# ---------------------------------------------------------------------------------------
# constructors (validated)
# ---------------------------------------------------------------------------------------
def strided(l) -> Strided:
    """Child et al. strided pattern: 0 <= i−j <= l (l + 1 keys) or (i−j) mod l = 0."""
    l = _int("l", l, 1, why="the stride")

    def offsets(n, l=l):
        return np.union1d(np.arange(min(l + 1, n)), np.arange(0, n, l)).astype(np.int64)

    return Strided("strided", (("l", l),), offsets, l)


def fixed(l, c) -> Fixed:
    """Child et al. fixed pattern: ⌊j/l⌋ = ⌊i/l⌋ or j mod l >= l − c (with j <= i)."""
    l = _int("l", l, 1, why="the block length")
    c = _int("c", c, 1, l, why=f"summary positions per block, 1 <= c <= l = {l}")
    return Fixed(l, c)


def sliding_window(w) -> OffsetPattern:
    """0 <= i − j < w: the query and its w − 1 predecessors."""
    w = _int("w", w, 1, why="window width")
    return OffsetPattern("sliding_window", (("w", w),), lambda n, w=w: np.arange(min(w, n), dtype=np.int64))


def dilated_window(w, r) -> OffsetPattern:
    """i − j ∈ {0, r, …, (w − 1) r}: w keys spaced r apart."""
    w = _int("w", w, 1, why="keys per row")
    r = _int("r", r, 1, why="dilation")
    return OffsetPattern("dilated_window", (("w", w), ("r", r)), lambda n, w=w, r=r: np.arange(0, min(w * r, n), r, dtype=np.int64))


def power_attention() -> OffsetPattern:
    """i − j ∈ {0} ∪ {1, 2, 4, 8, …}: ⌊log2 i⌋ + 2 keys in row i >= 1."""

    def offsets(n):
        return np.array([0] + [1 << k for k in range(max(n - 1, 1).bit_length()) if (1 << k) < n], dtype=np.int64)

    return OffsetPattern("power_attention", (), offsets)


def window_global(w, g) -> WindowGlobal:
    """Sliding window of width w plus g >= 0 global tokens (Longformer-style, causal)."""
    return WindowGlobal(_int("w", w, 1, why="window width"), _int("g", g, 0, why="global tokens"))


def bigbird(w, g, r, seed) -> BigBird:
    """BigBird, causal: window w, g global tokens, r random keys per query from ``seed``."""
    return BigBird(
        _int("w", w, 1, why="window width"),
        _int("g", g, 0, why="global tokens"),
        _int("r", r, 0, why="random keys per query"),
        _int("seed", seed, 0, why="seed of the random keys"),
    )


@dataclass(frozen=True, repr=False)
class _FullCausal(OffsetPattern):
    def nnz(self, n) -> int:
        return _tri(_int("n", n, 1, why="sequence length"))

    def mask(self, n):
        n = _int("n", n, 1, why="sequence length")
        return np.tril(np.ones((n, n), dtype=bool))


def full_causal() -> OffsetPattern:
    """j <= i: dense causal attention, n(n+1)/2 entries."""
    return _FullCausal("full_causal", (), lambda n: np.arange(n, dtype=np.int64))
