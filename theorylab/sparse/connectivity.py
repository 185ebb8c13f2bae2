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

Claims (in :mod:`theorylab.sparse.connectivity_claims`): ``sparse.two-hop-coverage``
(strided and fixed), ``sparse.bigbird-diameter``, ``sparse.power-receptive-field``.

Shapes: masks (n, n) bool; reach vectors (n,) bool.
"""

from __future__ import annotations

import numpy as np

from .patterns import Pattern

__all__ = ["reach_within", "uncovered_pairs", "pairs_beyond_two_hops", "receptive_field", "field_stats"]

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
