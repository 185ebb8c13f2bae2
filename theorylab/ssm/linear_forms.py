"""Causal linear attention and Cottention are RNNs with a matrix state.

Papers: Katharopoulos, Vyas, Pappas & Fleuret, "Transformers are RNNs: Fast Autoregressive
Transformers with Linear Attention" (2020, arXiv:2006.16236), Eq. (4)-(6) and (16)-(20);
#74 Mongaras, Dohm & Larson, "Cottention: Linear Transformers With Cosine Attention" (2024,
arXiv:2409.18747).

Per batch b and head h, with a feature map φ applied to every query and key:

* **parallel (attention) form**:  Y = (φ(Q) φ(K)ᵀ ∘ L) V,  L[t, s] = 1 if s <= t else 0;
  normalized:  y_t = Σ_{s<=t} (φ(q_t)·φ(k_s)) v_s / Σ_{s<=t} φ(q_t)·φ(k_s);
* **recurrent form**, a state S_t in R^{dk x dv} and a normalizer z_t in R^{dk}:

      S_t = S_{t-1} + φ(k_t) v_tᵀ,     z_t = z_{t-1} + φ(k_t),
      y_t = φ(q_t)ᵀ S_t              (unnormalized)   or   φ(q_t)ᵀ S_t / φ(q_t)ᵀ z_t.

  Unrolling S_t = Σ_{s<=t} φ(k_s) v_sᵀ gives φ(q_t)ᵀ S_t = Σ_{s<=t} (φ(q_t)·φ(k_s)) v_sᵀ,
  the t-th row of the parallel form: the claim.  Both are stored as one array
  [S | z] in R^{dk x (dv+1)} (z is S applied to an appended value 1).
* **chunked form** (torch backend; the numba backend compiles the recurrence): chunks of
  T steps; with S_in the state entering chunk c,
  Y_c = (φ(Q_c) φ(K_c)ᵀ ∘ L) V_c + φ(Q_c) S_in and S_in(c) = Σ_{c' < c} φ(K_c')ᵀ V_c'
  (an exclusive cumulative sum over chunks).

Feature maps: ``"identity"`` (φ(x) = x) and ``"elu1"`` (φ(x) = elu(x) + 1 > 0, the paper's
choice).  ``normalize=True`` needs a positive feature map (the denominator is then > 0).

**Cottention** (#74) is the case φ(x) = x / ||x|| (cosine similarity), no softmax and no
normalizer.  The paper's stabilized variant controls the magnitude of the similarity sums
with a learned scalar per head; in the authors' released causal (GPT) code each value is
divided by the number of tokens its row of the causal mask sees raised to σ(m), m learned
per head (initialized at 0.5).  Here: v_s / n_s^p with n_s = position_offset + s + 1 and a
fixed exponent p >= 0 (p = σ(m); p = 0: plain cosine attention), so

    y_t = Σ_{s<=t} (q̂_t·k̂_s) v_s / n_s^p,    S_t = S_{t-1} + k̂_t (v_t / n_t^p)ᵀ,  y_t = S_tᵀ q̂_t.

Any per-position scale of the values leaves the RNN identity intact.

Glossary (code -> paper): q, k, v -> Q, K, V; feature_map -> φ; S -> S (Katharopoulos) /
the RNN hidden state (Cottention); z -> Z; p -> the stabilizing exponent.

Shapes: q, k (batch, length, heads, dk); v (batch, length, heads, dv); y like v; state
(batch, heads, dk, dv + 1).
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import is_tensor, resolve_backend, to_numpy
from ._contract import check_real, finish, torch_args, upcast

__all__ = [
    "linear_attention",
    "linear_attention_recurrent",
    "linear_attention_parallel",
    "la_step",
    "cottention",
    "cottention_parallel",
    "make_linear_attention_inputs",
    "FEATURE_MAPS",
]

BACKENDS = ("ref", "numba", "torch")
FEATURE_MAPS = ("identity", "elu1", "cosine")


# ---------------------------------------------------------------------------------------
# inputs and validation (shared by the linear-attention family)
# ---------------------------------------------------------------------------------------
def make_linear_attention_inputs(rng: np.random.Generator, *, batch=1, length=8, heads=2, dk=3, dv=5,
                                 dtype=np.float64) -> dict:
    """q, k ~ N(0, 1/dk), v ~ N(0, 1): a valid random instance of shape (batch, length, heads, d)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    b, L, h, dk, dv = (V.check_size(name, x) for name, x in (("batch", batch), ("length", length), ("heads", heads),
                                                              ("dk", dk), ("dv", dv)))
    out = {
        "q": rng.standard_normal((b, L, h, dk)) / np.sqrt(dk),
        "k": rng.standard_normal((b, L, h, dk)) / np.sqrt(dk),
        "v": rng.standard_normal((b, L, h, dv)),
    }
    return {key: val.astype(dtype) for key, val in out.items()}


def check_qkv(q, k, v, *, same_dim=False) -> str:
    """q, k (b, L, h, dk), v (b, L, h, dv): one container and dtype, nonempty, finite.

    ``same_dim=True`` also requires dv == dk (elementwise layers).  Returns the container kind.
    """
    kind = V.check_arrays({"q": q, "k": k, "v": v})
    for name, a in (("q", q), ("k", k), ("v", v)):
        V.check_ndim(name, a, 4, "(batch, length, heads, dim)")
    b, L, h, dk = (int(s) for s in q.shape)
    shapes = {"q": q.shape, "k": k.shape, "v": v.shape}
    V.check_shape("k", k, (b, L, h, dk), shapes)
    V.check_shape("v", v, (b, L, h, dk if same_dim else int(v.shape[3])), shapes)
    for name, a in (("q", q), ("k", k), ("v", v)):
        V.check_nonempty(name, a, "(every size must be >= 1)")
        V.check_finite(name, a)
    return kind


def check_state(name, state, expected: tuple, like, shapes: dict) -> None:
    """A carried state: same container, dtype and device as ``like``, shape ``expected``, finite."""
    if state is None:
        return
    if is_tensor(state) != is_tensor(like) or not (is_tensor(state) or isinstance(state, np.ndarray)):
        raise TypeError(f"{name} must be the same container kind as the inputs ({type(like).__name__}); "
                        f"got {type(state).__name__}")
    if V.dtype_name(state) != V.dtype_name(like):
        raise TypeError(f"{name} must have dtype {V.dtype_name(like)}; got {V.dtype_name(state)}")
    V.check_arrays({name: state})  # a tensor on the 'meta' device is refused here
    if is_tensor(state) and state.device != like.device:
        raise ValueError(f"{name} must be on the inputs' device {like.device}; got {state.device}")
    V.check_shape(name, state, expected, shapes)
    V.check_finite(name, state)


def _feature(x, feature_map: str):
    """φ(x) elementwise on numpy or torch; "cosine" normalizes the last axis to unit length."""
    if feature_map == "identity":
        return x
    if feature_map == "elu1":
        # elu(x) + 1 written as e^x for x <= 0: forming elu(x) = e^x - 1 first and adding 1 loses every
        # digit of e^x once x < -37 (float64), and a query whose features all round to 0 divides 0 by 0
        if is_tensor(x):
            import torch

            return torch.where(x > 0, x + 1.0, torch.exp(torch.clamp(x, max=0.0)))
        return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))
    if feature_map == "cosine":
        norm = (x * x).sum(-1, keepdims=True) ** 0.5 if not is_tensor(x) else x.norm(dim=-1, keepdim=True)
        if (norm == 0).any():
            raise ValueError("cosine feature map: a query or key vector is exactly zero (its direction is undefined)")
        return x / norm
    raise ValueError(f"unknown feature_map {feature_map!r}; valid: {FEATURE_MAPS}")


def _check_options(feature_map, normalize):
    if feature_map not in FEATURE_MAPS:
        raise ValueError(f"unknown feature_map {feature_map!r}; valid: {FEATURE_MAPS}")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be a bool; got {type(normalize).__name__}")
    if normalize and feature_map != "elu1":
        raise ValueError(f"normalize=True needs a positive feature map ('elu1'); got feature_map={feature_map!r}, "
                         "whose denominator φ(q)·Σφ(k) can vanish")


# ---------------------------------------------------------------------------------------
# reference forms (numpy float64)
# ---------------------------------------------------------------------------------------
def la_step(S, fq_t, fk_t, v1_t):
    """One step of the recurrence: S_t = S_{t-1} + φ(k_t) [v_t, 1]ᵀ, out_t = φ(q_t)ᵀ S_t.

    S (..., dk, dv+1); fq_t, fk_t (..., dk); v1_t (..., dv+1).  Plain broadcasting and sums,
    so it also runs on object arrays of sympy symbols (the claim's induction-step proof runs
    this very function).  Returns (S_t, out_t).
    """
    S = S + fk_t[..., :, None] * v1_t[..., None, :]  # (..., dk, dv+1)
    return S, (fq_t[..., :, None] * S).sum(axis=-2)  # (..., dv+1)


def linear_attention_recurrent(q, k, v, *, feature_map="identity", normalize=False, initial_state=None):
    """float64 loop of S_t = S_{t-1} + φ(k_t)[v_t, 1]ᵀ, y_t = φ(q_t)ᵀ S_t.  Returns (y, state)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    b, L, h, dk = q.shape
    dv = v.shape[3]
    fq, fk = _feature(q, feature_map), _feature(k, feature_map)
    v1 = np.concatenate([v, np.ones((b, L, h, 1))], axis=-1)  # (b, L, h, dv+1): [v, 1]
    S = np.zeros((b, h, dk, dv + 1)) if initial_state is None else np.array(initial_state, dtype=np.float64)
    out = np.empty((b, L, h, dv + 1))
    for t in range(L):
        S, out[:, t] = la_step(S, fq[:, t], fk[:, t], v1[:, t])  # (b, h, dk, dv+1), (b, h, dv+1)
    y = out[..., :dv] / out[..., dv:] if normalize else out[..., :dv]  # (b, L, h, dv)
    return y, S


def linear_attention_parallel(q, k, v, *, feature_map="identity", normalize=False):
    """float64 materialized Y = (φ(Q) φ(K)ᵀ ∘ L) V (normalized: divided by the row sums)."""
    q, k, v = (np.asarray(a, dtype=np.float64) for a in (q, k, v))
    L = q.shape[1]
    fq, fk = _feature(q, feature_map), _feature(k, feature_map)
    A = np.einsum("bthk,bshk->bhts", fq, fk) * np.tril(np.ones((L, L)))  # (b, h, L, L)
    y = np.einsum("bhts,bshv->bthv", A, v)  # (b, L, h, dv)
    if normalize:
        y = y / np.transpose(A.sum(-1), (0, 2, 1))[..., None]  # row sums (b, L, h, 1)
    return y


def _stabilizer(L, p, offset):
    """n_s^{-p}, n_s = offset + s + 1: Cottention's division of each value by a power of its token count."""
    return (offset + 1.0 + np.arange(L)) ** (-float(p))  # (L,)


def cottention_parallel(q, k, v, *, p=0.0, position_offset=0):
    """float64 materialized cosine attention (Q̂ K̂ᵀ ∘ L) V', v'_s = v_s / n_s^p (q̂, k̂ of unit length)."""
    v = np.asarray(v, dtype=np.float64)
    return linear_attention_parallel(q, k, v * _stabilizer(v.shape[1], p, position_offset)[None, :, None, None],
                                     feature_map="cosine")


# ---------------------------------------------------------------------------------------
# torch: the chunked form
# ---------------------------------------------------------------------------------------
def _chunked_torch(fq, fk, v1, S0, chunk_size: int):
    """Y = (φQ φKᵀ ∘ L) V per chunk + φQ S_in; S_in = exclusive cumsum of chunk states."""
    import torch

    b, L, h, dk = fq.shape
    T = min(int(chunk_size), L)  # a chunk longer than the sequence would only add padding
    nc = -(-L // T)
    pad = nc * T - L
    if pad:  # zero keys/values add nothing to any state; padded rows are dropped
        fq, fk, v1 = (torch.nn.functional.pad(x, (0, 0, 0, 0, 0, pad)) for x in (fq, fk, v1))
    Qc, Kc, Vc = (x.reshape(b, nc, T, h, x.shape[-1]) for x in (fq, fk, v1))  # (b, nc, T, h, d)
    mask = torch.ones(T, T, dtype=torch.bool, device=fq.device).tril()
    A = torch.einsum("bcthk,bcshk->bchts", Qc, Kc).masked_fill(~mask, 0.0)  # (b, nc, h, T, T)
    intra = torch.einsum("bchts,bcshv->bcthv", A, Vc)  # (b, nc, T, h, dv+1)
    dS = torch.einsum("bcshk,bcshv->bchkv", Kc, Vc)  # (b, nc, h, dk, dv+1): chunk states
    # exclusive prefix sum over chunks + carried state (summed forward, never as cumsum - dS: that
    # difference loses the digits of a small state entering a chunk that adds a large one)
    S_in = torch.cumsum(torch.cat([S0[:, None], dS[:, :-1]], dim=1), dim=1)  # (b, nc, h, dk, dv+1)
    inter = torch.einsum("bcthk,bchkv->bcthv", Qc, S_in)  # (b, nc, T, h, dv+1)
    out = (intra + inter).reshape(b, nc * T, h, -1)[:, :L]  # (b, L, h, dv+1)
    return out, S_in[:, -1] + dS[:, -1]


# ---------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------
def _run(q, k, v, feature_map, normalize, initial_state, backend, chunk_size, p=0.0, position_offset=0):
    """Validate, dispatch, return ``(y, state)``; values are scaled v_s / n_s^p first (Cottention)."""
    check_qkv(q, k, v)
    b, L, h, dk = (int(s) for s in q.shape)
    dv = int(v.shape[3])
    check_state("initial_state", initial_state, (b, h, dk, dv + 1), q, {"q": q.shape, "v": v.shape})
    chunk_size = V.check_size("chunk_size", chunk_size)
    backend = resolve_backend(backend, {"q": q, "k": k, "v": v, "initial_state": initial_state}, valid=BACKENDS)
    scale = _stabilizer(L, p, position_offset)[None, :, None, None] if p != 0 else None  # (1, L, 1, 1)
    if backend == "torch":  # half precision computes in float32 (see theorylab.ssm._contract)
        import torch

        qt, kt, vt, S0 = upcast(*torch_args(q, k, v, initial_state))
        if scale is not None:
            vt = vt * torch.from_numpy(scale).to(device=vt.device, dtype=vt.dtype)
        S0 = qt.new_zeros(b, h, dk, dv + 1) if S0 is None else S0
        v1 = torch.cat([vt, vt.new_ones(b, L, h, 1)], dim=-1)  # (b, L, h, dv+1)
        out, S = _chunked_torch(_feature(qt, feature_map), _feature(kt, feature_map), v1, S0, chunk_size)
        y = out[..., :dv] / out[..., dv:] if normalize else out[..., :dv]
    elif backend == "numba":
        from ._linear_forms_numba import la_recurrent

        dt = np.float64 if V.dtype_name(q) == "float64" else np.float32
        qn, kn, vn = (to_numpy(x, dt) for x in (q, k, v))
        if scale is not None:
            vn = vn * scale.astype(dt)
        v1 = np.concatenate([vn, np.ones((b, L, h, 1), dt)], axis=-1)  # (b, L, h, dv+1)
        S0 = np.zeros((b, h, dk, dv + 1), dt) if initial_state is None else np.array(to_numpy(initial_state, dt))
        fq, fk = (np.ascontiguousarray(_feature(x, feature_map), dtype=dt) for x in (qn, kn))
        out, S = la_recurrent(fq, fk, v1, S0)
        y = out[..., :dv] / out[..., dv:] if normalize else out[..., :dv]
    else:
        vr = to_numpy(v, np.float64) if scale is None else to_numpy(v, np.float64) * scale
        y, S = linear_attention_recurrent(to_numpy(q), to_numpy(k), vr, feature_map=feature_map,
                                          normalize=normalize, initial_state=to_numpy(initial_state))
    return finish(y, q, "y"), finish(S, q, "final state")


def linear_attention(q, k, v, *, feature_map="identity", normalize=False, initial_state=None,
                     return_final_state=False, chunk_size=64, backend="auto"):
    """Causal linear attention y (batch, length, heads, dv); see the module docstring.

    ``initial_state`` (batch, heads, dk, dv+1) = [S | z] continues a previous segment;
    ``return_final_state=True`` returns ``(y, state)``.  Backends: ``"ref"`` (float64
    recurrence), ``"numba"`` (the recurrence compiled, parallel over batch x heads, in the
    input's dtype), ``"torch"`` (chunked form, ``chunk_size`` steps per chunk; CPU/CUDA;
    differentiable), ``"auto"`` (torch tensors -> torch, numpy -> numba).  numpy in -> numpy
    out; torch in -> torch out.
    """
    _check_options(feature_map, normalize)
    y, S = _run(q, k, v, feature_map, normalize, initial_state, backend, chunk_size)
    return (y, S) if return_final_state else y


def cottention(q, k, v, *, p=0.0, position_offset=0, initial_state=None, return_final_state=False,
               chunk_size=64, backend="auto"):
    """Causal cosine attention y_t = Σ_{s<=t} (q̂_t·k̂_s) v_s / n_s^p as an RNN (Cottention, #74).

    q̂, k̂ are q, k scaled to unit length; n_s = position_offset + s + 1.  For a segmented run
    pass the previous state and ``position_offset`` = tokens already consumed.  Same state
    layout and backends as :func:`linear_attention`.
    """
    p = check_real("p", p, lo=0.0)  # Python/numpy real scalars and 0-d arrays
    position_offset = V.check_size("position_offset", position_offset, lo=0)
    y, S = _run(q, k, v, "cosine", False, initial_state, backend, chunk_size, p, position_offset)
    return (y, S) if return_final_state else y
