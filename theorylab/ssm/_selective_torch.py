"""Torch forms of the selective scan (CPU and CUDA, differentiable).

Must match :func:`theorylab.ssm.selective.selective_scan_ref` (scan) and
:func:`~theorylab.ssm.selective.selective_attention_matrix_ref` (matrix).

The scan is *chunked*: the sequence is cut into chunks of ``chunk_size`` steps; inside a
chunk, a Hillis-Steele parallel prefix scan over the affine steps (a_t, b_t) =
(exp(Δ_t A), Δ_t x_t B_t) with the combine (a, b) ∘ (a', b') = (a' a, a' b + b') gives
every prefix map in log2(chunk) rounds of elementwise products; the state entering the
chunk is then carried through them: h_t = A_{≤t} ⊙ h_in + B_{≤t}.  All decays are <= 1,
so nothing overflows; work is O(L log(chunk) · channels · state), memory O(chunk ·
channels · state) per chunk.
"""

from __future__ import annotations

import torch

from ._prefix_scan import _prefix_scan
from ._segsum import segsum_torch


def selective_scan_torch(x, delta, A, B, C, D=None, initial_state=None, *, chunk_size: int = 64):
    """Chunked parallel scan; returns ``(y, h_last)`` in the inputs' dtype and device."""
    bsz, L, c = x.shape
    n = A.shape[1]
    h = x.new_zeros(bsz, c, n) if initial_state is None else initial_state
    ys = []
    for start in range(0, L, chunk_size):
        sl = slice(start, min(start + chunk_size, L))
        d = delta[:, sl]  # (b, T, c)
        a = torch.exp(d[..., None] * A)  # (b, T, c, n)
        u = (d * x[:, sl])[..., None] * B[:, sl, None, :]  # (b, T, c, n)
        pa, pb = _prefix_scan(a, u, dim=1)  # prefix maps of the chunk
        hs = pa * h[:, None] + pb  # (b, T, c, n): state after each step
        ys.append(torch.einsum("btcn,btn->btc", hs, C[:, sl]))
        h = hs[:, -1]
    y = torch.cat(ys, dim=1)  # (b, L, c)
    if D is not None:
        y = y + D * x
    return y, h


def selective_attention_matrix_torch(delta, A, B, C):
    """Hidden attention matrix (b, c, L, L): S = segsum(Δ) once, then one pass per state n."""
    bsz, L, c = delta.shape
    dT = delta.transpose(1, 2)  # (b, c, L)
    lower = torch.ones(L, L, dtype=torch.bool, device=delta.device).tril()
    zero = torch.zeros((), dtype=delta.dtype, device=delta.device)
    S = torch.where(lower, segsum_torch(dT), zero)  # (b, c, L, L), 0 above the diagonal
    M = delta.new_zeros(bsz, c, L, L)
    for k in range(A.shape[1]):
        decay = torch.where(lower, torch.exp(S * A[None, :, k, None, None]), zero)  # (b, c, L, L)
        M = M + C[:, None, :, None, k] * decay * (dT * B[:, None, :, k])[:, :, None, :]
    return M
