"""Content-based sparsity that degenerates to full attention: Routing and MoBA.

Papers: #17 Roy, Saffar, Vaswani & Grangier, "Efficient Content-Based Sparse Attention with
Routing Transformers" (2020, arXiv:2003.05997): queries and keys are assigned to the
nearest of C shared k-means centroids and a query attends to the (earlier) keys of its own
cluster -- with C = 1 cluster this is full causal attention.  #5 Lu et al., "MoBA:
Mixture of Block Attention for Long-Context LLMs" (2025, arXiv:2502.13189): keys are split
into blocks of B tokens; query i scores each earlier block by s = <q_i, mean of the block's
keys>, attends to its own block (causally) and to the top-k earlier blocks -- with k >= the
number of blocks this is full causal attention.

Masks (one head; q, k (n, d)):

    routing:  A_i = {j <= i : c(q_i) = c(k_j)} ∪ {i}      c(x) = argmin_c ||x/|x| − μ_c||
    MoBA:     A_i = {j <= i : ⌊j/B⌋ = ⌊i/B⌋} ∪ ⋃_{b ∈ topk_i} block b,
              topk_i = the k earlier blocks b < ⌊i/B⌋ with the largest <q_i, k̄_b>

(the diagonal keeps every routing row non-empty: a query alone in its cluster attends to
itself).  Centroids: ``iters`` Lloyd steps on the unit-normalized queries and keys, started
from points drawn with ``seed``.

Claims ``sparse.routing-one-cluster-is-full`` and ``sparse.moba-all-blocks-is-full``:
attention over these masks (through :func:`theorylab.sparse.attention` and
:class:`ExplicitPattern`) equals full causal attention within the float64 policy when
C = 1, resp. k = ⌈n/B⌉; negative controls C = 4, resp. k = ⌈n/B⌉ − 2.

Shapes: q, k (n, d); masks (n, n) bool.
"""

from __future__ import annotations

import numpy as np

from ..checks import identity_verdict
from ..claims import Claim, Paper, Verdict, register
from .sparse_attention import attention, attention_ref, make_inputs
from .patterns import Pattern, _int, full_causal

__all__ = ["ExplicitPattern", "routing_mask", "moba_mask"]

ROUTING = Paper("Efficient Content-Based Sparse Attention with Routing Transformers", 2020, "2003.05997", index=17)
MOBA = Paper("MoBA: Mixture of Block Attention for Long-Context LLMs", 2025, "2502.13189", index=5)


class ExplicitPattern(Pattern):
    """A pattern given by its (n, n) mask: causal, with the diagonal, fixed length n."""

    def __init__(self, mask, name: str = "explicit"):
        m = np.asarray(mask)
        if m.dtype != bool or m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] == 0:
            raise ValueError(f"mask must be a non-empty square bool array; got dtype {m.dtype}, shape {m.shape}")
        if np.triu(m, 1).any() or not m.diagonal().all():
            raise ValueError("mask must be causal (no j > i) and hold its diagonal (every query attends to itself)")
        self._mask, self.name = m.copy(), f"{name}(n={m.shape[0]})"

    def _length(self, n) -> int:
        n = _int("n", n, 1, why="sequence length")
        if n != self._mask.shape[0]:
            raise ValueError(f"n must equal the mask's length {self._mask.shape[0]}; got {n}")
        return n

    def _row(self, i, n):
        return np.flatnonzero(self._mask[i]).astype(np.int64)

    def row(self, i, n):
        return super().row(i, self._length(n))

    def nnz(self, n) -> int:
        return int(self._mask[: self._length(n)].sum())

    def mask(self, n):
        return self._mask[: self._length(n), : n].copy()

    def csr(self, n):
        self._length(n)
        return super().csr(n)


def _unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def routing_mask(q, k, clusters: int, seed: int, iters: int = 5) -> np.ndarray:
    """Routing Transformer mask with ``clusters`` shared k-means centroids (see above)."""
    clusters = _int("clusters", clusters, 1)
    x = _unit(np.concatenate([q, k]))  # (2n, d): shared centroids for queries and keys
    rng = np.random.default_rng(seed)
    mu = x[rng.choice(x.shape[0], size=min(clusters, x.shape[0]), replace=False)]  # (C, d)
    for _ in range(iters):
        assign = np.argmax(x @ mu.T, axis=1)  # nearest centroid on the sphere
        for c in range(mu.shape[0]):
            if np.any(assign == c):
                mu[c] = _unit(x[assign == c].mean(axis=0))
    assign = np.argmax(x @ mu.T, axis=1)
    n = q.shape[0]
    cq, ck = assign[:n], assign[n:]
    same = cq[:, None] == ck[None, :]
    return np.tril(same) | np.eye(n, dtype=bool)


def moba_mask(q, k, block: int, topk: int) -> np.ndarray:
    """MoBA mask: own block (causal) plus the ``topk`` best-scoring earlier blocks."""
    block, topk = _int("block", block, 1), _int("topk", topk, 0)
    n = q.shape[0]
    nb = -(-n // block)
    means = np.stack([k[b * block : (b + 1) * block].mean(axis=0) for b in range(nb)])  # (nb, d)
    gate = q @ means.T  # (n, nb)
    qb = np.arange(n) // block
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    m = (j <= i) & (j // block == qb[:, None])
    for t in range(n):
        past = qb[t]
        if past and topk:
            chosen = np.argsort(-gate[t, :past], kind="stable")[:topk]  # (<= topk,)
            m[t, np.isin(np.arange(n) // block, chosen)] = True
    return m


def _one_head(rng, size):
    n = int(rng.integers(24 if size == "quick" else 48, (96 if size == "quick" else 256) + 1))
    d = int(rng.choice([2, 3, 5, 8]))
    return make_inputs(rng, length=n, head_dim=d), n, d


def _full_verdict(x, mask, what, sizes):
    pattern = ExplicitPattern(mask, what)
    out = attention(x["q"], x["k"], x["v"], pattern, backend="numba")
    ref = attention_ref(x["q"], x["k"], x["v"], full_causal())
    return identity_verdict(out, ref, dtype=np.float64, backend="numba", sizes=sizes, what=f"{pattern} vs full causal")


def _routing(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        x, n, d = _one_head(rng, size)
        C = 4 if wrong else 1
        mask = routing_mask(x["q"][0, 0], x["k"][0, 0], C, int(rng.integers(0, 2**31)))
        return _full_verdict(x, mask, f"routing C={C}", {"n": n, "head_dim": d, "clusters": C})

    return run


def _moba(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        x, n, d = _one_head(rng, size)
        block = int(rng.integers(2, n // 3 + 1))  # at least 3 blocks
        nb = -(-n // block)
        topk = nb - 2 if wrong else nb
        mask = moba_mask(x["q"][0, 0], x["k"][0, 0], block, topk)
        return _full_verdict(x, mask, f"moba B={block} k={topk}", {"n": n, "head_dim": d, "block": block, "topk": topk})

    return run


ROUTING_CLAIM = register(
    Claim(
        id="sparse.routing-one-cluster-is-full",
        paper=ROUTING,
        statement="Routing attention (queries and keys routed to shared k-means centroids, attention within a cluster, "
        "causal) with a single cluster equals full causal attention (float64, 1e-10).",
        kind="identity",
        check=_routing(False),
        negative_control=_routing(True),
        module="theorylab/sparse/content.py",
        test="tests/sparse/test_content.py",
        controls="four clusters instead of one",
    )
)

MOBA_CLAIM = register(
    Claim(
        id="sparse.moba-all-blocks-is-full",
        paper=MOBA,
        statement="MoBA (own block plus the top-k earlier key blocks by <q, mean block key>) with k = number of blocks "
        "equals full causal attention (float64, 1e-10).",
        kind="identity",
        check=_moba(False),
        negative_control=_moba(True),
        module="theorylab/sparse/content.py",
        test="tests/sparse/test_content.py",
        controls="top-k with k = (number of blocks) - 2",
    )
)
