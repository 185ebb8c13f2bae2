"""Argument, index and memory checks of :mod:`theorylab.sparse.patterns`.

:func:`check_csr` is the one place where a pattern's indices are checked before any kernel
reads them (see the module docstring of :mod:`theorylab.sparse.patterns`); :func:`check_row`
checks one row the same way; :func:`guard` refuses an allocation beyond ``max_entries``
(default :data:`MAX_ENTRIES`), naming n and the memory it would take.

Indices are checked once, where a pattern becomes compressed rows (:func:`check_csr`, run
by ``csr(n)``; ``row(i, n)`` checks its row the same way): in row i every key j satisfies
0 <= j <= i, keys are strictly increasing (sorted, no duplicates) and the last one is i
(the diagonal, so no softmax row is empty).  A pattern built by a user (an
:class:`OffsetPattern` with its own offset function, a :class:`Pattern` subclass with its
own ``_row``) that breaks this gets a ValueError naming the pattern and the bad row, so no
kernel ever reads an index it did not check.  Offsets are a set: each call's offsets are
sorted and deduplicated, those >= n ignored, a negative one (or a missing 0) refused.

Memory.  ``mask(n)`` holds n² bools: it is refused (ValueError naming n and the GiB it
would take) when n² > ``max_entries`` (default :data:`MAX_ENTRIES` = 2**31, i.e. 2 GiB;
pass ``max_entries=`` to allow more).  The masks are written in place (diagonals of a
flat view, or blocks of rows), so the peak is the mask plus O(n) -- not a multiple of it.
``csr(n)`` is refused likewise when nnz(n) > ``max_entries`` (16 bytes per entry).
"""

from __future__ import annotations

import operator

import numpy as np

__all__ = ["check_csr", "check_row", "guard", "MAX_ENTRIES", "INDEX_MAX"]

MAX_ENTRIES = 2**31  # default limit of mask(n) (n² bools) and csr(n) (nnz indices)
INDEX_MAX = 2**62  # the largest n an int64 index array can address with room to spare
_BLOCK = 2**19  # entries per block of rows when a mask is evaluated from its rule (bool temporaries of 0.5 MB)


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


def _length(n) -> int:
    return _int("n", n, 1, why="sequence length")


def _label(pattern) -> str:
    return str(getattr(pattern, "name", type(pattern).__name__))


def _array_length(pattern, n, what: str) -> int:
    """n for a method that returns arrays: n <= 2**62, else a ValueError naming n."""
    n = _length(n)
    if n > INDEX_MAX:
        raise ValueError(f"n = {n} is too large for {_label(pattern)}.{what}: its arrays are indexed by int64 "
                         f"(n <= 2**62); nnz(n) and density(n) take any integer n")
    return n


def guard(pattern, what: str, n: int, entries: int, itemsize: int, max_entries) -> None:
    """Refuse an allocation of more than ``max_entries`` entries, naming n and the memory."""
    limit = _int("max_entries", max_entries, 1)
    if entries > limit:
        raise ValueError(f"{_label(pattern)}.{what} at n = {n} would hold {entries:,} entries "
                         f"({entries * itemsize / 2**30:.3g} GiB), beyond max_entries = {limit:,} "
                         f"(default 2**31); pass max_entries= to allow it")


def check_csr(pattern, n: int, indptr, indices) -> tuple[np.ndarray, np.ndarray]:
    """Compressed rows of ``pattern`` at length n, checked: indptr (n+1,) rising from 0 to
    len(indices); in row i every key in [0, i], strictly increasing, the last one i.
    Returns int64 copies (views when already int64); ValueError naming the pattern and the bad row."""
    who = _label(pattern)
    indptr, indices = np.asarray(indptr), np.asarray(indices)
    for name, a, shape in (("indptr", indptr, (n + 1,)), ("indices", indices, None)):
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)) or (shape and a.shape != shape):
            raise ValueError(f"{who}: csr at n = {n} must give an integer indptr of shape ({n + 1},) and 1-d "
                             f"integer indices; got {name} of dtype {a.dtype}, shape {a.shape}")
    indptr, indices = indptr.astype(np.int64, copy=False), indices.astype(np.int64, copy=False)
    counts = np.diff(indptr)  # (n,)
    if indptr[0] != 0 or indptr[-1] != indices.size or (counts < 0).any():
        raise ValueError(f"{who}: csr at n = {n} has an indptr that does not rise from 0 to len(indices) = {indices.size}")
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)  # (nnz,) the row of every key
    bad = (indices < 0) | (indices > rows)
    if bad.any():
        p = int(np.argmax(bad))
        i = int(rows[p])
        raise ValueError(f"{who}: row {i} holds the key {int(indices[p])}, outside [0, {i}] (n = {n}): every key j of "
                         f"query i must satisfy 0 <= j <= i")
    unsorted = (indices[1:] <= indices[:-1]) & (rows[1:] == rows[:-1])
    if unsorted.any():
        p = int(np.argmax(unsorted))
        raise ValueError(f"{who}: row {int(rows[p])} holds the keys {int(indices[p])} then {int(indices[p + 1])} (n = {n}): "
                         f"the keys of a row must be strictly increasing (sorted, no duplicates)")
    last = np.full(n, -1, dtype=np.int64)
    full = counts > 0
    last[full] = indices[indptr[1:][full] - 1]
    missing = last != np.arange(n)
    if missing.any():
        i = int(np.argmax(missing))
        raise ValueError(f"{who}: row {i} does not hold its diagonal key {i} (n = {n}): every query must attend to "
                         f"itself, so that no softmax row is empty")
    return indptr, indices


def check_row(pattern, i: int, n: int, keys) -> np.ndarray:
    """One row of ``pattern``, checked as :func:`check_csr` checks every row; int64 (k,)."""
    keys = np.asarray(keys)
    if keys.ndim != 1 or (keys.size and not np.issubdtype(keys.dtype, np.integer)):
        raise ValueError(f"{_label(pattern)}: row {i} (n = {n}) must be a 1-d array of integer keys; got dtype "
                         f"{keys.dtype}, shape {keys.shape}")
    keys = keys.astype(np.int64, copy=False)
    if keys.size and (keys.min() < 0 or keys.max() > i):
        bad = keys[(keys < 0) | (keys > i)][0]
        raise ValueError(f"{_label(pattern)}: row {i} holds the key {int(bad)}, outside [0, {i}] (n = {n}): every key j "
                         f"of query i must satisfy 0 <= j <= i")
    if (keys[1:] <= keys[:-1]).any():
        raise ValueError(f"{_label(pattern)}: row {i} (n = {n}) has keys that are not strictly increasing (sorted, no "
                         f"duplicates): {keys.tolist()[:8]}")
    if keys.size == 0 or keys[-1] != i:
        raise ValueError(f"{_label(pattern)}: row {i} does not hold its diagonal key {i} (n = {n}): every query must "
                         f"attend to itself, so that no softmax row is empty")
    return keys


def _mask_by_rows(n: int, keep) -> np.ndarray:
    """(n, n) bool mask from ``keep(i (r, 1), j (1, n)) -> (r, n) bool``, evaluated on blocks of
    rows: the peak is the mask plus O(_BLOCK), not the n² integer temporaries of i − j."""
    m = np.empty((n, n), dtype=bool)
    j = np.arange(n, dtype=np.int64)[None, :]
    step = max(1, _BLOCK // n)
    for a in range(0, n, step):
        m[a : a + step] = keep(np.arange(a, min(n, a + step), dtype=np.int64)[:, None], j)
    return m
