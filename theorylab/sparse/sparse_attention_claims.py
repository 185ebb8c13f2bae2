"""Identity claims: every sparse-attention path equals dense masked softmax.

Statement (math and papers in :mod:`theorylab.sparse.sparse_attention`):

1. ``sparse.attention-is-masked-softmax`` -- for every pattern family (strided, fixed,
   window, dilated, power, window + global, BigBird, full), the public
   :func:`~theorylab.sparse.attention` on every backend a user can call here
   (:func:`theorylab.checks.check_backends`: ref, numba, torch, and torch:cuda when present)
   equals an independent dense masked softmax -- written here, with the mask enumerated
   from the pattern's defining rule (:func:`theorylab.sparse.patterns_claims.enumerate_mask`),
   not from the library's ``mask`` / ``csr`` -- within the float64 policy (1e-10).  Each
   instance runs every family twice: q standard normal, and q scaled so that the largest
   |logit| lies in [800, 2000], where e^s overflows float64 (e^709.8 = max): a softmax
   without its max shift returns inf / NaN and fails.  Error model at that scale: a logit
   carries a rounding error ~ |s|·eps ~ 2000·1.1e-16, which moves the weights by the same
   relative amount (~2e-13), well inside 1e-10.
   The torch backend is also run as a user with a graph would run it (:func:`_torch_user_parts`):
   on the logit-scale-1 instance of each family (at |logits| ~ 1000 the softmax saturates and
   the gradient's normwise error grows like eps·|q|·|dP|/|dk|: 4e-10 measured, an
   ill-conditioned comparison, not a defect), with a copy of k as the values (value width =
   key width, where the CPU flash kernel would serve): ``torch[transposed]``, q, k, v
   tensors whose last dimension is not unit-stride (no grad);
   ``torch[grad]``, the same tensors requiring grad, and the gradients of ⟨out, G⟩ (G a
   random upstream gradient) against :func:`dense_masked_softmax_grad` -- the textbook
   backward of masked softmax in numpy (dV = PᵀG, dS = P ∘ (GVᵀ − rowsum(P ∘ GVᵀ)),
   dQ = scale·dS K, dK = scale·dSᵀ Q), written here, not autograd -- within 1e-10.
   Control, the weakest of two near misses (each rejected by a finite error): the mask
   applied to the probabilities after a causal softmax (no renormalization over Aᵢ), and
   each row's oldest allowed key dropped (an off-by-one at the start of a compressed row).
2. ``sparse.fold-and-merge-is-exact`` (#10, Sec. 4.3) -- for strided(l) and fixed(l, c) with
   any n (n not divisible by l included): :func:`~theorylab.sparse.attention` on every
   backend, and the torch fold and merge with each dense-block kernel (``torch[matmul]``,
   ``torch[flash_cpu]``), equal the independent dense masked softmax within 1e-10, at both
   logit scales (the log-sum-exp merge without its shift overflows at the large one).
   Control: the same merge over the two sub-patterns A¹ᵢ and A²ᵢ as the paper writes them,
   which overlap (i − j ∈ {0, l} for strided, the own block's summary keys for fixed):
   overlapping keys count twice.

Sizes are drawn per instance (length 1 and lengths not divisible by l occur; head_dim
from {1, 2, 3, 5, 7, 8}).
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Verdict, register
from .patterns import bigbird, dilated_window, fixed, full_causal, power_attention, sliding_window, strided, window_global
from .patterns_claims import enumerate_mask
from .sparse_attention import attention, make_inputs

__all__ = ["FAMILIES", "draw_pattern", "dense_masked_softmax", "dense_masked_softmax_grad", "large_logit_inputs"]

CHILD = Paper("Generating Long Sequences with Sparse Transformers", 2019, "1904.10509", index=10)
FAMILIES = ("strided", "fixed", "window", "dilated", "power", "window_global", "bigbird", "full")
_TOP = {"quick": 96, "full": 320}
LARGE_LOGITS = (800.0, 2000.0)  # largest |logit| of the large-scale instances: e^s overflows float64


def draw_pattern(rng: np.random.Generator, family: str | None = None, *, l_max: int = 12, proper: bool = False):
    """A pattern of ``family`` (drawn when None) with small random parameters.

    ``proper=True`` excludes the parameters that make strided / fixed equal to full
    causal attention (l = 1, c = l) and one-key windows (w = 1).
    """
    family = FAMILIES[int(rng.integers(len(FAMILIES)))] if family is None else family
    l = int(rng.integers(2 if proper else 1, l_max + 1))
    w = int(rng.integers(2 if proper else 1, 9))
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


def dense_masked_softmax(q, k, v, mask, scale=None):
    """Independent float64 reference: per row, softmax over the keys where ``mask`` (n, n) holds,
    shifted by the row's largest allowed logit."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = np.matmul(q, np.swapaxes(k, -1, -2)) * scale  # (b, h, n, n)
    top = np.max(np.where(mask, logits, -np.inf), axis=-1, keepdims=True)  # (b, h, n, 1)
    weights = np.where(mask, np.exp(np.where(mask, logits - top, 0.0)), 0.0)
    return np.matmul(weights / weights.sum(axis=-1, keepdims=True), v)  # (b, h, n, dv)


def dense_masked_softmax_grad(q, k, v, mask, g, scale=None):
    """Independent float64 backward of :func:`dense_masked_softmax` for the upstream gradient
    ``g`` (b, h, n, dv): returns (dq, dk, dv) by the textbook formulas (module docstring)."""
    q, k, v, g = (np.asarray(a, dtype=np.float64) for a in (q, k, v, g))
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = np.matmul(q, np.swapaxes(k, -1, -2)) * scale  # (b, h, n, n)
    top = np.max(np.where(mask, logits, -np.inf), axis=-1, keepdims=True)
    w = np.where(mask, np.exp(np.where(mask, logits - top, 0.0)), 0.0)
    p = w / w.sum(axis=-1, keepdims=True)  # (b, h, n, n)
    dp = np.matmul(g, np.swapaxes(v, -1, -2))  # (b, h, n, n)
    ds = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    return scale * np.matmul(ds, k), scale * np.matmul(np.swapaxes(ds, -1, -2), q), np.matmul(np.swapaxes(p, -1, -2), g)


def _torch_user_parts(rng, pattern, x, mask, sizes) -> dict:
    """``torch[transposed]`` and ``torch[grad]`` verdicts (module docstring) for one instance, with a
    copy of k as the values (value width = key width: where the CPU flash kernel would serve;
    other value widths are covered by tests/sparse/test_attention_contract.py)."""
    import torch

    def transposed(a, grad=False):  # same values, last dimension of stride n
        return torch.from_numpy(a).transpose(-1, -2).contiguous().transpose(-1, -2).requires_grad_(grad)

    fwd, bwd = [], []
    for vals in (x["k"].copy(),):
        ref = dense_masked_softmax(x["q"], x["k"], vals, mask)
        with torch.no_grad():
            out = attention(transposed(x["q"]), transposed(x["k"]), transposed(vals), pattern, backend="torch")
        fwd.append(identity_verdict(out.numpy(), ref, dtype=np.float64, backend="torch[transposed]", sizes=sizes,
                                    what=f"attention[torch] on transposed tensors, {pattern}, value width {vals.shape[-1]}"))
        g = rng.standard_normal(ref.shape)
        args = [transposed(a, grad=True) for a in (x["q"], x["k"], vals)]
        grads = torch.autograd.grad(attention(*args, pattern, backend="torch"), args, torch.from_numpy(g), materialize_grads=True)
        want = dense_masked_softmax_grad(x["q"], x["k"], vals, mask, g)
        bwd += [identity_verdict(got.numpy(), w, dtype=np.float64, backend="torch[grad]", sizes=sizes,
                                 what=f"d{c} of attention[torch] vs textbook masked-softmax backward, {pattern}, "
                                      f"value width {vals.shape[-1]}") for got, w, c in zip(grads, want, "qkv")]
    worst = lambda vs: max(vs, key=lambda v: (not v.holds, v.margin if np.isfinite(v.margin) else np.inf))  # noqa: E731
    return {"torch[transposed]": worst(fwd), "torch[grad]": worst(bwd)}


def large_logit_inputs(rng, sizes: dict, mask) -> dict:
    """An instance whose largest allowed |logit| is drawn in ``LARGE_LOGITS`` (q rescaled)."""
    x = make_inputs(rng, **sizes)
    s = np.abs(np.matmul(x["q"], np.swapaxes(x["k"], -1, -2)) / np.sqrt(sizes["head_dim"]))[..., mask]
    target = rng.uniform(*LARGE_LOGITS)
    x["q"] = x["q"] * (target / max(float(s.max()), 1e-3))
    return x


def _instances(rng, pattern, sizes):
    """(label, inputs, independent reference) at logit scale 1 and at a large scale."""
    mask = enumerate_mask(pattern, sizes["length"])
    out = []
    for label, x in (("x1", make_inputs(rng, **sizes)), ("large", large_logit_inputs(rng, sizes, mask))):
        out.append((label, x, dense_masked_softmax(x["q"], x["k"], x["v"], mask)))
    return out


def _per_backend(parts: dict) -> dict:
    """``{backend: [Verdict, ...]}`` -> ``{backend: Verdict}``: the worst instance of each backend."""
    out = {}
    for b, vs in parts.items():
        worst = max(vs, key=lambda v: (not v.holds, v.margin if np.isfinite(v.margin) else np.inf))
        out[b] = Verdict(all(v.holds for v in vs), worst.error, worst.tolerance, backend=b, sizes=worst.sizes,
                         detail=worst.detail)
    return out


def _masked_softmax_check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    backends = check_backends(("ref", "numba", "torch"))
    parts: dict = {b: [] for b in backends}
    sizes = _draw_sizes(rng, size)
    for family in FAMILIES:
        pattern = draw_pattern(rng, family)
        for label, x, ref in _instances(rng, pattern, sizes):
            for b in backends:
                out = call_backend(attention, b, x["q"], x["k"], x["v"], pattern)
                parts[b].append(identity_verdict(out, ref, dtype=np.float64, backend=b, sizes=sizes,
                                                 what=f"attention[{b}] vs independent masked softmax, {pattern}, logits {label}"))
            if "torch" in backends and label == "x1":  # user layout and gradients (see the docstring for the scale)
                for name, v in _torch_user_parts(rng, pattern, x, enumerate_mask(pattern, sizes["length"]), sizes).items():
                    parts.setdefault(name, []).append(v)
    return Verdict.combine(_per_backend(parts), sizes=sizes, detail=f"{len(FAMILIES)} patterns x 2 logit scales")


def _drop_first_key(mask):
    """WRONG on purpose: each row with >= 2 allowed keys loses its oldest one (off by one)."""
    m = mask.copy()
    first = np.argmax(m, axis=1)
    rows = np.flatnonzero(m.sum(axis=1) >= 2)
    m[rows, first[rows]] = False
    return m


def _masked_softmax_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    # a pattern that really drops keys: not full (nor strided / fixed equal to it), window <= 8, length >= 24
    pattern = draw_pattern(rng, FAMILIES[int(rng.integers(len(FAMILIES) - 1))], l_max=6, proper=True)
    sizes = _draw_sizes(rng, size, min_length=24)
    n = sizes["length"]
    x = make_inputs(rng, **sizes)
    mask = enumerate_mask(pattern, n)
    ref = dense_masked_softmax(x["q"], x["k"], x["v"], mask)
    probs_then_mask = np.matmul(_causal_probs(x["q"], x["k"]) * mask, x["v"])  # causal softmax, then mask: no renormalization
    variants = {
        "mask after a causal softmax": probs_then_mask,
        "oldest key of each row dropped": dense_masked_softmax(x["q"], x["k"], x["v"], _drop_first_key(mask)),
    }
    vs = {name: identity_verdict(out, ref, dtype=np.float64, sizes=sizes, what=f"{name}, {pattern}") for name, out in variants.items()}
    return min(vs.values(), key=lambda v: (v.holds is False, v.error))


def _causal_probs(q, k):
    n = q.shape[2]
    s = np.matmul(q, np.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
    s = np.where(np.tril(np.ones((n, n), dtype=bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


MASKED_SOFTMAX_CLAIM = register(
    Claim(
        id="sparse.attention-is-masked-softmax",
        paper=CHILD,
        statement="For every pattern (strided, fixed, window, dilated, power, window+global, BigBird, full), sparse "
        "attention out_i = sum_{j in A_i} softmax_j(scale <q_i,k_j>) v_j computed by the public attention on every "
        "backend (ref, numba, torch) equals an independent dense softmax with scores outside the pattern (enumerated "
        "from its definition) set to -inf, at logit scale 1 and at |logits| up to 800-2000 (float64, 1e-10).",
        kind="identity",
        check=_masked_softmax_check,
        negative_control=_masked_softmax_control,
        experiment="sparse_walltime",
        module="theorylab/sparse/sparse_attention_claims.py",
        test="tests/sparse/test_attention.py",
        samples=3,
        controls="weakest of: mask applied after a causal softmax (no renormalization); each row's oldest key dropped",
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
    import torch

    from ._sparse_attention_torch import attention_torch

    backends = check_backends(("ref", "numba", "torch"))
    sizes = _fold_sizes(rng, size)
    kernels = ("matmul", "flash_cpu") if sizes["value_dim"] == sizes["head_dim"] else ("matmul",)
    parts: dict = {b: [] for b in backends + [f"torch[{kn}]" for kn in kernels]}
    scale = 1.0 / np.sqrt(sizes["head_dim"])
    for family in ("strided", "fixed"):
        pattern = draw_pattern(rng, family)
        for label, x, ref in _instances(rng, pattern, sizes):
            what = f"vs independent masked softmax, {pattern}, logits {label}"
            for b in backends:
                out = call_backend(attention, b, x["q"], x["k"], x["v"], pattern)
                parts[b].append(identity_verdict(out, ref, dtype=np.float64, backend=b, sizes=sizes, what=f"attention[{b}] {what}"))
            for kn in kernels:
                out = attention_torch(*(torch.from_numpy(x[c]) for c in "qkv"), pattern, scale, kernel=kn)
                parts[f"torch[{kn}]"].append(identity_verdict(out, ref, dtype=np.float64, backend=f"torch[{kn}]",
                                                              sizes=sizes, what=f"fold and merge ({kn}) {what}"))
    return Verdict.combine(_per_backend(parts), sizes=sizes, detail="strided and fixed x 2 logit scales")


def _fold_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    pattern = draw_pattern(rng, "strided" if rng.random() < 0.5 else "fixed")
    sizes = _fold_sizes(rng, size, min_length=2 * pattern.l + 2)
    x = make_inputs(rng, **sizes)
    ref = dense_masked_softmax(x["q"], x["k"], x["v"], enumerate_mask(pattern, sizes["length"]))
    return identity_verdict(_overlapping_merge(x["q"], x["k"], x["v"], pattern), ref, dtype=np.float64, sizes=sizes,
                            what=f"merge of overlapping A1, A2, {pattern}")


FOLD_CLAIM = register(
    Claim(
        id="sparse.fold-and-merge-is-exact",
        paper=CHILD,
        statement="For strided(l) and fixed(l, c), attention computed on the sequence folded into an l x ceil(n/l) "
        "grid -- dense blocks along rows and along columns over disjoint key sets, merged by log-sum-exp -- equals "
        "an independent dense masked softmax for every n, on every backend of attention and with both dense-block "
        "kernels, at logit scale 1 and at |logits| up to 800-2000 (float64, 1e-10).",
        kind="identity",
        check=_fold_check,
        negative_control=_fold_control,
        experiment="sparse_walltime",
        module="theorylab/sparse/sparse_attention_claims.py",
        test="tests/sparse/test_attention.py",
        samples=3,
        controls="log-sum-exp merge of the overlapping sub-patterns A1, A2 (shared keys counted twice)",
    )
)
