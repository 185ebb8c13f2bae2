"""The Sparse Transformer's fixed pattern with several summary sub-blocks, one per head.

Paper: #10 Child et al., "Generating Long Sequences with Sparse Transformers" (2019,
arXiv:1904.10509), Sec. 4.2 ("fixed" attention pattern): "we find choosing c ∈ {8, 16, 32}
for typical values of l ∈ {128, 256} to perform well, although ... it can be preferable to
have different heads attend to distinct sub-blocks of length c within the block of size l".

Query i (block a = i // l) attends to its own block up to itself and to summary columns of
earlier blocks.  With ``num_verts`` sub-blocks of width c at the end of each block, head h
uses sub-block v = h mod num_verts, counted from the end of the block:

    A_i^(v) = { j <= i : j // l = i // l }  ∪  { j < a·l : l - (v+1)c <= j mod l < l - v c }

v = 0 is :func:`theorylab.sparse.fixed` (l, c) (the last c columns).  The head -> sub-block
rule (1 + h mod num_verts sub-blocks from the end) is the one of widely used block-sparse
implementations of this pattern (e.g. DeepSpeed's ``num_different_global_patterns``).
Every head has the same count as fixed(l, c): nnz(n) = Σ_i (i mod l + 1) + (i // l)·c.
Requires num_verts · c <= l.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._patterns_validate import _int, _length
from .patterns import Pattern
from .patterns_counts import fixed_total

__all__ = ["FixedVert", "fixed_vert", "fixed_per_head"]


@dataclass(frozen=True, repr=False)
class FixedVert(Pattern):
    """Fixed pattern whose summary columns are sub-block ``vert`` (0 = the last c columns)."""

    l: int
    c: int
    vert: int

    @property
    def name(self) -> str:
        return f"fixed_vert(l={self.l}, c={self.c}, vert={self.vert})"

    def _lo(self) -> int:
        return self.l - (self.vert + 1) * self.c  # first summary column within a block

    def _row(self, i, n):
        l, c, a = self.l, self.c, i // self.l
        summary = (np.arange(a, dtype=np.int64)[:, None] * l + np.arange(self._lo(), self._lo() + c)[None]).reshape(-1)
        return np.concatenate([summary, np.arange(a * l, i + 1, dtype=np.int64)])

    def nnz(self, n) -> int:
        return fixed_total(_length(n), self.l, self.c)

    def _mask(self, n):
        i, j = np.arange(n, dtype=np.int64)[:, None], np.arange(n, dtype=np.int64)[None, :]
        col = j % self.l
        summary = (col >= self._lo()) & (col < self._lo() + self.c)
        return (j <= i) & ((j // self.l == i // self.l) | summary)


def fixed_vert(l, c, vert=0) -> FixedVert:
    """Fixed pattern with block length ``l`` and summary sub-block ``vert`` of width ``c``."""
    l = _int("l", l, 1, why="block length")
    c = _int("c", c, 1, l, why=f"summary width (<= l = {l})")
    vert = _int("vert", vert, 0, why="sub-block index")
    if (vert + 1) * c > l:
        raise ValueError(f"sub-block vert = {vert} of width c = {c} does not fit in a block of l = {l}: "
                         f"need (vert + 1) * c <= l")
    return FixedVert(l, c, vert)


def fixed_per_head(l, c, num_verts, heads) -> tuple[FixedVert, ...]:
    """One pattern per head: head h uses sub-block h mod ``num_verts`` (num_verts · c <= l)."""
    num_verts = _int("num_verts", num_verts, 1, why="number of summary sub-blocks")
    heads = _int("heads", heads, 1, why="number of heads")
    l = _int("l", l, 1, why="block length")
    c = _int("c", c, 1, l, why=f"summary width (<= l = {l})")
    if num_verts * c > l:
        raise ValueError(f"num_verts * c = {num_verts} * {c} must be <= l = {l} (the sub-blocks tile one block)")
    return tuple(fixed_vert(l, c, h % num_verts) for h in range(heads))
