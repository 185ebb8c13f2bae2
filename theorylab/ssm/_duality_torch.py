"""Torch form of SSD: the chunked algorithm as batched matrix products (CPU and CUDA).

Must match :func:`theorylab.ssm.duality.ssd_ref` (and :func:`~theorylab.ssm.duality.ssd_chunked_ref`,
whose four blocks it computes).  Every chunk of a head is one slice of a batched GEMM;
the inter-chunk recurrence is the same algorithm one level up (:func:`_states_entering`),
so no Python loop runs over every chunk.  Differentiable by autograd.

Blocking: the (Q x Q) decay masks of all chunks are the largest temporaries.  On CPU the
heads are processed in groups whose masks take about 4 MiB, so the elementwise passes
over them run from cache instead of streaming (heads x L x Q) floats through memory,
while each operation stays large enough to split across threads; on CUDA all heads of a
batch row form one group.

Decays come from stable segment sums of the chunk's own log-decays (no ratios of
``exp(cumsum)``), so float32 stays finite for any length and decay strength.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._segsum import segsum_torch

_CPU_GROUP_BYTES = 1 << 22


def _states_entering(S, ell):
    """H_in(c) for every chunk: S (g, nc, n, p) chunk states, ell (g, nc) chunk log-decays.

    H_in(0) = 0 and H_in(c+1) = exp(ell_c) H_in(c) + S(c) is itself a scalar-decay SSM over
    the chunk index, so it is computed the same chunked way, with blocks of G ≈ √nc chunks:
    R(c) = H_in(c+1) = Σ_{d <= c} exp(Σ_{k=d+1..c} ell_k) S(d) is, inside a block, the
    (G x G) decay matrix exp(segsum(ell)) times the block's states, plus
    exp(Σ_{k=start..c} ell_k) times the state entering the block; those block-entering
    states take a loop of nc / G steps -- not nc (one kernel launch each on a GPU).
    """
    g, nc, n, p = S.shape
    G = max(1, math.isqrt(nc - 1) + 1) if nc > 1 else 1  # ceil(sqrt(nc))
    J = -(-nc // G)
    if J * G != nc:  # identity chunks at the end (S = 0, ell = 0): nothing before them changes
        S = F.pad(S, (0, 0, 0, 0, 0, J * G - nc))
        ell = F.pad(ell, (0, J * G - nc))
    Sb = S.reshape(g, J, G, n * p)
    lb = ell.reshape(g, J, G)
    R = torch.matmul(torch.exp(segsum_torch(lb)), Sb)  # (g, J, G, n*p): from the block's own states
    into = torch.exp(torch.cumsum(lb, dim=-1))  # (g, J, G): exp(Σ_{k=start..c} ell_k)
    entering = [S.new_zeros(g, n * p)]  # R(start_j - 1) for each block j
    for j in range(J - 1):
        entering.append(R[:, j, -1] + into[:, j, -1, None] * entering[-1])
    R = R + into[..., None] * torch.stack(entering, dim=1)[:, :, None, :]  # (g, J, G, n*p)
    R = R.reshape(g, J * G, n, p)[:, : nc - 1]
    return torch.cat([S.new_zeros(g, 1, n, p), R], dim=1)  # H_in(c) = R(c - 1)


def _block(x, a, Bg, Cg, Q: int, grad: bool):
    """Chunked SSD of a group of g heads: x (g, L, p), a (g, L), Bg, Cg (g, L, n) -> y (g, L, p)."""
    g, L, p = x.shape
    n = Bg.shape[2]
    nc = -(-L // Q)
    if nc * Q != L:  # zero steps at the end: causal successors of every real step, dropped below
        pad = nc * Q - L
        x, Bg, Cg = (F.pad(v, (0, 0, 0, pad)) for v in (x, Bg, Cg))
        a = F.pad(a, (0, pad))
    x, Bg, Cg = (v.reshape(g * nc, Q, v.shape[-1]) for v in (x, Bg, Cg))  # (g*nc, Q, p|n)
    a = a.reshape(g * nc, Q)

    # L[t, s] = exp(Σ_{k=s+1..t} log_a_k) inside each chunk (0 above the diagonal)
    Lmask = torch.exp(segsum_torch(a))  # (g*nc, Q, Q)
    # 1: diagonal blocks  Y = (L ∘ C Bᵀ) X
    G = torch.bmm(Cg, Bg.transpose(1, 2))  # (g*nc, Q, Q)
    G = G * Lmask if grad else G.mul_(Lmask)
    y = torch.bmm(G, x)  # (g*nc, Q, p)

    # 2: chunk states  S(c) = Σ_s exp(Σ_{k=s+1..end} log_a_k) B_s x_sᵀ   (stored as (n, p))
    to_end = Lmask[:, -1, :]  # (g*nc, Q): the last row of L
    S = torch.bmm((Bg * to_end[..., None]).transpose(1, 2), x).reshape(g, nc, n, p)  # (g, nc, n, p)

    # 3: inter-chunk recurrence  H_in(c+1) = exp(Σ_{k in c} log_a_k) H_in(c) + S(c)
    cs = torch.cumsum(a, dim=-1)  # (g*nc, Q): Σ_{k=start..t} log_a_k
    from_start = torch.exp(cs)
    H_in = _states_entering(S, cs[:, -1].reshape(g, nc))  # (g, nc, n, p)

    # 4: state -> output  y_t += exp(Σ_{k=start..t} log_a_k) C_t H_in
    Cd = Cg * from_start[..., None]  # (g*nc, Q, n)
    H_in = H_in.reshape(g * nc, n, p)
    y = torch.baddbmm(y, Cd, H_in) if grad else y.baddbmm_(Cd, H_in)
    return y.reshape(g, nc * Q, p)[:, :L]  # (g, L, p)


def ssd_chunked_torch(X, log_a, B, C, *, chunk_size: int = 64) -> torch.Tensor:
    """Chunked SSD; returns Y (b, L, h, p) in the inputs' dtype and device."""
    b, L, h, p = X.shape
    Q = min(int(chunk_size), L)
    nc = -(-L // Q)
    grad = torch.is_grad_enabled() and any(v.requires_grad for v in (X, log_a, B, C))
    if X.device.type == "cpu":
        group = max(1, min(h, _CPU_GROUP_BYTES // (nc * Q * Q * X.element_size())))
    else:
        group = h
    Y = None if grad else X.new_empty(b, L, h, p)
    rows = []
    for bi in range(b):
        parts = []
        for h0 in range(0, h, group):
            hs = slice(h0, min(h0 + group, h))
            x, Bg, Cg = (v[bi, :, hs].transpose(0, 1) for v in (X, B, C))  # (g, L, p|n) views
            a = log_a[bi, :, hs].transpose(0, 1)  # (g, L)
            y = _block(x, a, Bg, Cg, Q, grad)  # (g, L, p)
            if grad:
                parts.append(y)
            else:
                Y[bi, :, hs] = y.transpose(0, 1)
        if grad:
            rows.append(torch.cat(parts, dim=0))  # (h, L, p)
    return Y if not grad else torch.stack(rows, dim=0).permute(0, 2, 1, 3)  # (b, L, h, p)
