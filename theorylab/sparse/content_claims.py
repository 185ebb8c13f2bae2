"""Claims of content-based selection: MoBA's gate, routing to the nearest centroid, routing's cost.

Statement, selection rules and glossary: :mod:`theorylab.sparse.content`.  Every check
compares the library against brute-force references written here with plain loops
(:func:`moba_brute`, :func:`routing_brute`): they recompute the selection from its
definition and the softmax over exactly the selected keys, and share no code with the
library beyond the documented seeded draw of the initial centroids.

1. ``sparse.moba-top-k-gate`` (#5): the gate :func:`~theorylab.sparse.moba_select` keeps,
   for every query, its own block and the ``topk`` earlier blocks with the largest
   s_ib = <q_i, mean of block b's keys> (part ``gate``: mismatched (query, block) entries,
   tolerance 0), and :func:`~theorylab.sparse.moba_attention` on every backend equals
   attention over exactly those blocks, the own block causally (float64, 1e-10).
   Control, the weakest of two near misses: the gate sorted the wrong way (lowest scores),
   and the top-k earlier blocks without the current block (the query keeps only itself).
2. ``sparse.routing-nearest-centroid`` (#17): :func:`~theorylab.sparse.routing_clusters`
   puts every query and key in the cluster of its nearest centroid after ``iters`` Lloyd
   steps from the seeded start (part ``assign``: mismatches, tolerance 0; part
   ``centroids``: float64 1e-10), and :func:`~theorylab.sparse.routing_attention` on every
   backend equals attention over the same-cluster earlier keys plus the diagonal (1e-10).
   Control, the weakest of: the farthest centroid; keys routed with their query's cluster.
3. ``sparse.routing-cost-exponent`` (#17): with C = ⌈√n⌉ clusters the attention entries
   Σ_i |A_i| (the library counter :func:`~theorylab.sparse.routing_row_counts`, equal to a
   brute-force enumeration at small n: part ``counter``) grow as n^1.5 over n ∈ [2^8, 2^14]
   (64×; q, k standard normal, d = 8).
   Band, derived.  The count is a n^1.5 + b n: a >= 1/2 (Cauchy-Schwarz on the cluster
   masses, Σ p_c² >= 1/C), and b collects the diagonal (<= 1 per row) and the k-means
   imbalance of √n-point clusters (relative excess ∝ n^{-1/2}); b measured 1.0 to 1.8,
   bounded here by 2.  The local slope then lies in [1.5 − b/(2(a√n0 + b)), 1.5] =
   [1.4, 1.5] at n0 = 2^8, and so does the least-squares slope (a positive-weighted mean of
   local slopes): ``ROUTING_EXPECTED`` = 1.45, plus 0.01 for the sampling scatter of the
   count (measured slope spread +-0.005): ``ROUTING_BAND`` = 0.06.  A quadratic term
   reaching 25 % of the law at 2^14 lifts the slope to >= 1.52 and is rejected.
   Control, a log factor: C = ⌈√n / log2 n⌉ clusters (n^1.5 log n).
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict, slope_verdict
from ..claims import Claim, Paper, Verdict, register
from .content import ExplicitPattern, moba_attention, moba_scores, moba_select, routing_attention, routing_centroids, \
    routing_clusters, routing_row_counts
from .sparse_attention import attention, make_inputs
from .sparse_attention_claims import LARGE_LOGITS

__all__ = ["moba_brute", "routing_brute", "ROUTING_EXPECTED", "ROUTING_BAND", "ROUTING_RANGE"]

ROUTING = Paper("Efficient Content-Based Sparse Attention with Routing Transformers", 2020, "2003.05997", index=17)
MOBA = Paper("MoBA: Mixture of Block Attention for Long-Context LLMs", 2025, "2502.13189", index=5)

ROUTING_EXPECTED = 1.45
ROUTING_BAND = 0.06
ROUTING_RANGE = (2**8, 2**14)
ROUTING_DIM = 8


# ---------------------------------------------------------------------------------------
# brute-force references (loops)
# ---------------------------------------------------------------------------------------
def _softmax_rows(q, k, v, keys_of, scale):
    """out_i = Σ_{j ∈ keys_of(i)} e^{s_ij − max} v_j / Σ e^{s_ij − max}, with loops. (n, dv)"""
    n, dv = len(q), len(v[0])
    out = np.zeros((n, dv))
    for i in range(n):
        keys = keys_of(i)
        s = [scale * sum(a * b for a, b in zip(q[i], k[j])) for j in keys]
        top = max(s)
        w = [math.exp(x - top) for x in s]
        z = sum(w)
        for e in range(dv):
            out[i, e] = sum(wj * v[j][e] for wj, j in zip(w, keys)) / z
    return out


def moba_brute(q, k, v, block: int, topk: int, scale=None):
    """(selected blocks per query, output (n, dv)) of MoBA on one head, by loops."""
    q, k, v = (np.asarray(a, dtype=np.float64).tolist() for a in (q, k, v))
    n, d = len(q), len(q[0])
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    chosen = []
    for i in range(n):
        cur = i // block
        score = {}
        for b in range(cur):  # earlier blocks are complete: B keys each
            keys = range(b * block, (b + 1) * block)
            mean = [sum(k[j][e] for j in keys) / block for e in range(d)]
            score[b] = sum(q[i][e] * mean[e] for e in range(d))
        best = sorted(score, key=lambda b: (-score[b], b))[:topk]
        chosen.append(sorted(best) + [cur])
    keys_of = lambda i: [j for b in chosen[i] for j in range(b * block, min((b + 1) * block, i + 1))]  # noqa: E731
    return chosen, _softmax_rows(q, k, v, keys_of, scale)


def _unit_list(x):
    norm = math.sqrt(sum(a * a for a in x))
    return [a / norm for a in x]


def _nearest(x, mu):
    dist = [sum((a - b) ** 2 for a, b in zip(x, m)) for m in mu]
    return min(range(len(mu)), key=lambda c: (dist[c], c))


def routing_kmeans_brute(q, k, clusters: int, seed: int, iters: int):
    """(centroids, query clusters, key clusters) by loops: Lloyd steps on the unit sphere from
    the points at ``default_rng(seed).choice(2n, C, replace=False)``."""
    pts = [_unit_list(r) for r in np.asarray(q, dtype=np.float64).tolist() + np.asarray(k, dtype=np.float64).tolist()]
    init = np.random.default_rng(seed).choice(len(pts), size=min(clusters, len(pts)), replace=False)
    mu = [list(pts[int(t)]) for t in init]
    for _ in range(iters):
        assign = [_nearest(x, mu) for x in pts]
        for c in range(len(mu)):
            members = [x for x, a in zip(pts, assign) if a == c]
            mean = [sum(col) / len(members) for col in zip(*members)] if members else []
            if any(m != 0.0 for m in mean):  # empty clusters and zero means keep their centroid
                mu[c] = _unit_list(mean)
    assign = [_nearest(x, mu) for x in pts]
    n = len(pts) // 2
    return np.array(mu), assign[:n], assign[n:]


def routing_brute(q, k, v, clusters: int, seed: int, iters: int = 5, scale=None):
    """(centroids, query clusters, key clusters, output (n, dv)) of routing attention on one head."""
    mu, cq, ck = routing_kmeans_brute(q, k, clusters, seed, iters)
    d = np.asarray(q).shape[1]
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    keys_of = lambda i: [j for j in range(i + 1) if ck[j] == cq[i] or j == i]  # noqa: E731
    out = _softmax_rows(*(np.asarray(a, dtype=np.float64).tolist() for a in (q, k, v)), keys_of, scale)
    return mu, cq, ck, out


# ---------------------------------------------------------------------------------------
# shared: per-backend outputs at two logit scales
# ---------------------------------------------------------------------------------------
def _draw(rng, size):
    n = int(rng.integers(24, (72 if size == "quick" else 200) + 1))
    return {"batch": 1, "heads": 2, "length": n, "head_dim": int(rng.choice([2, 3, 5, 8])), "value_dim": int(rng.choice([1, 3]))}


def _large(rng, x):
    """q rescaled so that the largest |logit| is drawn in LARGE_LOGITS (the selection is scale invariant)."""
    s = np.abs(np.matmul(x["q"], np.swapaxes(x["k"], -1, -2))).max() / math.sqrt(x["q"].shape[-1])
    return {**x, "q": x["q"] * (rng.uniform(*LARGE_LOGITS) / max(float(s), 1e-3))}


def _weakest(verdicts: dict) -> Verdict:
    """A control is accepted if any near miss passes: the one with the smallest error."""
    name, v = min(verdicts.items(), key=lambda kv: (kv[1].holds is False, kv[1].error))
    return Verdict(v.holds, v.error, v.tolerance, backend=name, sizes=v.sizes,
                   detail=f"weakest of {len(verdicts)} near misses: {name}: {v.detail}")


def _variant_output(x, masks):
    """attention (ref) of each head over its own (wrong) mask: (1, H, n, dv)."""
    return np.concatenate([attention(x["q"][:, h : h + 1], x["k"][:, h : h + 1], x["v"][:, h : h + 1],
                                     ExplicitPattern(m), backend="ref") for h, m in enumerate(masks)], axis=1)


# ---------------------------------------------------------------------------------------
# 1. MoBA
# ---------------------------------------------------------------------------------------
def _moba_setup(rng, size):
    sizes = _draw(rng, size)
    n = sizes["length"]
    block = int(rng.integers(2, n // 4 + 1))  # at least 4 blocks
    nb = -(-n // block)
    topk = int(rng.integers(1, nb - 1))  # 1 <= topk <= nb - 2: later queries must choose
    return sizes, block, topk


def _moba_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    sizes, block, topk = _moba_setup(rng, size)
    n, H = sizes["length"], sizes["heads"]
    backends = check_backends(("ref", "numba", "torch"))
    x1 = make_inputs(rng, **sizes)
    gate_err, outs = 0, {b: [] for b in backends}
    for label, x in (("x1", x1), ("large", _large(rng, x1))):
        ref = np.zeros((1, H, n, sizes["value_dim"]))
        for h in range(H):
            chosen, ref[0, h] = moba_brute(x["q"][0, h], x["k"][0, h], x["v"][0, h], block, topk)
            truth = np.zeros((n, -(-n // block)), dtype=bool)
            for i, bs in enumerate(chosen):
                truth[i, bs] = True
            gate_err += int(np.count_nonzero(moba_select(x["q"][0, h], x["k"][0, h], block, topk) != truth))
        for b in backends:
            out = call_backend(moba_attention, b, x["q"], x["k"], x["v"], block, topk)
            outs[b].append(identity_verdict(out, ref, dtype=np.float64, backend=b, sizes=sizes,
                                            what=f"moba_attention[{b}] vs brute force, B={block} topk={topk}, logits {label}"))
    parts = {"gate": Verdict.from_error(gate_err, 0.0, backend="gate", sizes=sizes,
                                        detail=f"moba_select vs brute-force top-{topk} + own block: {gate_err} mismatches")}
    for b, vs in outs.items():
        worst = max(vs, key=lambda v: (not v.holds, v.error))
        parts[b] = Verdict(all(v.holds for v in vs), worst.error, worst.tolerance, backend=b, sizes=sizes, detail=worst.detail)
    return Verdict.combine(parts, sizes={**sizes, "block": block, "topk": topk})


def _moba_wrong_masks(q, k, block, topk, how):
    s = moba_scores(q, k, block)
    n = s.shape[0]
    own = np.arange(n) // block
    jb = np.arange(n) // block
    m = np.eye(n, dtype=bool)
    for i in range(n):
        if how == "lowest":  # gate sorted the wrong way: the lowest-scoring earlier blocks
            pick = list(np.argsort(s[i, : own[i]], kind="stable")[:topk]) + [own[i]]
        else:  # top-k without the current block (the query keeps only itself from it)
            pick = list(np.argsort(-s[i, : own[i]], kind="stable")[:topk])
        m[i] |= np.isin(jb, pick) & (np.arange(n) <= i)
    return m


def _moba_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    sizes, block, topk = _moba_setup(rng, size)
    x = make_inputs(rng, **sizes)
    H, n = sizes["heads"], sizes["length"]
    ref = np.stack([moba_brute(x["q"][0, h], x["k"][0, h], x["v"][0, h], block, topk)[1] for h in range(H)])[None]
    vs = {}
    for how, what in (("lowest", "lowest-scoring blocks"), ("unforced", "top-k without the current block")):
        masks = [_moba_wrong_masks(x["q"][0, h], x["k"][0, h], block, topk, how) for h in range(H)]
        vs[what] = identity_verdict(_variant_output(x, masks), ref, dtype=np.float64, sizes={**sizes, "block": block, "topk": topk},
                                    what=f"{what} vs brute force, B={block} topk={topk}, n={n}")
    return _weakest(vs)


MOBA_CLAIM = register(
    Claim(
        id="sparse.moba-top-k-gate",
        paper=MOBA,
        statement="MoBA's gate keeps, for every query, its own block and the top-k earlier key blocks by "
        "s = <q_i, mean of the block's keys> (exactly, against a brute-force selection), and moba_attention on every "
        "backend equals softmax attention over exactly those blocks, the own block causally, against a brute-force "
        "reference written with loops, at logit scale 1 and |logits| up to 800-2000 (float64, 1e-10).",
        kind="identity",
        check=_moba_check,
        negative_control=_moba_control,
        module="theorylab/sparse/content_claims.py",
        test="tests/sparse/test_content.py",
        samples=3,
        controls="weakest of: the gate sorted the wrong way (lowest scores); top-k without the current block",
    )
)


# ---------------------------------------------------------------------------------------
# 2. Routing: nearest centroid
# ---------------------------------------------------------------------------------------
def _routing_setup(rng, size):
    # C >= 3: with two clusters the farthest centroid is the nearest one relabelled (the same partition)
    return _draw(rng, size), int(rng.integers(3, 9)), int(rng.integers(0, 2**31)), int(rng.integers(1, 6))


def _routing_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    sizes, C, seed, iters = _routing_setup(rng, size)
    n, H = sizes["length"], sizes["heads"]
    backends = check_backends(("ref", "numba", "torch"))
    x1 = make_inputs(rng, **sizes)
    assign_err, mu_parts, outs = 0, [], {b: [] for b in backends}
    for label, x in (("x1", x1), ("large", _large(rng, x1))):
        ref = np.zeros((1, H, n, sizes["value_dim"]))
        for h in range(H):
            q, k = x["q"][0, h], x["k"][0, h]
            mu, cq, ck, ref[0, h] = routing_brute(q, k, x["v"][0, h], C, seed, iters)
            lq, lk = routing_clusters(q, k, C, seed, iters)
            assign_err += int(np.count_nonzero(lq != cq) + np.count_nonzero(lk != ck))
            mu_parts.append(identity_verdict(routing_centroids(q, k, C, seed, iters), mu, dtype=np.float64, backend="centroids",
                                             what="routing_centroids vs brute-force Lloyd steps"))
        for b in backends:
            out = call_backend(routing_attention, b, x["q"], x["k"], x["v"], C, seed=seed, iters=iters)
            outs[b].append(identity_verdict(out, ref, dtype=np.float64, backend=b, sizes=sizes,
                                            what=f"routing_attention[{b}] vs brute force, C={C}, logits {label}"))
    parts = {"assign": Verdict.from_error(assign_err, 0.0, backend="assign", sizes=sizes,
                                          detail=f"routing_clusters vs brute-force nearest centroid: {assign_err} mismatches"),
             "centroids": max(mu_parts, key=lambda v: (not v.holds, v.error))}
    for b, vs in outs.items():
        worst = max(vs, key=lambda v: (not v.holds, v.error))
        parts[b] = Verdict(all(v.holds for v in vs), worst.error, worst.tolerance, backend=b, sizes=sizes, detail=worst.detail)
    return Verdict.combine(parts, sizes={**sizes, "clusters": C, "iters": iters})


def _routing_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    sizes, C, seed, iters = _routing_setup(rng, size)
    x = make_inputs(rng, **sizes)
    H, n = sizes["heads"], sizes["length"]
    ref = np.stack([routing_brute(x["q"][0, h], x["k"][0, h], x["v"][0, h], C, seed, iters)[3] for h in range(H)])[None]
    causal = np.tril(np.ones((n, n), dtype=bool))
    variants = {}
    for how in ("farthest centroid", "keys routed with their query's cluster"):
        masks = []
        for h in range(H):
            q, k = x["q"][0, h], x["k"][0, h]
            mu = routing_centroids(q, k, C, seed, iters)
            if how == "farthest centroid":
                cq, ck = (np.argmin(_unit_np(a) @ mu.T, axis=1) for a in (q, k))
            else:
                cq = routing_clusters(q, k, C, seed, iters)[0]
                ck = cq
            masks.append((causal & (cq[:, None] == ck[None, :])) | np.eye(n, dtype=bool))
        variants[how] = identity_verdict(_variant_output(x, masks), ref, dtype=np.float64, sizes={**sizes, "clusters": C},
                                         what=f"{how} vs brute force, C={C}, n={n}")
    return _weakest(variants)


def _unit_np(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


ROUTING_CLAIM = register(
    Claim(
        id="sparse.routing-nearest-centroid",
        paper=ROUTING,
        statement="Routing attention puts every query and key in the cluster of its nearest k-means centroid (shared "
        "centroids, Lloyd steps from a seeded start; exactly, against a brute-force k-means with loops), and "
        "routing_attention on every backend equals softmax attention over the same-cluster earlier keys plus the "
        "diagonal, against a brute-force reference, at logit scale 1 and |logits| up to 800-2000 (float64, 1e-10).",
        kind="identity",
        check=_routing_check,
        negative_control=_routing_control,
        module="theorylab/sparse/content_claims.py",
        test="tests/sparse/test_content.py",
        samples=3,
        controls="weakest of: the farthest centroid; keys routed with their query's cluster",
    )
)


# ---------------------------------------------------------------------------------------
# 3. Routing: cost with √n clusters
# ---------------------------------------------------------------------------------------
def routing_clusters_for(n: int, *, wrong: bool = False) -> int:
    """C = ⌈√n⌉ (the claim), or ⌈√n / log2 n⌉ (its control)."""
    root = math.isqrt(n - 1) + 1
    return max(1, -(-root // max(1, (n - 1).bit_length()))) if wrong else root


def routing_cost_curve(ns, rng: np.random.Generator, *, wrong: bool = False) -> list[int]:
    """Σ_i |A_i| from the library counter :func:`routing_row_counts` at each n (q, k standard normal, d = 8)."""
    ys = []
    for n in (int(v) for v in ns):
        q, k = rng.standard_normal((n, ROUTING_DIM)), rng.standard_normal((n, ROUTING_DIM))
        ys.append(int(routing_row_counts(q, k, routing_clusters_for(n, wrong=wrong), int(rng.integers(0, 2**31))).sum()))
    return ys


def _routing_cost(wrong: bool):
    def run(rng: np.random.Generator, size: str = "quick") -> Verdict:
        k = 7 if size == "quick" else 15
        lo, hi = ROUTING_RANGE
        inner = np.exp(rng.uniform(np.log(lo), np.log(hi), size=k - 2))
        ns = np.unique(np.concatenate([[lo, hi], np.round(inner)]).astype(np.int64))
        ys = routing_cost_curve(ns, rng, wrong=wrong)
        what = f"library routing_row_counts summed, C = {'ceil(sqrt n / log2 n)' if wrong else 'ceil(sqrt n)'}"
        fit = slope_verdict(ns, ys, expected=ROUTING_EXPECTED, band=ROUTING_BAND, backend="fit", what=what)
        m = int(rng.integers(16, 49))  # the counter against enumeration at a small n
        q, kk = rng.standard_normal((m, ROUTING_DIM)), rng.standard_normal((m, ROUTING_DIM))
        C, seed = routing_clusters_for(m, wrong=wrong), int(rng.integers(0, 2**31))
        _, cq, ck = routing_kmeans_brute(q, kk, C, seed, 5)
        truth = np.array([sum(1 for j in range(i + 1) if ck[j] == cq[i] or j == i) for i in range(m)])
        err = int(np.abs(routing_row_counts(q, kk, C, seed) - truth).sum())
        counter = Verdict.from_error(err, 0.0, backend="counter", detail=f"routing_row_counts vs enumeration at n={m}: {err}")
        return Verdict.combine({"fit": fit, "counter": counter}, sizes=fit.sizes)

    return run


ROUTING_COST_CLAIM = register(
    Claim(
        id="sparse.routing-cost-exponent",
        paper=ROUTING,
        statement="Routing attention with C = ceil(sqrt n) k-means clusters keeps O(n^1.5) attention entries: the "
        "library's count (= enumeration at small n) has log-log slope in [1.4, 1.5] over n in [2^8, 2^14] "
        f"(fitted {ROUTING_EXPECTED} +- {ROUTING_BAND}, band derived from the a n^1.5 + b n law).",
        kind="complexity",
        check=_routing_cost(False),
        negative_control=_routing_cost(True),
        module="theorylab/sparse/content_claims.py",
        test="tests/sparse/test_content.py",
        samples=2,
        controls="C = ceil(sqrt n / log2 n) clusters, a log factor too few: n^1.5 log n",
    )
)
