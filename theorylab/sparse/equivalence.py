"""Identity claims: every sparse-attention path equals dense masked softmax.

Statement (math and papers in :mod:`theorylab.sparse.sparse_attention`):

1. ``sparse.attention-is-masked-softmax`` -- for every pattern family, the ``"numba"``
   path (compressed rows) and the ``"torch"`` path equal the float64 reference
   out_i = Σ_{j ∈ Aᵢ} softmax_j(scale <q_i, k_j>) v_j within the float64 policy (1e-10).
   Negative control: the mask applied to the probabilities *after* a causal softmax
   (no renormalization over Aᵢ).
2. ``sparse.fold-and-merge-is-exact`` (#10, Sec. 4.3) -- for strided(l) and fixed(l, c) with
   any n (n not divisible by l included), folding into an l × ⌈n/l⌉ grid, attending densely
   to two *disjoint* parts of Aᵢ and merging with log-sum-exp equals the reference within
   1e-10, for both dense-block kernels.  Negative control: the same merge over the two
   sub-patterns A¹ᵢ and A²ᵢ as the paper writes them, which overlap (i − j ∈ {0, l} for
   strided, the own block's summary keys for fixed): overlapping keys count twice.

Sizes are drawn per instance (length 1 and lengths not divisible by l occur; head_dim
from {1, 2, 3, 5, 7, 8}).
"""

from __future__ import annotations

import numpy as np

from ..backends import numba_available
from ..checks import identity_verdict
from ..claims import Claim, Paper, Verdict, register
from .sparse_attention import attention, attention_ref, make_inputs
from .patterns import bigbird, dilated_window, fixed, full_causal, power_attention, sliding_window, strided, window_global

CHILD = Paper("Generating Long Sequences with Sparse Transformers", 2019, "1904.10509", index=10)
FAMILIES = ("strided", "fixed", "window", "dilated", "power", "window_global", "bigbird", "full")
_TOP = {"quick": 96, "full": 320}


def draw_pattern(rng: np.random.Generator, family: str | None = None, *, l_max: int = 12, proper: bool = False):
    """A pattern of ``family`` (drawn when None) with small random parameters.

    ``proper=True`` excludes the parameters that make strided / fixed equal to full
    causal attention (l = 1, c = l).
    """
    family = FAMILIES[int(rng.integers(len(FAMILIES)))] if family is None else family
    l = int(rng.integers(2 if proper else 1, l_max + 1))
    w = int(rng.integers(1, 9))
    if family == "strided":
        return strided(l)
    if family == "fixed":
        return fixed(l, int(rng.integers(1, l if proper else l + 1)))
    if family == "window":
        return sliding_window(w)
    if family == "dilated":
        return dilated_window(w, int(rng.integers(1, 4)))
    if family == "power":
        return power_attention()
    if family == "window_global":
        return window_global(w, int(rng.integers(0, 4)))
    if family == "bigbird":
        return bigbird(w, int(rng.integers(0, 3)), int(rng.integers(0, 4)), int(rng.integers(0, 2**31)))
    if family == "full":
        return full_causal()
    raise ValueError(f"family must be one of {FAMILIES}; got {family!r}")


def _draw_sizes(rng, size, min_length=1):
    return {
        "batch": int(rng.integers(1, 3)),
        "heads": int(rng.integers(1, 4)),
        "length": int(rng.integers(min_length, _TOP[size] + 1)),
        "head_dim": int(rng.choice([1, 2, 3, 5, 7, 8])),
        "value_dim": int(rng.choice([1, 3, 5, 8])),
    }


def _softmax_then_mask(q, k, v, pattern):
    """WRONG on purpose: causal softmax over all j <= i, then zero the entries outside Aᵢ."""
    n, d = q.shape[2], q.shape[3]
    s = np.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(d)
    s = np.where(np.tril(np.ones((n, n), dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True) * pattern.mask(n)
    return np.einsum("bhij,bhjd->bhid", p, v)


def _masked_softmax_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    pattern = draw_pattern(rng)
    sizes = _draw_sizes(rng, size)
    x = make_inputs(rng, **sizes)
    ref = attention_ref(x["q"], x["k"], x["v"], pattern)
    backends = ("numba", "torch") if numba_available() else ("torch",)
    verdicts = [
        identity_verdict(attention(x["q"], x["k"], x["v"], pattern, backend=b), ref, dtype=np.float64, backend=b,
                         sizes=sizes, what=f"{b} vs dense masked softmax, {pattern}")
        for b in backends
    ]
    worst = max(verdicts, key=lambda v: v.error)
    return Verdict(all(v.holds for v in verdicts), worst.error, worst.tolerance, backend="+".join(backends),
                   sizes=sizes, detail=worst.detail)


def _masked_softmax_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    # a pattern that really drops keys: not full (nor strided / fixed equal to it), window <= 8, length >= 24
    pattern = draw_pattern(rng, FAMILIES[int(rng.integers(len(FAMILIES) - 1))], l_max=6, proper=True)
    sizes = _draw_sizes(rng, size, min_length=24)
    x = make_inputs(rng, **sizes)
    ref = attention_ref(x["q"], x["k"], x["v"], pattern)
    return identity_verdict(_softmax_then_mask(x["q"], x["k"], x["v"], pattern), ref, dtype=np.float64, sizes=sizes,
                            what=f"mask after softmax, {pattern}")


MASKED_SOFTMAX_CLAIM = register(
    Claim(
        id="sparse.attention-is-masked-softmax",
        paper=CHILD,
        statement="For every pattern (strided, fixed, window, dilated, power, window+global, BigBird, full), sparse "
        "attention out_i = sum_{j in A_i} softmax_j(scale <q_i,k_j>) v_j computed by the numba (compressed rows) and "
        "torch paths equals dense attention with scores outside the pattern set to -inf (float64, 1e-10).",
        kind="identity",
        check=_masked_softmax_check,
        negative_control=_masked_softmax_control,
        experiment="sparse_walltime",
        module="theorylab/sparse/sparse_attention.py",
        test="tests/sparse/test_attention.py",
        controls="mask applied to the probabilities after a causal softmax (no renormalization over A_i)",
    )
)


# ---------------------------------------------------------------------------------------
# fold and merge
# ---------------------------------------------------------------------------------------
def _lse_part(q, k, v, allowed):
    """float64 softmax output and log-sum-exp over the keys in ``allowed`` (n, n)."""
    s = np.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(q.shape[-1])
    s = np.where(allowed, s, -np.inf)
    mx = s.max(-1, keepdims=True)
    p = np.exp(s - mx)
    z = p.sum(-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", p / z, v), (mx + np.log(z))[..., 0]


def _overlapping_merge(q, k, v, pattern):
    """WRONG on purpose: log-sum-exp merge of the paper's A¹ and A², which share keys."""
    n = q.shape[2]
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    l = pattern.l
    if pattern.name.startswith("strided"):
        a1, a2 = (0 <= i - j) & (i - j <= l), (j <= i) & ((i - j) % l == 0)
    else:
        a1, a2 = (j <= i) & (j // l == i // l), (j <= i) & (j % l >= l - pattern.c)
    o1, l1 = _lse_part(q, k, v, a1)
    has2 = a2.any(-1)  # rows with an empty A² keep their A¹ output
    o2, l2 = _lse_part(q, k, v, a2 | ~has2[:, None])
    l2 = np.where(has2, l2, -np.inf)
    lse = np.logaddexp(l1, l2)
    return o1 * np.exp(l1 - lse)[..., None] + o2 * np.exp(l2 - lse)[..., None]


def _fold_sizes(rng, size, min_length=1):
    sizes = _draw_sizes(rng, size, min_length)
    sizes["value_dim"] = sizes["head_dim"] if rng.random() < 0.5 else sizes["value_dim"]  # both torch kernels
    return sizes


def _fold_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    from ._torch_attention import attention_torch
    import torch

    pattern = draw_pattern(rng, "strided" if rng.random() < 0.5 else "fixed")
    sizes = _fold_sizes(rng, size)
    x = make_inputs(rng, **sizes)
    ref = attention_ref(x["q"], x["k"], x["v"], pattern)
    scale = 1.0 / np.sqrt(sizes["head_dim"])
    verdicts = []
    for kernel in ("matmul", "flash_cpu") if sizes["value_dim"] == sizes["head_dim"] else ("matmul",):
        out = attention_torch(*(torch.from_numpy(x[c]) for c in "qkv"), pattern, scale, kernel=kernel)
        verdicts.append(identity_verdict(out, ref, dtype=np.float64, backend="torch", sizes=sizes,
                                         what=f"fold and merge ({kernel}) vs dense masked softmax, {pattern}"))
    worst = max(verdicts, key=lambda v: v.error)
    return Verdict(all(v.holds for v in verdicts), worst.error, worst.tolerance, backend="torch", sizes=sizes, detail=worst.detail)


def _fold_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    pattern = draw_pattern(rng, "strided" if rng.random() < 0.5 else "fixed")
    sizes = _fold_sizes(rng, size, min_length=2 * pattern.l + 2)
    x = make_inputs(rng, **sizes)
    ref = attention_ref(x["q"], x["k"], x["v"], pattern)
    return identity_verdict(_overlapping_merge(x["q"], x["k"], x["v"], pattern), ref, dtype=np.float64, sizes=sizes,
                            what=f"merge of overlapping A1, A2, {pattern}")


FOLD_CLAIM = register(
    Claim(
        id="sparse.fold-and-merge-is-exact",
        paper=CHILD,
        statement="For strided(l) and fixed(l, c), attention computed on the sequence folded into an l x ceil(n/l) "
        "grid -- dense blocks along rows and along columns over disjoint key sets, merged by log-sum-exp -- equals "
        "dense masked softmax attention for every n (float64, 1e-10).",
        kind="identity",
        check=_fold_check,
        negative_control=_fold_control,
        experiment="sparse_walltime",
        module="theorylab/sparse/_torch_attention.py",
        test="tests/sparse/test_attention.py",
        controls="log-sum-exp merge of the overlapping sub-patterns A1, A2 (shared keys counted twice)",
    )
)
