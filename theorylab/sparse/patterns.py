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

Counts.  ``nnz(n)`` is exact for any n a Python int can hold (10**40 included), without
building the mask: closed forms in Python integers, no float and no int64
(:mod:`theorylab.sparse.patterns_counts`); a user's offset set D is summed as
Σ_{δ ∈ D, δ < n} (n − δ) in Python integers.  Methods returning arrays (``mask``,
``csr``, ``row``, ``row_counts``, ``offsets``) take n <= 2**62 (int64 indices) and refuse
larger n with a ValueError naming n.

Checks (:mod:`theorylab.sparse._patterns_validate`).  Indices are checked once, where a
pattern becomes compressed rows (:func:`check_csr`): in row i every key lies in [0, i],
keys strictly increase, the last is i; a user's pattern breaking this is a ValueError
naming it and the bad row.  ``mask(n)`` is refused beyond ``max_entries`` (default
2**31 bools, 2 GiB), naming n and the memory; masks are written in place.

Glossary (code -> paper): l -> l (stride, ≈ √n), c -> c (summary width of "fixed"),
w -> window width, g -> number of global tokens, r -> random keys per query
(BigBird) or dilation (dilated window), offsets -> the set D of allowed i − j.

Shapes: ``mask(n)`` (n, n) bool; ``row(i, n)`` (k,) int64 sorted; ``row_counts(n)`` (n,)
int64; ``csr(n)`` -> (indptr (n+1,), indices (nnz,)) int64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._patterns_validate import MAX_ENTRIES, _array_length, _int, _label, _length, _mask_by_rows, check_csr, check_row, guard
from .patterns_counts import (_tri, bigbird_count, dilated_window_count, fixed_count, fixed_total, full_count, offsets_count,
                              power_count, sliding_window_count, strided_count, strided_total, window_global_count)

__all__ = ["Pattern", "OffsetPattern", "Strided", "SlidingWindow", "Fixed", "WindowGlobal", "BigBird", "strided",
           "fixed", "sliding_window", "dilated_window", "power_attention", "window_global", "bigbird", "full_causal",
           "strided_count", "fixed_count", "check_csr", "MAX_ENTRIES"]

class Pattern:
    """Base class: a causal pattern defined by its rows.

    A subclass gives ``_row(i, n)`` (the keys of query i, sorted) and ``nnz(n)``, and may
    override ``_csr`` / ``_mask`` / ``row_counts`` with faster equivalents.  The public
    methods validate n, guard memory and check every index (:func:`check_csr`)."""

    def _row(self, i: int, n: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def nnz(self, n) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _csr(self, n: int):
        rows = [np.asarray(self._row(i, n)) for i in range(n)]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([r.size for r in rows], out=indptr[1:])
        return indptr, np.concatenate(rows)

    def _mask(self, n: int) -> np.ndarray:
        indptr, indices = check_csr(self, n, *self._csr(n))
        m = np.zeros((n, n), dtype=bool)
        m[np.repeat(np.arange(n), np.diff(indptr)), indices] = True
        return m

    # -- public, validated -------------------------------------------------------------
    def row(self, i, n) -> np.ndarray:
        """Allowed keys of query ``i`` in a length-``n`` sequence, sorted, int64 (k,); checked."""
        n = _array_length(self, n, "row(i, n)")
        i = _int("i", i, 0, n - 1, why=f"a query index of a length-{n} sequence")
        return check_row(self, i, n, self._row(i, n))

    def row_counts(self, n) -> np.ndarray:
        """Number of allowed keys per query, (n,) int64."""
        n = _array_length(self, n, "row_counts(n)")
        guard(self, "row_counts(n)", n, n, 8, MAX_ENTRIES)
        return np.diff(self.csr(n)[0])

    def csr(self, n, *, max_entries=MAX_ENTRIES) -> tuple[np.ndarray, np.ndarray]:
        """Compressed rows: keys of query i are ``indices[indptr[i]:indptr[i+1]]``, checked by
        :func:`check_csr`; refused when nnz(n) > ``max_entries``."""
        n = _array_length(self, n, "csr(n)")
        try:
            entries = self.nnz(n)
        except NotImplementedError:  # a user's pattern without a count: every row holds >= 1 key
            entries = n
        guard(self, "csr(n)", n, entries, 16, max_entries)
        return check_csr(self, n, *self._csr(n))

    def mask(self, n, *, max_entries=MAX_ENTRIES) -> np.ndarray:
        """Boolean (n, n) mask: ``mask[i, j]`` iff query i may attend to key j.  Refused when
        n² > ``max_entries`` (default 2**31: 2 GiB), with the memory it would take."""
        n = _array_length(self, n, "mask(n)")
        guard(self, "mask(n)", n, n * n, 1, max_entries)
        return self._mask(n)

    def density(self, n) -> float:
        """Nominal density: nnz over the n(n+1)/2 entries of the causal triangle."""
        n = _length(n)
        return self.nnz(n) / _tri(n)

    def block_density(self, n, block: int = 128) -> float:
        """Fraction of the causal (block × block) tiles that hold at least one allowed entry.

        This is the work a block-sparse kernel does relative to dense causal attention.
        """
        n = _array_length(self, n, "block_density(n)")
        block = _int("block", block, 1)
        indptr, indices = self.csr(n)
        rows = np.repeat(np.arange(n), np.diff(indptr)) // block
        nb = -(-n // block)
        touched = np.unique(rows * nb + indices // block).size
        return touched / _tri(nb)

    def __repr__(self) -> str:
        return _label(self)


@dataclass(frozen=True, repr=False)
class OffsetPattern(Pattern):
    """Query i attends to i − δ for every offset δ in a set D (δ <= i).

    ``offset_fn(n)`` gives D's members below n: integers, in any order (D is a set: sorted
    and deduplicated on every call), members >= n ignored; D must hold 0 and no negative
    offset (else a ValueError naming the pattern and the row it would break).
    ``count_fn(n)``, when given, is nnz(n) in Python integers (a closed form); otherwise
    nnz sums over D.
    """

    kind: str
    params: tuple
    offset_fn: object = field(compare=False)  # n -> int offsets δ = i − j (a set, holding 0)
    count_fn: object = field(default=None, compare=False)  # n -> exact nnz (Python int), optional

    @property
    def name(self) -> str:
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in self.params)})"

    def offsets(self, n) -> np.ndarray:
        """The sorted offsets δ = i − j in [0, n) this pattern allows, int64 (checked)."""
        return self._offsets(_array_length(self, n, "offsets(n)"))

    def _offsets(self, n: int) -> np.ndarray:
        d = np.asarray(self.offset_fn(n))
        if d.ndim != 1 or (d.size and not np.issubdtype(d.dtype, np.integer)):
            raise ValueError(f"{self.name}: the offsets at n = {n} must be a 1-d array of integers; got dtype {d.dtype}, "
                             f"shape {d.shape}")
        d = np.unique(d.astype(np.int64, copy=False))  # a set: sorted, without duplicates
        if d.size and d[0] < 0:
            raise ValueError(f"{self.name}: the offset {int(d[0])} gives row 0 the key {-int(d[0])} > 0 (n = {n}): "
                             f"offsets i − j must be >= 0 (causal), as every key j of row i must lie in [0, i]")
        if d.size == 0 or d[0] != 0:
            raise ValueError(f"{self.name}: the offsets at n = {n} lack 0, so row 0 has no key: offset 0 (the "
                             f"diagonal) must be in the set")
        return d[d < n]

    def _row(self, i, n):
        d = self._offsets(n)
        return i - d[d <= i][::-1]

    def nnz(self, n) -> int:
        """Exact, Python integers: ``count_fn`` when given, else Σ_{δ ∈ D, δ < n} (n − δ)."""
        n = _length(n)
        if self.count_fn is not None:
            return self.count_fn(n)
        return offsets_count(n, self._offsets(_array_length(self, n, "nnz(n) (a set of offsets without a closed form)")))

    def row_counts(self, n):
        n = _array_length(self, n, "row_counts(n)")
        guard(self, "row_counts(n)", n, n, 8, MAX_ENTRIES)
        return np.searchsorted(self._offsets(n), np.arange(n), side="right").astype(np.int64)

    def _csr(self, n):
        d = self._offsets(n)
        counts = np.searchsorted(d, np.arange(n), side="right")  # (n,)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        rows = np.repeat(np.arange(n, dtype=np.int64), counts)  # (nnz,)
        t = np.arange(indptr[-1], dtype=np.int64) - indptr[rows]  # position inside the row
        # keys ascending: i − d[c−1], …, i − d[0]
        return indptr, rows - d[counts[rows] - 1 - t]

    def _mask(self, n):
        m = np.zeros((n, n), dtype=bool)
        flat = m.reshape(-1)  # entry (j + δ, j) sits at δ·n + j·(n + 1): one strided slice per offset
        for delta in self._offsets(n):
            flat[int(delta) * n :: n + 1] = True
        return m


@dataclass(frozen=True, repr=False)
class Strided(OffsetPattern):
    """Child et al. strided pattern; offsets {0, …, l} ∪ {0, l, 2l, …}."""

    l: int = 1

    def nnz(self, n) -> int:
        """Closed form :func:`~theorylab.sparse.patterns_counts.strided_count` (proof:
        :func:`theorylab.sparse.patterns_claims.proof_strided`)."""
        return strided_total(_length(n), self.l)


@dataclass(frozen=True, repr=False)
class SlidingWindow(OffsetPattern):
    """0 <= i − j < w (the torch path runs it as band blocks)."""

    w: int = 1


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
        n = _array_length(self, n, "row_counts(n)")
        guard(self, "row_counts(n)", n, n, 8, MAX_ENTRIES)
        i = np.arange(n, dtype=np.int64)
        return i % self.l + 1 + (i // self.l) * self.c

    def nnz(self, n) -> int:
        """Closed form :func:`~theorylab.sparse.patterns_counts.fixed_count` (proof:
        :func:`theorylab.sparse.patterns_claims.proof_fixed`)."""
        return fixed_total(_length(n), self.l, self.c)

    def _mask(self, n):
        l, c = self.l, self.c
        jn = np.arange(n, dtype=np.int64)
        jblock, summary = (jn // l)[None, :], (jn % l >= l - c)[None, :]  # (1, n) each
        return _mask_by_rows(n, lambda i, j: (j <= i) & ((jblock == i // l) | summary))


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
        """Closed form :func:`~theorylab.sparse.patterns_counts.window_global_count`."""
        return window_global_count(_length(n), self.w, self.g)

    def _mask(self, n):
        w, g = self.w, self.g
        return _mask_by_rows(n, lambda i, j: (j <= i) & ((j > i - w) | (j < g) | (i < g)))  # bool temporaries only


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
        """Closed form :func:`~theorylab.sparse.patterns_counts.bigbird_count`."""
        return bigbird_count(_length(n), self.w, self.g, self.r)

    def _mask(self, n):
        m = super()._mask(n)
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

    return Strided(kind="strided", params=(("l", l),), offset_fn=offsets, l=l)


def fixed(l, c) -> Fixed:
    """Child et al. fixed pattern: ⌊j/l⌋ = ⌊i/l⌋ or j mod l >= l − c (with j <= i)."""
    l = _int("l", l, 1, why="the block length")
    c = _int("c", c, 1, l, why=f"summary positions per block, 1 <= c <= l = {l}")
    return Fixed(l, c)


def sliding_window(w) -> OffsetPattern:
    """0 <= i − j < w: the query and its w − 1 predecessors."""
    w = _int("w", w, 1, why="window width")
    return SlidingWindow("sliding_window", (("w", w),), lambda n, w=w: np.arange(min(w, n), dtype=np.int64),
                         lambda n, w=w: sliding_window_count(n, w), w)


def dilated_window(w, r) -> OffsetPattern:
    """i − j ∈ {0, r, …, (w − 1) r}: w keys spaced r apart."""
    w = _int("w", w, 1, why="keys per row")
    r = _int("r", r, 1, why="dilation")
    return OffsetPattern("dilated_window", (("w", w), ("r", r)),
                         lambda n, w=w, r=r: np.arange(0, min(w * r, n), r, dtype=np.int64),
                         lambda n, w=w, r=r: dilated_window_count(n, w, r))


def power_attention() -> OffsetPattern:
    """i − j ∈ {0} ∪ {1, 2, 4, 8, …}: ⌊log2 i⌋ + 2 keys in row i >= 1."""

    def offsets(n):
        return np.array([0] + [1 << k for k in range(max(n - 1, 1).bit_length()) if (1 << k) < n], dtype=np.int64)

    return OffsetPattern("power_attention", (), offsets, power_count)


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
    def _mask(self, n):
        return np.tri(n, dtype=bool)  # one (n, n) bool comparison, no temporaries


def full_causal() -> OffsetPattern:
    """j <= i: dense causal attention, n(n+1)/2 entries."""
    return _FullCausal("full_causal", (), lambda n: np.arange(n, dtype=np.int64), full_count)
