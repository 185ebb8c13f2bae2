"""Sparse attention: softmax restricted to a pattern's allowed keys.

Papers: #10 Child et al., "Generating Long Sequences with Sparse Transformers" (2019,
arXiv:1904.10509), Sec. 4.2-4.3 (factorized attention, and its realization by folding the
sequence into an l × n/l grid); #53 BigBird and #24 PowerAttention for the other patterns.

For a pattern with allowed sets Aᵢ (see :mod:`theorylab.sparse.patterns`; causal, i ∈ Aᵢ):

    out_i = Σ_{j ∈ Aᵢ} softmax_j(s_ij) v_j,      s_ij = scale · <q_i, k_j>,   scale = 1/√d

i.e. dense attention with the scores outside the pattern set to −∞ (the reference).

Fold and merge (strided and fixed).  Write i = a·l + b: the sequence becomes a grid of
R = ⌈n/l⌉ rows (a) and l columns (b), zero-padded to R·l (padded keys lie after every real
query, so causality already hides them).  Split Aᵢ into two *disjoint* parts whose keys are
dense blocks of the grid, attend to each part densely, and merge exactly:

* strided:  A¹ᵢ = {0 <= i−j <= l} is a band: blocks of h queries against the l + h keys
  before them (rows i < l, where the band is the whole prefix, are one causal block);
  A²ᵢ minus A¹ᵢ = {i−j = t·l, t >= 2}: the same column b, rows <= a−2 -- causal dense
  attention down each column of the grid.
* fixed:    A¹ᵢ = own row a, j <= i (causal l × l blocks);  A²ᵢ minus A¹ᵢ = the last c
  columns of rows < a -- the (R−1)·c summary keys form one list shared by all rows, and
  grid row a attends to its first a·c entries.

Each part P gives its softmax output out_P and log-sum-exp L_P = log Σ_{j∈P} e^{s_ij}; with
L = log(e^{L₁} + e^{L₂}),

    out_i = out₁ e^{L₁ − L} + out₂ e^{L₂ − L}

which is the softmax over A¹ ∪ A² exactly because the parts are disjoint.  Work: strided
n·(l + h) + n·n/l score entries, fixed n·l + n·c·n/l: O(n√n) at l = √n, all of it dense
matrix products.

Backends: ``"ref"`` dense masked softmax in float64 (numpy); ``"numba"`` compressed-row
loop over each query's allowed keys (O(nnz·d), float64 accumulation), must match the ref;
``"torch"`` fold and merge for strided / fixed, the band blocks for a sliding window (O(n·w)),
and dense masked softmax for every other pattern (O(n²) memory; half inputs in float32), each dense block by torch's fused CPU
flash-attention kernel (which also returns the log-sum-exp) or by explicit matrix products
(see :mod:`theorylab.sparse._sparse_attention_torch`), must match the ref; ``"auto"`` per
:mod:`theorylab.backends`.

Glossary (code -> paper): q, k, v -> Q, K, V; pattern -> the sets Aᵢ = A¹ᵢ ∪ A²ᵢ;
l -> stride l; c -> c; scale -> 1/√d.

Shapes: q, k (batch, heads, length, head_dim); v (batch, heads, length, value_dim);
out (batch, heads, length, value_dim).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _validate as V
from ..backends import like_input, resolve_backend, to_numpy, to_torch
from .patterns import Pattern

__all__ = ["attention", "attention_ref", "make_inputs", "BACKENDS"]

BACKENDS = ("ref", "numba", "torch")


def make_inputs(rng: np.random.Generator, *, batch=1, heads=1, length=16, head_dim=8, value_dim=None, logit_scale=1.0,
                dtype=np.float64) -> dict:
    """One valid random instance: q, k, v standard normal (v with ``value_dim`` columns), q
    multiplied by ``logit_scale`` (30 and more gives logits of hundreds: a softmax without
    its max shift overflows).  Sizes are integers >= 1 (TypeError for 2.7 or True)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    b, h, n, d = (V.check_size(name, s) for name, s in
                  (("batch", batch), ("heads", heads), ("length", length), ("head_dim", head_dim)))
    dv = d if value_dim is None else V.check_size("value_dim", value_dim)
    if isinstance(logit_scale, bool) or not isinstance(logit_scale, numbers.Real):
        raise TypeError(f"logit_scale must be a real number; got {type(logit_scale).__name__}")
    if not (math.isfinite(logit_scale) and logit_scale > 0):
        raise ValueError(f"logit_scale must be a finite number > 0; got {logit_scale!r}")
    q = rng.standard_normal((b, h, n, d)) * float(logit_scale)
    k = rng.standard_normal((b, h, n, d))
    v = rng.standard_normal((b, h, n, dv))
    return {"q": q.astype(dtype), "k": k.astype(dtype), "v": v.astype(dtype)}


def _validate(q, k, v, pattern, scale) -> tuple[str, float]:
    kind = V.check_arrays({"q": q, "k": k, "v": v})
    V.check_ndim("q", q, 4, "(batch, heads, length, head_dim)")
    V.check_ndim("k", k, 4, "(batch, heads, length, head_dim)")
    V.check_ndim("v", v, 4, "(batch, heads, length, value_dim)")
    shapes = {"q": q.shape, "k": k.shape, "v": v.shape}
    V.check_shape("k", k, tuple(q.shape), shapes)
    V.check_shape("v", v, tuple(q.shape[:3]) + (int(v.shape[3]),), shapes)
    for name, a in (("q", q), ("k", k), ("v", v)):
        V.check_nonempty(name, a, "(every size must be >= 1)")
        V.check_finite(name, a)
    if not isinstance(pattern, Pattern):
        raise TypeError(f"pattern must be a theorylab.sparse pattern (e.g. theorylab.sparse.strided(l)); got {type(pattern).__name__}")
    d = int(q.shape[3])
    if scale is None:
        return kind, 1.0 / math.sqrt(d)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number or None; got {type(scale).__name__}")
    if not (math.isfinite(float(scale)) and float(scale) > 0):
        raise ValueError(f"scale must be finite and > 0; got {scale}")
    return kind, float(scale)


# ---------------------------------------------------------------------------------------
# reference: dense masked softmax, float64
# ---------------------------------------------------------------------------------------
def attention_ref(q, k, v, pattern: Pattern, scale: float | None = None) -> np.ndarray:
    """float64 dense attention with s_ij = −∞ outside the pattern (the definition above)."""
    q, k, v = (np.asarray(to_numpy(a), dtype=np.float64) for a in (q, k, v))
    n, d = q.shape[2], q.shape[3]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    mask = pattern.mask(n)  # (n, n) first: its guard refuses an n whose scores would not fit
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale  # (b, h, n, n)
    s = np.where(mask, s, -np.inf)
    s = s - s.max(axis=-1, keepdims=True)  # every row holds its diagonal: max is finite
    p = np.exp(s)
    p /= p.sum(axis=-1, keepdims=True)
    return np.einsum("bhij,bhjd->bhid", p, v)  # (b, h, n, dv)


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def attention(q, k, v, pattern: Pattern, *, scale=None, backend="auto"):
    """Softmax attention over ``pattern``'s allowed keys; see the module docstring.

    q, k: (batch, heads, length, head_dim); v: (batch, heads, length, value_dim).
    ``scale`` defaults to 1/√head_dim.  numpy in -> numpy out, torch in -> torch out on the
    same device and dtype.  Backends: ``"ref"`` (float64 dense masked softmax),
    ``"numba"`` (compressed rows, O(nnz·d)), ``"torch"`` (fold and merge for strided and
    fixed, band blocks for a sliding window, dense masked otherwise), ``"auto"``.
    Only ``"torch"`` is differentiable (gradients equal those of dense masked softmax, any
    value width); ``"ref"`` / ``"numba"`` refuse a tensor that requires grad.  Tensors of
    any strides and numpy arrays of any strides (negative ones included) are accepted;
    bfloat16 / float16 tensors are computed in float32 on the torch path.
    """
    kind, scale = _validate(q, k, v, pattern, scale)
    backend = resolve_backend(backend, {"q": q, "k": k, "v": v}, valid=BACKENDS)
    if backend == "ref":
        out = attention_ref(q, k, v, pattern, scale)
    elif backend == "numba":
        from ._sparse_attention_numba import attention_csr_numba

        dtype = np.float64 if V.dtype_name(q) == "float64" else np.float32
        indptr, indices = pattern.csr(int(q.shape[2]))
        out = attention_csr_numba(*(to_numpy(a, dtype) for a in (q, k, v)), indptr, indices, scale)
    else:
        from ._sparse_attention_torch import attention_torch

        out = attention_torch(*(to_torch(a) for a in (q, k, v)), pattern, scale)  # any strides (see the torch module)
    out = like_input(out, q)
    return out.astype(q.dtype, copy=False) if kind == "numpy" else out
