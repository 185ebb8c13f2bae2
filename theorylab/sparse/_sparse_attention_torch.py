"""torch paths of :func:`theorylab.sparse.attention` (CPU and CUDA); each must match ``attention_ref``.

* :func:`strided_fold_merge` and :func:`fixed_fold_merge` -- the fold-and-merge
  factorization of the module docstring of :mod:`theorylab.sparse.sparse_attention`;
* :func:`sliding_window_band` -- the same band blocks for a sliding window (O(n·w));
* :func:`masked_dense` -- dense masked softmax for any other pattern.

Every dense block goes through :func:`lse_attention`, which returns the block's softmax
output *and* its log-sum-exp, so that blocks over disjoint key sets merge exactly:

    L = log(e^{L₁} + e^{L₂}),      out = out₁ e^{L₁ − L} + out₂ e^{L₂ − L}.

``kernel="flash_cpu"`` runs a block with torch's fused CPU flash-attention operator
(``aten._scaled_dot_product_flash_attention_for_cpu``, which returns the log-sum-exp);
``kernel="matmul"`` with explicit matrix products (any device, any value width);
``"auto"`` takes ``flash_cpu`` for CPU tensors whose value width equals the key width
and ``matmul`` otherwise.  Both kernels are tested against the reference.

The private flash operator is used only within its contract, checked in :func:`pick_kernel`
and :func:`lse_attention`: CPU tensors of one dtype among float32/float64/bfloat16/float16,
value width = key width, and a unit-stride last dimension (it reads the last dimension as
contiguous whatever the strides say: a transposed input gave relative errors of 3 to 1e23,
so such an input is copied to a contiguous one first).  Its log-sum-exp has no gradient,
so when any input requires grad (and grad mode is on) ``"auto"`` takes ``matmul`` and an
explicit ``"flash_cpu"`` is a ValueError.

Gradients (``matmul``): every step is differentiable -- the max shift of the softmax is
detached (log-sum-exp L = m + log Σ e^{s − m} does not depend on m, so ∂L/∂m = 0 and the
gradient is exact), merges are computed out of place, and the log-sum-exp of each part
keeps its graph, so the merged output's gradient equals the gradient of dense masked
softmax (tested against autograd and ``torch.autograd.gradcheck``, float64, any value width).

Half precision: bfloat16/float16 inputs are computed in float32 (``matmul``: scores,
softmax, log-sum-exp, products, merges; ``flash_cpu``: its internal float32 accumulation,
then float32 merges and one float32 output buffer) and rounded to the input dtype once,
at the end.
"""

from __future__ import annotations

import torch

from .patterns import Fixed, Pattern, SlidingWindow, Strided

KERNELS = ("auto", "flash_cpu", "matmul")
HALF = (torch.float16, torch.bfloat16)
WINDOW_CHUNK = 64  # queries per dense block of the strided band (keys per block: l + 64)
COLUMN_ALIGN = 32  # column lengths of the strided stride part are padded to a multiple of this


FLASH_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def _needs_grad(*ts) -> bool:
    return torch.is_grad_enabled() and any(t.requires_grad for t in ts)


def pick_kernel(kernel: str, q, k, v) -> str:
    """The dense-block kernel for these inputs: ``kernel`` checked against the flash
    operator's contract, or the ``"auto"`` choice (module docstring)."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")
    has_op = hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
    why = None
    if not has_op:
        why = "this torch has no aten._scaled_dot_product_flash_attention_for_cpu"
    elif q.device.type != "cpu":
        why = f"the inputs are on {q.device}, the operator runs on CPU only"
    elif q.shape[-1] != v.shape[-1]:
        why = f"value width {v.shape[-1]} differs from key width {q.shape[-1]}"
    elif q.dtype not in FLASH_DTYPES or not (q.dtype == k.dtype == v.dtype):
        why = f"dtypes {q.dtype}, {k.dtype}, {v.dtype} are not one of {FLASH_DTYPES}"
    elif _needs_grad(q, k, v):
        why = "an input requires grad and the operator's log-sum-exp has no gradient (use kernel='matmul')"
    if kernel == "flash_cpu" and why is not None:
        raise ValueError(f"kernel='flash_cpu' cannot run here: {why}")
    if kernel != "auto":
        return kernel
    return "flash_cpu" if why is None else "matmul"


def _unit_last(t):
    """``t`` with a unit-stride last dimension (the flash operator's layout contract); a copy only when needed."""
    return t if t.stride(-1) == 1 else t.contiguous()


def lse_attention(q, k, v, scale: float, *, allowed=None, causal: bool = False, kernel: str = "auto"):
    """Softmax attention of one dense block and its log-sum-exp.

    q (B, H, m, d), k (B, H, s, d), v (B, H, s, dv); ``allowed`` a bool mask broadcastable
    to (B, H, m, s), or ``causal=True`` (m = s, j <= i).  Every row needs an allowed key.
    Returns out (B, H, m, dv) and L (B, H, m) with L_i = log Σ_{j allowed} e^{scale <q_i, k_j>}
    (L in float32 for half inputs).
    """
    kernel = pick_kernel(kernel, q, k, v)
    if kernel == "flash_cpu":
        q, k, v = _unit_last(q), _unit_last(k), _unit_last(v)
        bias = None
        if allowed is not None:
            bias = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device).masked_fill_(~allowed, float("-inf"))
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, attn_mask=bias, scale=scale)
        return out, lse.to(_stat_dtype(q.dtype))
    if q.dtype in HALF:  # scores, softmax and log-sum-exp in float32; the output in q's dtype
        out, lse = lse_attention(q.float(), k.float(), v.float(), scale, allowed=allowed, causal=causal, kernel="matmul")
        return out.to(q.dtype), lse
    s = (q * scale) @ k.transpose(-1, -2)  # (B, H, m, s)
    if causal:
        allowed = torch.ones(s.shape[-2:], dtype=torch.bool, device=q.device).tril_()
    if allowed is not None:
        s.masked_fill_(~allowed, float("-inf"))
    # the max shift is a constant for the gradient (L = m + log Σ e^{s − m} does not depend on m);
    # detached, it keeps no reference to s, so the in-place shift and exp below stay differentiable
    mx = s.detach().amax(dim=-1, keepdim=True)  # (B, H, m, 1): finite, each row has a key
    s.sub_(mx).exp_()
    z = s.sum(dim=-1, keepdim=True)  # (B, H, m, 1)
    return (s @ v) / z, (mx + torch.log(z)).squeeze(-1)


def _stat_dtype(dtype):
    """Log-sum-exp statistics are kept in float32 at least (bf16 would cost ~1% per merge)."""
    return torch.float32 if dtype in HALF else dtype


def _merge(o1, l1, o2, l2, *, out=None):
    """out = o₁ e^{L₁ − L} + o₂ e^{L₂ − L},  L = logaddexp(L₁, L₂), in the statistics' dtype
    (float32 for half parts); written into ``out`` if given.  Out of place when a gradient is needed."""
    lse = torch.logaddexp(l1, l2)
    w1, w2 = torch.exp(l1 - lse).unsqueeze(-1), torch.exp(l2 - lse).unsqueeze(-1)
    if o1.dtype != w1.dtype or _needs_grad(o1, o2, l1, l2) or (out is not None and out.dtype != w1.dtype):
        res = o1.to(w1.dtype) * w1 + o2.to(w1.dtype) * w2
        return res if out is None else out.copy_(res)
    return torch.mul(o1, w1, out=out).addcmul_(o2, w2)


def _pad_to(x, length: int):
    """(B, n, e) zero-padded along n to ``length``, contiguous (a copy only when needed)."""
    n = x.shape[1]
    if n == length:
        return x.contiguous()
    out = x.new_empty(x.shape[0], length, x.shape[2])
    out[:, :n] = x
    out[:, n:] = 0
    return out


def _head_and_band(qp, kp, vp, out, n: int, l: int, h: int, scale: float, kernel: str):
    """Offsets i − j ∈ [0, l] on padded (BH, N, ·) inputs, N >= l + ⌈(n − l)/h⌉·h.

    Queries i < l see their whole prefix: one causal block, written into ``out[:, :l]``.
    Queries i >= l: chunk t holds queries l + t·h … l + t·h + h − 1 and keys t·h … t·h + l + h − 1;
    query u and key m of a chunk are l + u − m apart, allowed iff u <= m <= u + l.  Returns
    the band's output and log-sum-exp for positions l … n − 1 (None when n <= l).
    """
    BH, N, d = qp.shape
    dv = vp.shape[-1]
    head = min(n, l)
    o0, _ = lse_attention(qp[:, None, :head], kp[:, None, :head], vp[:, None, :head], scale, causal=True, kernel=kernel)
    out[:, :head] = o0[:, 0]
    if n <= l:
        return None, None
    C = -(-(n - l) // h)
    qb = qp[:, l : l + C * h].view(BH, C, h, d)  # (BH, C, h, d)
    kb = kp.as_strided((BH, C, l + h, d), (N * d, h * d, d, 1))  # overlapping windows (views)
    vb = vp.as_strided((BH, C, l + h, dv), (N * dv, h * dv, dv, 1))
    u = torch.arange(h, device=qp.device)[:, None]
    m = torch.arange(l + h, device=qp.device)[None, :]
    o1, l1 = lse_attention(qb, kb, vb, scale, allowed=(m >= u) & (m <= u + l), kernel=kernel)  # (BH, C, h, ·)
    return o1.view(BH, C * h, dv)[:, : n - l], l1.reshape(BH, C * h)[:, : n - l]  # positions l … n−1


def sliding_window_band(q, k, v, w: int, scale: float, *, kernel: str = "auto", chunk: int = WINDOW_CHUNK):
    """Sliding window 0 <= i − j < w: the band of :func:`strided_fold_merge` with l = w − 1
    and no stride part.  O(n·(w + chunk)) scores."""
    B, H, n, d = q.shape
    dv = v.shape[-1]
    if w == 1:  # one key per row: softmax weight 1 on v_i
        return v.clone()
    l, BH = w - 1, B * H
    N = max(n, l + (-(-(n - l) // chunk) * chunk if n > l else 0))
    qp, kp, vp = (_pad_to(t.reshape(BH, n, t.shape[-1]), N) for t in (q, k, v))  # (BH, N, ·)
    out = torch.empty(BH, n, dv, dtype=_stat_dtype(q.dtype), device=q.device)  # float32 for half inputs
    o1, _ = _head_and_band(qp, kp, vp, out, n, l, chunk, scale, kernel)
    if o1 is not None:
        out[:, l:] = o1
    return out.view(B, H, n, dv).to(q.dtype)


def strided_fold_merge(q, k, v, l: int, scale: float, *, kernel: str = "auto", chunk: int = WINDOW_CHUNK):
    """Strided(l) attention in three dense parts (i = a·l + b):

    0. queries i < l: their row is {0, …, i} -- causal attention over the first l tokens;
    1. queries i >= l, band i − j ∈ [0, l]: blocks of ``chunk`` queries against the l + chunk
       keys before them;
    2. queries i >= 2l, stride i − j = t·l with t >= 2: in the (R, l) fold, column b, rows
       a' <= a − 2 -- causal attention down each column;
    merged by log-sum-exp (parts 1 and 2 are disjoint).  O(n·(l + chunk) + n²/l) scores.
    """
    B, H, n, d = q.shape
    dv = v.shape[-1]
    BH, dev = B * H, q.device
    R = -(-n // l)  # rows of the fold
    h = chunk
    C = -(-(n - l) // h) if n > l else 0  # band chunks
    Rp = -(-(R - 2) // COLUMN_ALIGN) * COLUMN_ALIGN if R > 2 else 0  # aligned column length
    # One zero-padded copy serves every part.  Padded keys lie after every real query, so
    # causality (and the band mask) already hide them from real queries.
    N = max(n, l + C * h, (Rp + 2) * l)
    qp, kp, vp = (_pad_to(t.reshape(BH, n, t.shape[-1]), N) for t in (q, k, v))  # (BH, N, ·)
    out = torch.empty(BH, n, dv, dtype=_stat_dtype(q.dtype), device=dev)  # float32 for half inputs
    o1, l1 = _head_and_band(qp, kp, vp, out, n, l, h, scale, kernel)  # parts 0 and 1
    if n <= l:
        return out.view(B, H, n, dv).to(q.dtype)
    out[:, l : 2 * l] = o1[:, :l]
    if n <= 2 * l:
        return out.view(B, H, n, dv).to(q.dtype)

    # 2. stride.  Fold to (BH, Rp + 2, l, ·); in each column, queries of rows 2 … Rp + 1 against
    #    keys of rows 0 … Rp − 1, causal along the rows.  Rows beyond R − 1 (padding, aligned
    #    to COLUMN_ALIGN for the fused kernel) are seen only by queries that are discarded.
    qc = qp[:, : (Rp + 2) * l].view(BH, Rp + 2, l, d)[:, 2:].transpose(1, 2)  # (BH, l, Rp, d)
    kc = kp[:, : Rp * l].view(BH, Rp, l, d).transpose(1, 2)  # (BH, l, Rp, d)
    vc = vp[:, : Rp * l].view(BH, Rp, l, dv).transpose(1, 2)  # (BH, l, Rp, dv)
    o2, l2 = lse_attention(qc, kc, vc, scale, causal=True, kernel=kernel)  # (BH, l, Rp, ·)
    o2 = o2.transpose(1, 2).reshape(BH, Rp * l, dv)[:, : n - 2 * l]  # positions 2l … n−1
    l2 = l2.transpose(1, 2).reshape(BH, Rp * l)[:, : n - 2 * l]
    _merge(o1[:, l:], l1[:, l:], o2, l2, out=out[:, 2 * l :])
    return out.view(B, H, n, dv).to(q.dtype)


def fixed_fold_merge(q, k, v, l: int, c: int, scale: float, *, kernel: str = "auto"):
    """Fixed(l, c) attention: causal attention inside each row of the (R, l) fold, merged by
    log-sum-exp with attention to the last c columns of all earlier rows.
    O(n·l + n·c·n/l) scores."""
    B, H, n, d = q.shape
    dv = v.shape[-1]
    BH, dev = B * H, q.device
    R = -(-n // l)
    qf = _pad_to(q.reshape(BH, n, d), R * l).view(BH, R, l, d)  # (BH, R, l, d)
    kf = _pad_to(k.reshape(BH, n, d), R * l).view(BH, R, l, d)
    vf = _pad_to(v.reshape(BH, n, dv), R * l).view(BH, R, l, dv)
    o1, l1 = lse_attention(qf, kf, vf, scale, causal=True, kernel=kernel)  # (BH, R, l, dv), (BH, R, l)
    if R > 1:
        # summary keys: columns l−c … l−1 of rows 0 … R−2, one list of (R−1)·c keys shared by
        # every query row; the grid rows 1 … R−1 act as heads, and row a sees the first a·c keys.
        ks = kf[:, : R - 1, l - c :].reshape(BH, 1, (R - 1) * c, d).expand(BH, R - 1, (R - 1) * c, d)  # stride 0 over rows
        vs = vf[:, : R - 1, l - c :].reshape(BH, 1, (R - 1) * c, dv).expand(BH, R - 1, (R - 1) * c, dv)
        arow = torch.arange(R - 1, device=dev)[None, :, None, None]  # query row − 1, (1, R−1, 1, 1)
        krow = torch.arange((R - 1) * c, device=dev)[None, None, None, :] // c  # key row, (1, 1, 1, (R−1)·c)
        o2, l2 = lse_attention(qf[:, 1:], ks, vs, scale, allowed=krow <= arow, kernel=kernel)  # (BH, R−1, l, ·)
        tail = _merge(o1[:, 1:], l1[:, 1:], o2, l2)  # float32 for half inputs
        o1 = torch.cat([o1[:, :1].to(tail.dtype), tail], dim=1)  # (BH, R, l, dv)
    return o1.reshape(BH, R * l, dv)[:, :n].reshape(B, H, n, dv).to(q.dtype)


def masked_dense(q, k, v, pattern: Pattern, scale: float, *, kernel: str = "auto"):
    """Dense softmax with the pattern's (n, n) mask, in the input dtype.  O(n²) memory."""
    allowed = torch.from_numpy(pattern.mask(q.shape[2])).to(q.device)  # (n, n)
    return lse_attention(q, k, v, scale, allowed=allowed, kernel=kernel)[0]


def attention_torch(q, k, v, pattern: Pattern, scale: float, *, kernel: str = "auto"):
    """Dispatch on the pattern: fold and merge where it factorizes, band blocks for a sliding
    window, dense masked otherwise.  Half inputs on the ``matmul`` kernel are computed in
    float32 throughout and rounded once (module docstring)."""
    kernel = pick_kernel(kernel, q, k, v)
    dtype = q.dtype
    if dtype in HALF and kernel == "matmul":
        q, k, v = q.float(), k.float(), v.float()
    if isinstance(pattern, Strided):
        out = strided_fold_merge(q, k, v, pattern.l, scale, kernel=kernel)
    elif isinstance(pattern, Fixed):
        out = fixed_fold_merge(q, k, v, pattern.l, pattern.c, scale, kernel=kernel)
    elif isinstance(pattern, SlidingWindow):
        out = sliding_window_band(q, k, v, pattern.w, scale, kernel=kernel)
    else:
        out = masked_dense(q, k, v, pattern, scale, kernel=kernel)
    return out.to(dtype)
