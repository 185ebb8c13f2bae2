"""Exact nonzero counts of the patterns of :mod:`theorylab.sparse.patterns`, in Python integers.

Every function here takes Python integers (or, for :func:`strided_count` / :func:`fixed_count`,
sympy symbols -- the proofs of :mod:`theorylab.sparse.patterns_claims` run them on symbols)
and uses only integer arithmetic: no float, no int64, so a count is exact for any n a
Python int can hold (n = 10**40 included) and costs O(1) (O(|D|) for a user's offset set D).

With n the sequence length and i the query (row) index:

* offsets D (a set of allowed i − j):      nnz = Σ_{δ ∈ D, δ < n} (n − δ)    (δ lies on n − δ rows)
* sliding_window(w):   D = {0, …, w − 1}:   m = min(w, n),  nnz = m·n − m(m − 1)/2
* dilated_window(w, r): D = {0, r, …, (w − 1) r}:  m = min(w, ⌊(n − 1)/r⌋ + 1),  nnz = m·n − r·m(m − 1)/2
* power_attention:     D = {0} ∪ {2^k < n}:  K = bit_length(n − 1) powers,  nnz = n + K·n − (2^K − 1)
* full_causal:         nnz = n(n + 1)/2
* strided, fixed:      :func:`strided_count`, :func:`fixed_count` (block sums, n = q·l + r)
* window_global, bigbird: clipped arithmetic series (:func:`_sum_clip`).
"""

from __future__ import annotations

__all__ = [
    "strided_count",
    "fixed_count",
    "strided_total",
    "fixed_total",
    "offsets_count",
    "sliding_window_count",
    "dilated_window_count",
    "power_count",
    "full_count",
    "window_global_count",
    "bigbird_count",
]


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


def strided_total(n: int, l: int) -> int:
    """nnz of strided(l) at length n (any n >= 1)."""
    q, r = divmod(n, l)
    return _tri(n) if q == 0 else strided_count(q, l, r)


def fixed_total(n: int, l: int, c: int) -> int:
    """nnz of fixed(l, c) at length n (any n >= 1)."""
    q, r = divmod(n, l)
    return fixed_count(q, l, r, c)


def offsets_count(n: int, offsets) -> int:
    """Σ_{δ ∈ D, δ < n} (n − δ) for the offsets D (iterable of ints >= 0), in Python integers."""
    ds = [int(d) for d in offsets]
    ds = [d for d in ds if d < n]
    return n * len(ds) - sum(ds)


def sliding_window_count(n: int, w: int) -> int:
    """nnz of sliding_window(w): offsets 0 … m − 1 with m = min(w, n)."""
    m = min(w, n)
    return m * n - m * (m - 1) // 2


def dilated_window_count(n: int, w: int, r: int) -> int:
    """nnz of dilated_window(w, r): offsets t·r, t < m = min(w, ⌊(n − 1)/r⌋ + 1)."""
    m = min(w, (n - 1) // r + 1)
    return m * n - r * (m * (m - 1) // 2)


def power_count(n: int) -> int:
    """nnz of power_attention(): offset 0 on n rows, offset 2^k < n on n − 2^k rows;
    the K = bit_length(n − 1) powers 1, 2, …, 2^{K−1} sum to 2^K − 1."""
    k = (n - 1).bit_length()
    return n + k * n - ((1 << k) - 1)


def full_count(n: int) -> int:
    """nnz of full_causal(): n(n + 1)/2."""
    return _tri(n)


def window_global_count(n: int, w: int, g: int) -> int:
    """Global rows i < g: i + 1 keys.  Rows i >= g: min(i+1, w) window keys plus g globals
    minus their overlap clip(g + w − 1 − i, 0, g); each sum is a clipped arithmetic series."""
    head = _tri(min(g, n))
    window = _sum_clip(g + 1, n + 1, 0, w)  # Σ_{i=g}^{n−1} min(i+1, w)
    overlap = _sum_clip(g + w - n, w, 0, g)  # Σ_{i=g}^{n−1} clip(g+w−1−i, 0, g)
    return head + window + g * max(0, n - g) - overlap


def bigbird_count(n: int, w: int, g: int, r: int) -> int:
    """window_global's count plus Σ_i min(r, max(0, i − w + 1 − g))."""
    return window_global_count(n, w, g) + _sum_clip(1 - w - g, n + 1 - w - g, 0, r)
