"""Content-based sparse attention: Routing Transformer and MoBA.

Papers: #17 Roy, Saffar, Vaswani & Grangier, "Efficient Content-Based Sparse Attention with
Routing Transformers" (2020, arXiv:2003.05997): queries and keys are routed to the nearest
of C shared k-means centroids, and a query attends to the (earlier) keys of its own
cluster; with C = √n balanced clusters the cost is O(n^1.5 d) instead of O(n² d).
#5 Lu et al., "MoBA: Mixture of Block Attention for Long-Context LLMs" (2025,
arXiv:2502.13189): keys are split into blocks of B tokens; query i scores each earlier
block by s_ib = <q_i, k̄_b> (k̄_b the mean of the block's keys), always attends to its own
block (causally), and to the ``topk`` earlier blocks with the largest scores.

Selection and masks (one head; q, k (n, d)):

    routing:  μ = k-means centroids (below);  c(x) = argmin_c ||x/|x| − μ_c||  (= argmax_c <x/|x|, μ_c>)
              A_i = {j <= i : c(k_j) = c(q_i)} ∪ {i}
    MoBA:     gate_i = {⌊i/B⌋} ∪ topk_i,  topk_i = the ``topk`` blocks b < ⌊i/B⌋ with the largest s_ib
              (ties: the lower block index first)
              A_i = {j <= i : ⌊j/B⌋ ∈ gate_i}

The diagonal keeps every routing row non-empty (a query alone in its cluster attends to
itself).  Centroids: ``iters`` Lloyd steps on the 2n unit-normalized queries and keys
(assign each point to the nearest centroid, move each cluster's centroid to the normalized
mean of its points; a cluster that is empty, or whose mean is zero, keeps its centroid), started from the points at indices
``numpy.random.default_rng(seed).choice(2n, C, replace=False)``.  The paper's MoBA k
counts the current block: k = ``topk`` + 1.

Counts.  :func:`routing_row_counts` gives |A_i| from the assignments alone (no (n, n)
mask; O(n log n)): the cost in attention scores of routing is their sum.

Public functions: :func:`routing_centroids`, :func:`routing_assign`,
:func:`routing_clusters`, :func:`routing_mask`, :func:`routing_row_counts`,
:func:`routing_attention`; :func:`moba_scores`, :func:`moba_select`, :func:`moba_mask`,
:func:`moba_attention`; :class:`ExplicitPattern` (attention over any causal mask).
Claims: :mod:`theorylab.sparse.content_claims`.

Glossary (code -> paper): clusters -> C (k in #17), centroids -> μ, block -> B,
topk -> k − 1 (#5), moba_scores -> s, moba_select -> the gate g.

Shapes: q, k (n, d) for the selection functions; q, k (batch, heads, n, d) and v
(batch, heads, n, dv) for the attention functions; masks (n, n) bool; gate (n, ⌈n/B⌉) bool.
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import to_numpy
from .patterns import Pattern, _int
from .sparse_attention import attention

__all__ = [
    "ExplicitPattern",
    "routing_centroids",
    "routing_assign",
    "routing_clusters",
    "routing_mask",
    "routing_row_counts",
    "routing_attention",
    "moba_scores",
    "moba_select",
    "moba_mask",
    "moba_attention",
]


class ExplicitPattern(Pattern):
    """A pattern given by its (n, n) mask: causal, with the diagonal, fixed length n."""

    def __init__(self, mask, name: str = "explicit"):
        m = np.asarray(mask)
        if m.dtype != bool or m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
            raise ValueError(f"mask must be a non-empty square bool array; got dtype {m.dtype}, shape {m.shape}")
        if np.triu(m, 1).any() or not m.diagonal().all():
            raise ValueError("mask must be causal (no j > i) and hold its diagonal (every query attends to itself)")
        self._full, self.name = m.copy(), f"{name}(n={m.shape[0]})"

    def _length(self, n) -> int:
        n = _int("n", n, 1, why="sequence length")
        if n != self._full.shape[0]:
            raise ValueError(f"n must equal the mask's length {self._full.shape[0]}; got {n}")
        return n

    def _row(self, i, n):
        return np.flatnonzero(self._full[i]).astype(np.int64)

    def row(self, i, n):
        return super().row(i, self._length(n))

    def nnz(self, n) -> int:
        return int(np.count_nonzero(self._full[: self._length(n)]))

    def _mask(self, n):
        return self._full[: self._length(n), :n].copy()

    def _csr(self, n):
        rows, cols = np.nonzero(self._full[: self._length(n)])  # row-major: rows ascending, keys sorted
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return indptr, cols.astype(np.int64)


def _qk(q, k) -> tuple[np.ndarray, np.ndarray]:
    """q, k as float64 (n, d) arrays of equal shape, finite; errors name the argument."""
    arrs = {}
    for name, a in (("q", q), ("k", k)):
        a = np.asarray(to_numpy(a), dtype=np.float64) if hasattr(a, "shape") else None
        if a is None:
            raise TypeError(f"{name} must be a numpy array or torch tensor of shape (n, d)")
        if a.ndim != 2 or 0 in a.shape:
            raise ValueError(f"{name} must have shape (n, d) with n, d >= 1; got {a.shape}")
        V.check_finite(name, a)
        arrs[name] = a
    if arrs["q"].shape != arrs["k"].shape:
        raise ValueError(f"k must have the shape of q {arrs['q'].shape}; got {arrs['k'].shape}")
    return arrs["q"], arrs["k"]


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


# ---------------------------------------------------------------------------------------
# Routing Transformer
# ---------------------------------------------------------------------------------------
def routing_assign(x, centroids) -> np.ndarray:
    """Nearest centroid of each row of ``x`` (m, d) on the unit sphere: argmax_c <x/|x|, μ_c>, (m,) int64."""
    return np.argmax(_unit(np.asarray(x, dtype=np.float64)) @ np.asarray(centroids, dtype=np.float64).T, axis=1).astype(np.int64)


def routing_centroids(q, k, clusters, seed, iters=5) -> np.ndarray:
    """Shared k-means centroids (C, d) of the unit-normalized queries and keys (see the module docstring)."""
    q, k = _qk(q, k)
    clusters, seed, iters = _int("clusters", clusters, 1), _int("seed", seed, 0), _int("iters", iters, 0)
    x = _unit(np.concatenate([q, k]))  # (2n, d)
    init = np.random.default_rng(seed).choice(x.shape[0], size=min(clusters, x.shape[0]), replace=False)
    mu = x[init]  # (C, d)
    for _ in range(iters):
        assign = routing_assign(x, mu)  # (2n,)
        sums = np.zeros_like(mu)
        np.add.at(sums, assign, x)  # (C, d): Σ of each cluster's points
        moved = np.linalg.norm(sums, axis=1) > 0  # empty clusters (and zero means) keep their centroid
        mu[moved] = _unit(sums[moved])  # the normalized mean (the count cancels in the normalization)
    return mu


def routing_clusters(q, k, clusters, seed, iters=5) -> tuple[np.ndarray, np.ndarray]:
    """Cluster of every query and every key, (n,) int64 each."""
    q, k = _qk(q, k)
    mu = routing_centroids(q, k, clusters, seed, iters)
    return routing_assign(q, mu), routing_assign(k, mu)


def routing_mask(q, k, clusters, seed, iters=5) -> np.ndarray:
    """Routing Transformer mask (n, n): same-cluster earlier keys, plus the diagonal."""
    cq, ck = routing_clusters(q, k, clusters, seed, iters)
    n = cq.size
    return np.tril(cq[:, None] == ck[None, :]) | np.eye(n, dtype=bool)


def routing_row_counts(q, k, clusters, seed, iters=5) -> np.ndarray:
    """|A_i| for every query, (n,) int64, from the assignments only (O(n log n), no mask)."""
    cq, ck = routing_clusters(q, k, clusters, seed, iters)
    n = cq.size
    pos = np.arange(n, dtype=np.int64)
    keys = np.sort(ck * n + pos)  # (n,): keys ordered by (cluster, position)
    same = np.searchsorted(keys, cq * n + pos, side="right") - np.searchsorted(keys, cq * n, side="left")
    return same + (ck != cq)  # keys j <= i of i's cluster, plus the diagonal when k_i lies elsewhere


def _per_head_attention(q, k, v, make_mask, name, scale, backend):
    """attention(q, k, v) with a mask built per (batch, head) from that head's q and k."""
    V.check_arrays({"q": q, "k": k, "v": v})
    for nm, a in (("q", q), ("k", k), ("v", v)):
        V.check_ndim(nm, a, 4, "(batch, heads, length, dim)")
    B, H = int(q.shape[0]), int(q.shape[1])
    qn, kn = to_numpy(q), to_numpy(k)
    rows = []
    for b in range(B):
        heads = []
        for h in range(H):
            pat = ExplicitPattern(make_mask(qn[b, h], kn[b, h]), name)
            heads.append(attention(q[b : b + 1, h : h + 1], k[b : b + 1, h : h + 1], v[b : b + 1, h : h + 1],
                                   pat, scale=scale, backend=backend))
        rows.append(heads)
    if isinstance(rows[0][0], np.ndarray):
        return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)
    import torch

    return torch.cat([torch.cat(r, dim=1) for r in rows], dim=0)


def routing_attention(q, k, v, clusters, *, seed, iters=5, scale=None, backend="auto"):
    """Routing attention: each head attends over :func:`routing_mask` of its own q, k.

    q, k (batch, heads, n, d), v (batch, heads, n, dv); backends as :func:`theorylab.sparse.attention`.
    """
    return _per_head_attention(q, k, v, lambda a, b: routing_mask(a, b, clusters, seed, iters), f"routing C={clusters}",
                               scale, backend)


# ---------------------------------------------------------------------------------------
# MoBA
# ---------------------------------------------------------------------------------------
def moba_scores(q, k, block) -> np.ndarray:
    """Gate scores s_ib = <q_i, mean of block b's keys>, (n, ⌈n/B⌉) float64 (every block, future ones too)."""
    q, k = _qk(q, k)
    block = _int("block", block, 1)
    n = q.shape[0]
    nb = -(-n // block)
    means = np.stack([k[b * block : (b + 1) * block].mean(axis=0) for b in range(nb)])  # (nb, d)
    return q @ means.T  # (n, nb)


def moba_select(q, k, block, topk) -> np.ndarray:
    """The gate (n, ⌈n/B⌉) bool: query i's own block plus its ``topk`` best-scoring earlier blocks."""
    topk = _int("topk", topk, 0)
    s = moba_scores(q, k, block)
    n, nb = s.shape
    own = np.arange(n) // int(block)  # (n,)
    gate = np.zeros((n, nb), dtype=bool)
    gate[np.arange(n), own] = True  # the current block is always routed
    for i in range(n):
        if own[i] and topk:
            chosen = np.argsort(-s[i, : own[i]], kind="stable")[:topk]  # (<= topk,) largest scores first
            gate[i, chosen] = True
    return gate


def moba_mask(q, k, block, topk) -> np.ndarray:
    """MoBA mask (n, n): keys j <= i whose block the gate selected."""
    gate = moba_select(q, k, block, topk)
    n = gate.shape[0]
    jb = np.arange(n) // int(block)
    return np.tril(gate[:, jb])


def moba_attention(q, k, v, block, topk, *, scale=None, backend="auto"):
    """MoBA attention: each head attends over :func:`moba_mask` of its own q, k.

    q, k (batch, heads, n, d), v (batch, heads, n, dv); backends as :func:`theorylab.sparse.attention`.
    """
    return _per_head_attention(q, k, v, lambda a, b: moba_mask(a, b, block, topk), f"moba B={block} k={topk}",
                               scale, backend)
