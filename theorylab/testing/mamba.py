"""Mamba's selective scan with Mamba's own signature and layouts, on theorylab's selective scan.

Drop-in reference for a kernel written against Gu & Dao, "Mamba: Linear-Time Sequence
Modeling with Selective State Spaces" (2023, arXiv:2312.00752), Algorithm 2, in the
argument conventions of the authors' ``selective_scan_fn``.  Per batch b and channel d,
with state h in R^N and Δ = softplus(delta + delta_bias) (or delta + delta_bias):

    h_t = exp(Δ_t A[d]) ⊙ h_{t-1} + Δ_t u_t B_t[d]         (h_{-1} = 0)
    y_t = <C_t[d], h_t> + D[d] u_t,        out = y ⊙ silu(z)  (when z is given)

where B_t[d] (and C_t[d]) is the channel's own row of a time-invariant (d, n) B, the batch's
(n,) column of a (b, n, L) B shared by every channel, or the column of the channel's *group*
for a (b, g, n, L) B: channel d belongs to group d // (dim / g).

Layouts (Mamba's): u, delta, z (batch, dim, L); A (dim, n); B, C (dim, n) or (batch, n, L)
or (batch, g, n, L); D, delta_bias (dim,); out (batch, dim, L); last_state (batch, dim, n).

Precision (as Mamba accepts it): u, delta, z, B, C may be float16 / bfloat16 with float32
A, D, delta_bias; everything is computed in float32 (float64 when any input is float64) and
``out`` is returned in u's dtype, ``last_state`` in the compute dtype.

How it is computed: channels are cut into runs that share one B and one C (a group of a
grouped layout; a single channel of a time-invariant one; all channels of a (b, n, L) one)
and each run is one call of :func:`theorylab.ssm.selective_scan` (torch backend:
differentiable, so the reference also gives the backward pass), after the (b, d, L) ->
(b, L, d) transposes.  What it does not cover: complex A (Mamba's S4D-complex variant) and
a negative Δ (theorylab's scan is the claim's domain Δ >= 0, A <= 0): both raise.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ._kit import HALF, check_flag, check_tensor, compute_dtype, tensor

__all__ = ["selective_scan_ref", "mamba_selective_scan_inputs", "B_LAYOUTS"]

B_LAYOUTS = ("invariant", "variable", "grouped")


def _bc_layout(name, X, b, d, n, L):
    """Validate B or C; return (kind, groups)."""
    if X is None or not hasattr(X, "ndim"):
        check_tensor(name, X)
    if X.ndim == 2:
        check_tensor(name, X, (d, n), layout="(dim, n): time-invariant")
        return "invariant", d
    if X.ndim == 3:
        check_tensor(name, X, (b, n, L), layout="(batch, n, L)")
        return "variable", 1
    check_tensor(name, X, (b, None, n, L), layout="(batch, groups, n, L)")
    g = int(X.shape[1])
    if d % g:
        raise ValueError(f"{name} has {g} groups, which must divide dim = {d}; got shape {tuple(X.shape)}")
    return "grouped", g


def _bc_slice(X, kind, groups, dim, c0, batch, L):
    """(batch, L, n) columns shared by the run of channels starting at c0."""
    if kind == "invariant":  # (dim, n): a run is one channel, its row at every batch and time
        return X[c0][None, None, :].expand(batch, L, -1)
    if kind == "variable":
        return X.transpose(1, 2)  # (b, n, L) -> (b, L, n)
    return X[:, c0 // (dim // groups)].transpose(1, 2)  # (b, g, n, L) -> (b, L, n) of the run's group


def _runs(dim, kinds):
    """Maximal runs of channels that share one B and one C: [(c0, c1)]."""
    def key(c):
        return tuple(c if k == "invariant" else (0 if k == "variable" else c // (dim // g)) for k, g in kinds)

    runs, c0 = [], 0
    for c in range(1, dim + 1):
        if c == dim or key(c) != key(c0):
            runs.append((c0, c))
            c0 = c
    return runs


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False):
    """Mamba's selective scan, Mamba's signature; see the module docstring.

    Returns ``out`` (batch, dim, L) in u's dtype, or ``(out, last_state)`` with
    ``last_state`` (batch, dim, n) when ``return_last_state``.  Differentiable.
    """
    import torch
    import torch.nn.functional as F

    from ..ssm import selective_scan

    check_tensor("u", u, (None, None, None), layout="(batch, dim, L)")
    b, d, L = (int(s) for s in u.shape)
    check_tensor("A", A, (d, None), layout="(dim, n)")
    n = int(A.shape[1])
    check_tensor("delta", delta, (b, d, L), layout="(batch, dim, L)")
    kinds = [_bc_layout("B", B, b, d, n, L), _bc_layout("C", C, b, d, n, L)]
    check_tensor("D", D, (d,), optional=True)
    check_tensor("z", z, (b, d, L), optional=True, layout="(batch, dim, L)")
    check_tensor("delta_bias", delta_bias, (d,), optional=True)
    delta_softplus, return_last_state = check_flag("delta_softplus", delta_softplus), check_flag(
        "return_last_state", return_last_state)

    ct = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    dl = delta.to(ct)
    if delta_bias is not None:
        dl = dl + delta_bias.to(ct)[:, None]
    if delta_softplus:
        dl = F.softplus(dl)
    x, dl = u.to(ct).transpose(1, 2), dl.transpose(1, 2)  # (b, d, L) -> (b, L, d)
    Ac, Bc, Cc = A.to(ct), B.to(ct), C.to(ct)
    Dc = None if D is None else D.to(ct)
    ys, hs = [], []
    for c0, c1 in _runs(d, kinds):
        Bs = _bc_slice(Bc, *kinds[0], d, c0, b, L)  # (b, L, n)
        Cs = _bc_slice(Cc, *kinds[1], d, c0, b, L)
        y, h = selective_scan(x[..., c0:c1], dl[..., c0:c1], Ac[c0:c1], Bs, Cs, None if Dc is None else Dc[c0:c1],
                              return_final_state=True, backend="torch")
        ys.append(y)
        hs.append(h)
    out = torch.cat(ys, dim=2).transpose(1, 2)  # (b, L, d) -> (b, d, L)
    if z is not None:
        out = out * F.silu(z.to(ct))
    out = out.to(u.dtype)
    return (out, torch.cat(hs, dim=1)) if return_last_state else out


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def mamba_selective_scan_inputs(dtype="float32", *, max_length: int = 17, max_batch: int = 2, max_dim: int = 6,
                                layouts=B_LAYOUTS, options: bool = True) -> st.SearchStrategy[dict]:
    """Keyword arguments of :func:`selective_scan_ref` (torch tensors), Mamba's layouts.

    Draws batch, dim (1..max_dim), state n in {1, 2, 3, 5} (so d != n is common), length
    L in 1..max_length, a layout of B and of C from ``layouts`` (grouped: g a divisor of dim,
    1 included), and -- with ``options`` -- D, z, delta_bias, delta_softplus and
    return_last_state on or off.  u, delta, z, B, C in ``dtype``; A, D, delta_bias in float32
    when ``dtype`` is half precision (Mamba's mixed precision), else in ``dtype``.
    Values: Δ in [1e-2, 0.5] after the bias and softplus, A = -exp(U[log 0.1, log 2]).
    """
    wdtype = "float32" if dtype in HALF else dtype
    for lay in layouts:
        if lay not in B_LAYOUTS:
            raise ValueError(f"layouts must be drawn from {B_LAYOUTS}; got {lay!r}")

    @st.composite
    def build(draw):
        b, d = draw(st.integers(1, max_batch)), draw(st.integers(1, max_dim))
        n, L = draw(st.sampled_from((1, 2, 3, 5))), draw(st.integers(1, max_length))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        flags = {k: (draw(st.booleans()) if options else False)
                 for k in ("D", "z", "delta_bias", "delta_softplus", "return_last_state")}
        target = np.exp(rng.uniform(np.log(1e-2), np.log(0.5), size=(b, d, L)))  # Δ after bias and softplus
        bias = rng.uniform(0.0, 5e-3, size=d) if flags["delta_bias"] else np.zeros(d)
        raw = np.log(np.expm1(target)) if flags["delta_softplus"] else target
        p = {"u": tensor(rng.standard_normal((b, d, L)), dtype), "delta": tensor(raw - bias[:, None], dtype),
             "A": tensor(-np.exp(rng.uniform(np.log(0.1), np.log(2.0), size=(d, n))), wdtype)}
        for name in ("B", "C"):
            lay = draw(st.sampled_from(layouts))
            if lay == "invariant":
                shape = (d, n)
            elif lay == "variable":
                shape = (b, n, L)
            else:
                shape = (b, draw(st.sampled_from([g for g in range(1, d + 1) if d % g == 0])), n, L)
            p[name] = tensor(rng.standard_normal(shape), dtype)
        if flags["D"]:
            p["D"] = tensor(rng.standard_normal(d), wdtype)
        if flags["z"]:
            p["z"] = tensor(rng.standard_normal((b, d, L)), dtype)
        if flags["delta_bias"]:
            p["delta_bias"] = tensor(bias, wdtype)
        p["delta_softplus"] = flags["delta_softplus"]
        p["return_last_state"] = flags["return_last_state"]
        return p

    return build()
