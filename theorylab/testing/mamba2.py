"""Mamba-2's chunked scan with Mamba-2's signature and layouts, on theorylab's ``ssd``.

Drop-in reference for a kernel written against Dao & Gu, "Transformers are SSMs" (2024,
arXiv:2405.21060), in the argument conventions of the authors' ``mamba_chunk_scan_combined``.
Per batch b and head h, with Δ = clamp(softplus(dt + dt_bias), *dt_limit) (softplus only
with ``dt_softplus``), a scalar A[h] <= 0 and a state H in R^{P x N} (H_{-1} =
initial_states[b, h], default 0):

    H_t = exp(Δ_t A[h]) H_{t-1} + Δ_t x_t B_tᵀ,        y_t = H_t C_t + D[h] ⊙ x_t
    out = y ⊙ silu(z)   (when z is given);     final_states = H_{L-1}

where B_t, C_t are the columns of head h's group: head h belongs to group h // (heads / g).

Layouts (Mamba-2's): x, z (batch, L, heads, P); dt (batch, L, heads); A, dt_bias (heads,);
B, C (batch, L, g, N) with g dividing heads; D (heads, P) or (heads,); initial_states and
final_states (batch, heads, P, N).  ``chunk_size`` is accepted (any int >= 1) and passed to
``ssd``: the result does not depend on it.  Precision: computed in float32 (float64 when
any input is float64); ``out`` in x's dtype, ``final_states`` in the compute dtype.

How it is computed: one call of :func:`theorylab.ssm.ssd` (torch backend, differentiable)
with X = Δ x, log_a = Δ A and B, C repeated per head -- and the states handled by the same
call, exactly: N steps *before* the sequence with a = 1, X = initial_states[..., j] and
B = e_j write H = Σ_j initial_states[..., j] e_jᵀ = initial_states; N steps *after* it with
a = 1, X = 0 and C = e_j read y = H_{L-1} e_j, column j of the final state
(:func:`ssd_with_states`, shared with the fla references).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from ._kit import HALF, check_flag, check_tensor, compute_dtype, tensor

__all__ = ["mamba_chunk_scan_combined_ref", "ssd_with_states", "mamba2_inputs"]


def ssd_with_states(X, log_a, B, C, initial_state=None, *, chunk_size=64, final_state=False):
    """theorylab's ``ssd`` (torch) with a carried state: X (b, L, h, P), log_a (b, L, h),
    B, C (b, L, h, N), initial_state (b, h, P, N) or None.  Returns Y (b, L, h, P) and, with
    ``final_state``, H_{L-1} (b, h, P, N).  See the module docstring for the extra steps."""
    import torch

    from ..ssm import ssd

    b, L, h, P = (int(s) for s in X.shape)
    N = int(B.shape[-1])
    eye = torch.eye(N, dtype=X.dtype, device=X.device)[None, :, None, :].expand(b, N, h, N)  # (b, N, h, N): step j holds e_j
    zX, zB, za = X.new_zeros(b, N, h, P), X.new_zeros(b, N, h, N), X.new_zeros(b, N, h)
    parts_X, parts_a, parts_B, parts_C, pre = [X], [log_a], [B], [C], 0
    if initial_state is not None:  # write: step j adds initial_state[..., j] e_jᵀ, with no decay
        parts_X.insert(0, initial_state.permute(0, 3, 1, 2))  # (b, h, P, N) -> (b, N, h, P)
        parts_a.insert(0, za)
        parts_B.insert(0, eye)
        parts_C.insert(0, zB)
        pre = N
    if final_state:  # read: step j outputs H e_j, adding nothing
        parts_X.append(zX)
        parts_a.append(za)
        parts_B.append(zB)
        parts_C.append(eye)
    Xe, ae, Be, Ce = (torch.cat(p, dim=1) for p in (parts_X, parts_a, parts_B, parts_C))
    Y = ssd(Xe, ae, Be, Ce, chunk_size=chunk_size, backend="torch")  # (b, pre + L (+ N), h, P)
    if not final_state:
        return Y[:, pre:pre + L], None
    return Y[:, pre:pre + L], Y[:, pre + L:].permute(0, 2, 3, 1)  # (b, N, h, P) -> (b, h, P, N)


def mamba_chunk_scan_combined_ref(x, dt, A, B, C, chunk_size, D=None, z=None, dt_bias=None, initial_states=None,
                                  dt_softplus=False, dt_limit=(0.0, float("inf")), return_final_states=False):
    """Mamba-2's chunked selective scan, Mamba-2's signature; see the module docstring.

    Returns ``out`` (batch, L, heads, P) in x's dtype, or ``(out, final_states)`` with
    ``final_states`` (batch, heads, P, N) when ``return_final_states``.  Differentiable.
    """
    import torch
    import torch.nn.functional as F

    check_tensor("x", x, (None, None, None, None), layout="(batch, L, heads, headdim)")
    b, L, h, P = (int(s) for s in x.shape)
    check_tensor("dt", dt, (b, L, h), layout="(batch, L, heads)")
    check_tensor("A", A, (h,), layout="(heads,)")
    check_tensor("B", B, (b, L, None, None), layout="(batch, L, groups, dstate)")
    g, N = int(B.shape[2]), int(B.shape[3])
    if h % g:
        raise ValueError(f"B has {g} groups, which must divide heads = {h}; got shape {tuple(B.shape)}")
    check_tensor("C", C, (b, L, g, N), layout="(batch, L, groups, dstate), like B")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an int >= 1; got {chunk_size!r}")
    if D is not None:
        check_tensor("D", D, (h, P) if getattr(D, "ndim", 0) == 2 else (h,), layout="(heads, headdim) or (heads,)")
    check_tensor("z", z, (b, L, h, P), optional=True, layout="(batch, L, heads, headdim)")
    check_tensor("dt_bias", dt_bias, (h,), optional=True)
    check_tensor("initial_states", initial_states, (b, h, P, N), optional=True, layout="(batch, heads, headdim, dstate)")
    dt_softplus, return_final_states = check_flag("dt_softplus", dt_softplus), check_flag(
        "return_final_states", return_final_states)
    lo, hi = (float(v) for v in dt_limit)
    if not (0.0 <= lo <= hi):
        raise ValueError(f"dt_limit must be (lo, hi) with 0 <= lo <= hi; got {dt_limit!r}")

    ct = compute_dtype(x, dt, A, B, C, D, z, dt_bias, initial_states)
    delta = dt.to(ct) if dt_bias is None else dt.to(ct) + dt_bias.to(ct)
    if dt_softplus:
        delta = F.softplus(delta)
    if (lo, hi) != (0.0, math.inf):
        delta = delta.clamp(min=lo, max=hi)
    rep = h // g  # head -> its group: h // rep
    Bh, Ch = (M.to(ct).repeat_interleave(rep, dim=2) for M in (B, C))  # (b, L, g, N) -> (b, L, h, N)
    X = x.to(ct) * delta[..., None]  # (b, L, h, P)
    h0 = None if initial_states is None else initial_states.to(ct)
    y, hT = ssd_with_states(X, delta * A.to(ct), Bh, Ch, h0, chunk_size=int(chunk_size), final_state=return_final_states)
    if D is not None:
        Dc = D.to(ct)
        y = y + x.to(ct) * (Dc if Dc.ndim == 2 else Dc[:, None])
    if z is not None:
        y = y * F.silu(z.to(ct))
    out = y.to(x.dtype)
    return (out, hT) if return_final_states else out


def mamba2_inputs(dtype="float32", *, max_length: int = 17, max_batch: int = 2, max_heads: int = 4,
                  heads: int | None = None, groups: int | None = None, options: bool = True) -> st.SearchStrategy[dict]:
    """Keyword arguments of :func:`mamba_chunk_scan_combined_ref` (torch tensors), Mamba-2's layouts.

    Draws batch, heads (1..max_heads), groups g dividing heads (1 included), headdim P and
    dstate N in {1, 2, 3, 5}, L in 1..max_length, chunk_size in {1, 2, 3, 4, 8, 64} (so L is
    often not a multiple), and -- with ``options`` -- D ((heads, P) or (heads,)), z, dt_bias,
    initial_states, dt_softplus, a dt_limit and return_final_states.  x, dt, z, B, C in
    ``dtype``; A, D, dt_bias, initial_states in float32 when ``dtype`` is half precision.
    ``heads`` / ``groups`` pin those sizes (groups must divide heads).
    Values: Δ in [1e-2, 0.5] before the limit, A = -exp(U[log 0.5, log 4]).
    """
    if heads is not None and groups is not None and heads % groups:
        raise ValueError(f"groups must divide heads; got heads={heads}, groups={groups}")
    wdtype = "float32" if dtype in HALF else dtype

    @st.composite
    def build(draw):
        b = draw(st.integers(1, max_batch))
        h = heads if heads is not None else draw(st.sampled_from(
            [k for k in range(1, max_heads + 1) if groups is None or k % groups == 0]))
        g = groups if groups is not None else draw(st.sampled_from([k for k in range(1, h + 1) if h % k == 0]))
        P, N = draw(st.sampled_from((1, 2, 3, 5))), draw(st.sampled_from((1, 2, 3, 5)))
        L = draw(st.integers(1, max_length))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        f = {k: (draw(st.booleans()) if options else False)
             for k in ("D", "D2", "z", "dt_bias", "initial_states", "dt_softplus", "dt_limit", "return_final_states")}
        target = np.exp(rng.uniform(np.log(1e-2), np.log(0.5), size=(b, L, h)))
        bias = rng.uniform(0.0, 5e-3, size=h) if f["dt_bias"] else np.zeros(h)
        raw = (np.log(np.expm1(target)) if f["dt_softplus"] else target) - bias
        p = {"x": tensor(rng.standard_normal((b, L, h, P)), dtype), "dt": tensor(raw, dtype),
             "A": tensor(-np.exp(rng.uniform(np.log(0.5), np.log(4.0), size=h)), wdtype),
             "B": tensor(rng.standard_normal((b, L, g, N)), dtype), "C": tensor(rng.standard_normal((b, L, g, N)), dtype),
             "chunk_size": draw(st.sampled_from((1, 2, 3, 4, 8, 64)))}
        if f["D"]:
            p["D"] = tensor(rng.standard_normal((h, P) if f["D2"] else h), wdtype)
        if f["z"]:
            p["z"] = tensor(rng.standard_normal((b, L, h, P)), dtype)
        if f["dt_bias"]:
            p["dt_bias"] = tensor(bias, wdtype)
        if f["initial_states"]:
            p["initial_states"] = tensor(rng.standard_normal((b, h, P, N)), wdtype)
        p["dt_softplus"] = f["dt_softplus"]
        if f["dt_limit"]:
            p["dt_limit"] = (0.02, 0.3)
        p["return_final_states"] = f["return_final_states"]
        return p

    return build()
