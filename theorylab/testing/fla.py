"""flash-linear-attention-style references: simple GLA, GLA, retention, linear attention.

Drop-in references for kernels written against the conventions of the fla library
(``chunk_simple_gla``, ``chunk_gla``, ``chunk_retention``, ``chunk_linear_attn``): layout
q, k (B, T, H, K), v (B, T, H, V), states (B, H, K, V) ("K first"), every function returning
``(o, final_state)`` with ``final_state = None`` unless ``output_final_state``.  Per batch
and head, with scale s (default K^-1/2) and a state S in R^{K x V} (S_{-1} = initial_state,
default 0):

* **GLA** (Yang et al., "Gated Linear Attention Transformers with Hardware-Efficient
  Training", 2023, arXiv:2312.06635): g (B, T, H, K) log forget gates (g <= 0),
  S_t = diag(exp(g_t)) S_{t-1} + k_t v_tᵀ,  o_t = s q_tᵀ S_t;
* **simple GLA**: one gate per head, g (B, T, H), S_t = exp(g_t) S_{t-1} + k_t v_tᵀ (or a
  data-independent ``g_gamma`` (H,): g_t = g_gamma);
* **retention** (Sun et al., "Retentive Network", 2023, arXiv:2307.08621): simple GLA
  with g_gamma[h] = log(1 - 2^(-5-h));
* **linear attention** (Katharopoulos et al. 2020, identity feature map):
  S_t = S_{t-1} + k_t v_tᵀ, o_t = s q_tᵀ S_t, and with ``normalize`` (fla's default)
  o_t / (s q_t · z_t + 1e-10) with z_t = z_{-1} + Σ_{u<=t} k_u; ``initial_state`` is then
  a pair (S, z (B, 1, H, K)) and so is the final state.

Computed with theorylab's own functions, torch backend (so differentiable): simple GLA and
retention are the scalar-decay SSM :func:`theorylab.ssm.ssd` (X = v, B = k, C = s q,
log_a = g; the state Hᵀ, carried by :func:`theorylab.testing.mamba2.ssd_with_states`);
GLA is :func:`theorylab.ssm.gateloop` with the real gates a = exp(g) (its real part);
linear attention is :func:`theorylab.ssm.linear_attention` with the values [v, 1], whose
last output column is the normalizer.  Precision: float32 (float64 when any input is);
``o`` in q's dtype, states in the compute dtype.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from ._kit import HALF, check_flag, check_tensor, compute_dtype, scalar_scale, tensor
from .mamba2 import ssd_with_states

__all__ = ["chunk_simple_gla_ref", "chunk_gla_ref", "chunk_retention_ref", "chunk_linear_attn_ref", "fla_inputs",
           "FLA_KINDS"]

FLA_KINDS = ("simple_gla", "gla", "retention", "linear_attn")


def _qkv(q, k, v):
    check_tensor("q", q, (None, None, None, None), layout="(B, T, H, K)")
    B, T, H, K = (int(s) for s in q.shape)
    check_tensor("k", k, (B, T, H, K), layout="(B, T, H, K), like q")
    check_tensor("v", v, (B, T, H, None), layout="(B, T, H, V)")
    return B, T, H, K, int(v.shape[3])


def _check_gate_values(name, g):
    """Log forget gates (already checked finite by check_tensor) must be <= 0."""
    if float(g.detach().max()) > 0:
        raise ValueError(f"{name} must be log forget gates <= 0; max is {float(g.detach().max())}")


def _scalar_decay(q, k, v, g, scale, initial_state, output_final_state):
    """o_t = s q_tᵀ S_t, S_t = exp(g_t) S_{t-1} + k_t v_tᵀ through ssd; g (B, T, H)."""
    B, T, H, K, V = _qkv(q, k, v)
    check_tensor("initial_state", initial_state, (B, H, K, V), optional=True, layout="(B, H, K, V)")
    output_final_state = check_flag("output_final_state", output_final_state)
    s = scalar_scale(scale, K)
    ct = compute_dtype(q, k, v, g, initial_state)
    h0 = None if initial_state is None else initial_state.to(ct).transpose(-1, -2)  # S (K, V) -> H (V, K)
    o, hT = ssd_with_states(v.to(ct), g.to(ct), k.to(ct), q.to(ct) * s, h0, final_state=output_final_state)
    return o.to(q.dtype), (hT.transpose(-1, -2) if output_final_state else None)


def chunk_simple_gla_ref(q, k, v, g=None, g_gamma=None, scale=None, initial_state=None, output_final_state=False):
    """Simple GLA, fla's signature: g (B, T, H) or g_gamma (H,) (exactly one, both log gates <= 0).
    Returns (o (B, T, H, V), final_state (B, H, K, V) or None)."""
    B, T, H, K, V = _qkv(q, k, v)
    if (g is None) == (g_gamma is None):
        raise ValueError("give exactly one of g (B, T, H) and g_gamma (H,)")
    if g is not None:
        check_tensor("g", g, (B, T, H), layout="(B, T, H)")
        _check_gate_values("g", g)
    else:
        check_tensor("g_gamma", g_gamma, (H,), layout="(H,)")
        _check_gate_values("g_gamma", g_gamma)
        g = g_gamma[None, None, :].expand(B, T, H)
    return _scalar_decay(q, k, v, g, scale, initial_state, output_final_state)


def chunk_retention_ref(q, k, v, scale=None, initial_state=None, output_final_state=False):
    """Retention, fla's signature: simple GLA with the fixed per-head decay log(1 - 2^(-5-h))."""
    import torch

    B, T, H, K, V = _qkv(q, k, v)
    ct = compute_dtype(q, k, v, initial_state)
    g_gamma = torch.log1p(-torch.exp2(-5.0 - torch.arange(H, dtype=ct, device=q.device)))
    return _scalar_decay(q, k, v, g_gamma[None, None, :].expand(B, T, H), scale, initial_state, output_final_state)


def chunk_gla_ref(q, k, v, g, scale=None, initial_state=None, output_final_state=False):
    """GLA, fla's signature: g (B, T, H, K) log forget gates <= 0.
    Returns (o (B, T, H, V), final_state (B, H, K, V) or None)."""
    import torch

    from ..ssm import gateloop

    B, T, H, K, V = _qkv(q, k, v)
    check_tensor("g", g, (B, T, H, K), layout="(B, T, H, K), like q")
    _check_gate_values("g", g)
    check_tensor("initial_state", initial_state, (B, H, K, V), optional=True, layout="(B, H, K, V)")
    output_final_state = check_flag("output_final_state", output_final_state)
    s = scalar_scale(scale, K)
    ct = compute_dtype(q, k, v, g, initial_state)
    cx = torch.complex128 if ct == torch.float64 else torch.complex64
    h0 = None if initial_state is None else initial_state.to(ct).to(cx)
    o, hT = gateloop(q.to(ct) * s, k.to(ct), v.to(ct), torch.exp(g.to(ct)), initial_state=h0, return_final_state=True,
                     backend="torch")
    return o.real.to(q.dtype), (hT.real if output_final_state else None)


def chunk_linear_attn_ref(q, k, v, scale=None, initial_state=None, output_final_state=False, normalize=True):
    """Linear attention, fla's signature (``normalize=True`` is fla's default).
    Returns (o (B, T, H, V), final_state): S (B, H, K, V), or (S, z (B, 1, H, K)) when
    ``normalize``; None unless ``output_final_state``."""
    import torch

    from ..ssm import linear_attention

    B, T, H, K, V = _qkv(q, k, v)
    normalize, output_final_state = check_flag("normalize", normalize), check_flag("output_final_state",
                                                                                     output_final_state)
    s = scalar_scale(scale, K)
    S0, z0 = (initial_state if normalize and isinstance(initial_state, tuple) else (initial_state, None))
    check_tensor("initial_state", S0, (B, H, K, V), optional=True, layout="(B, H, K, V)")
    check_tensor("initial_state[1] (z)", z0, (B, 1, H, K), optional=True, layout="(B, 1, H, K)")
    ct = compute_dtype(q, k, v, S0, z0)
    qc, kc, vc = q.to(ct) * s, k.to(ct), v.to(ct)
    v1 = torch.cat([vc, vc.new_ones(B, T, H, 1)], dim=-1)  # (B, T, H, V+1): last column -> s q_t · z_t
    init = qc.new_zeros(B, H, K, V + 2)  # theorylab's [S | z] state for the values [v, 1]
    if S0 is not None:
        init = torch.cat([S0.to(ct), init[..., V:]], dim=-1)
    if z0 is not None:
        init = torch.cat([init[..., :V], z0.to(ct)[:, 0, :, :, None], init[..., V + 1:]], dim=-1)
    y, S = linear_attention(qc, kc, v1, initial_state=init, return_final_state=True, backend="torch")
    o = y[..., :V] / (y[..., V:] + 1e-10) if normalize else y[..., :V]
    final = None
    if output_final_state:
        final = (S[..., :V], S[..., V][:, None]) if normalize else S[..., :V]
    return o.to(q.dtype), final


def fla_inputs(kind: str, dtype="float32", *, max_length: int = 17, max_batch: int = 2, max_heads: int = 3,
               options: bool = True) -> st.SearchStrategy[dict]:
    """Keyword arguments of the ``kind`` reference (one of :data:`FLA_KINDS`), torch tensors.

    Draws B, H, T in 1..max_length, K and V in {1, 2, 3, 5} (K != V is common), and -- with
    ``options`` -- a scale, an initial state and output_final_state (simple GLA: g or
    g_gamma; linear attention: normalize, and a z state).  Gates: logsigmoid of N(2, 1)
    (decays mostly near 1, some strong).  Linear attention with ``normalize``: q, k > 0
    (exp of a normal), so the normalizer cannot vanish.
    """
    if kind not in FLA_KINDS:
        raise ValueError(f"kind must be one of {FLA_KINDS}; got {kind!r}")
    sdtype = "float32" if dtype in HALF else dtype

    @st.composite
    def build(draw):
        B, H, T = draw(st.integers(1, max_batch)), draw(st.integers(1, max_heads)), draw(st.integers(1, max_length))
        K, V = draw(st.sampled_from((1, 2, 3, 5))), draw(st.sampled_from((1, 2, 3, 5)))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        on = (lambda: draw(st.booleans())) if options else (lambda: False)
        normalize = kind == "linear_attn" and on()
        qk = (lambda sh: np.exp(0.5 * rng.standard_normal(sh))) if normalize else rng.standard_normal
        p = {"q": tensor(qk((B, T, H, K)), dtype), "k": tensor(qk((B, T, H, K)), dtype),
             "v": tensor(rng.standard_normal((B, T, H, V)), dtype)}

        def logsig(sh):
            return -np.logaddexp(0.0, -(2.0 + rng.standard_normal(sh)))

        if kind == "gla":
            p["g"] = tensor(logsig((B, T, H, K)), dtype)
        elif kind == "simple_gla":
            if on():
                p["g_gamma"] = tensor(logsig(H), sdtype)
            else:
                p["g"] = tensor(logsig((B, T, H)), dtype)
        if on():
            p["scale"] = float(draw(st.sampled_from((0.5, 1.0, 2.0))))
        if on():
            S0 = tensor(rng.standard_normal((B, H, K, V)), sdtype)
            if normalize and on():
                S0 = (S0, tensor(np.exp(rng.standard_normal((B, 1, H, K))), sdtype))
            p["initial_state"] = S0
        p["output_final_state"] = on()
        if kind == "linear_attn":
            p["normalize"] = normalize
        return p

    return build()
