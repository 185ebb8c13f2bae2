"""Sparse attention with a per-head fixed pattern (several summary sub-blocks), as a reference.

The Sparse Transformer's fixed pattern (Child et al. 2019, arXiv:1904.10509, Sec. 4.2) with
``num_verts`` summary sub-blocks of width c per block of length l: head h attends causally
within its own block and to sub-block h mod num_verts (counted from the end of the block)
of every earlier block -- :func:`theorylab.sparse.per_head.fixed_per_head`.  Per head,

    out_i = Σ_{j ∈ A_i^(h)} softmax_j(scale · <q_i, k_j>) v_j,     scale = 1/√d by default.

Layout (as block-sparse attention modules take it, e.g. DeepSpeed's SparseSelfAttention):
q, k (batch, heads, n, d); v (batch, heads, n, dv); out like v.  Computed head by head
with :func:`theorylab.sparse.attention` (torch backend: differentiable), in float32
(float64 when q is float64), returned in q's dtype.  num_verts = 1 is theorylab's
``fixed(l, c)`` pattern for every head.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ._kit import check_tensor, compute_dtype, scalar_scale, tensor

__all__ = ["fixed_sparse_attention_ref", "sparse_heads_inputs"]


def fixed_sparse_attention_ref(q, k, v, l, c, num_verts=1, scale=None):
    """Per-head fixed-pattern sparse attention; see the module docstring.  Returns out (b, h, n, dv)."""
    import torch

    from ..sparse import attention
    from ..sparse.per_head import fixed_per_head

    check_tensor("q", q, (None, None, None, None), layout="(batch, heads, n, d)")
    b, h, n, d = (int(s) for s in q.shape)
    check_tensor("k", k, (b, h, n, d), layout="(batch, heads, n, d), like q")
    check_tensor("v", v, (b, h, n, None), layout="(batch, heads, n, dv)")
    patterns = fixed_per_head(l, c, num_verts, h)
    s = scalar_scale(scale, d)
    ct = compute_dtype(q, k, v)
    qc, kc, vc = q.to(ct), k.to(ct), v.to(ct)
    outs = [attention(qc[:, i:i + 1], kc[:, i:i + 1], vc[:, i:i + 1], pat, scale=s, backend="torch")
            for i, pat in enumerate(patterns)]
    return torch.cat(outs, dim=1).to(q.dtype)


def sparse_heads_inputs(dtype="float32", *, max_length: int = 24, max_batch: int = 2, max_heads: int = 4,
                        options: bool = True) -> st.SearchStrategy[dict]:
    """Keyword arguments of :func:`fixed_sparse_attention_ref`: l in 1..6, c and num_verts with
    num_verts · c <= l, n in 1..max_length (often not a multiple of l), d and dv in
    {1, 2, 3, 5}, and -- with ``options`` -- a scale.  q, k with logit scale 1."""

    @st.composite
    def build(draw):
        b, h, n = draw(st.integers(1, max_batch)), draw(st.integers(1, max_heads)), draw(st.integers(1, max_length))
        l = draw(st.integers(1, 6))
        c = draw(st.integers(1, l))
        nv = draw(st.integers(1, l // c))
        d, dv = draw(st.sampled_from((1, 2, 3, 5))), draw(st.sampled_from((1, 2, 3, 5)))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        p = {"q": tensor(rng.standard_normal((b, h, n, d)), dtype), "k": tensor(rng.standard_normal((b, h, n, d)), dtype),
             "v": tensor(rng.standard_normal((b, h, n, dv)), dtype), "l": l, "c": c, "num_verts": nv}
        if options and draw(st.booleans()):
            p["scale"] = float(draw(st.sampled_from((0.5, 1.0, 2.0))))
        return p

    return build()
