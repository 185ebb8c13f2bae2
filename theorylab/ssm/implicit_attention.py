"""Whole gated-linear-recurrent layers are implicit causal attention: y = W_out-mix of Ĥ(x) v.

Paper: #6 Zimerman, Ali & Wolf, "A Unified Implicit Attention Formulation for Gated-Linear
Recurrent Sequence Models" (2024, arXiv:2405.16504), Sec. 3.  Layers: Mamba (#93, Gu & Dao
2023), Griffin's recurrent block with the RG-LRU (De et al. 2024, arXiv:2402.19427), RWKV-4
time mixing (Peng et al. 2023, arXiv:2305.13048).

Every layer below maps x (batch, L, d_model) to out (batch, L, d_model) through a
*value stream* v = (linear in x) of shape (batch, L, d_inner) and, per inner channel c,

    out[b, t, :] = Σ_c W_out[c, :] · Σ_{s <= t} Ĥ[b, c, t, s] · v[b, s, c],

with Ĥ(x) lower-triangular (batch, d_inner, L, L) and data-dependent.  The nonlinear parts
are absorbed into Ĥ by writing them as data-controlled diagonal matrices:
SiLU(a) = diag(σ(a)) a, gate g ⊙ y = diag(g) y, and the causal depthwise conv1d as the
lower-triangular Toeplitz matrix T[t, s] = w[k-1-(t-s)] for 0 <= t-s < k.

* Mamba:   v = x W_v (in-projection, first half), z = x W_z (second half),
           Ĥ_c = diag(SiLU(z_c)) · (M_c + D_c I) · diag(σ(T_c v_c)) · T_c,
           M_c the selective-scan hidden attention of u = SiLU(T v) (see ``selective``).
* Griffin: v = x W_v, z = x W_z, u = T v, r = σ(u W_a + b_a), i = σ(u W_i + b_i),
           log a_t = -8 r_t softplus(-Λ)  (a_t = σ(Λ)^{8 r_t}),
           Ĥ_c = diag(GeLU(z_c)) · R_c · diag(i_c) · T_c,
           R_c[t, s] = exp(Σ_{k=s+1..t} log a_k) · sqrt(1 - a_s²).
* RWKV-4:  token shift x̃_t = μ ⊙ x_t + (1-μ) ⊙ x_{t-1} (one μ per stream), k, v, r = x̃ W,
           Ĥ_c = diag(σ(r_c)) · softmax_s(ℓ_c[t, s]) with ℓ[t, s] = -(t-1-s) w + k_s (s < t),
           ℓ[t, t] = u + k_t, -inf above the diagonal: RWKV's WKV is causal softmax
           attention with a linear-in-distance decay bias and a bonus on the diagonal.

Ablations (``conv=False``, ``gate=False``) drop T or the gate in the layer *and* in Ĥ
(RWKV has no conv; ``conv`` does not change it).
Biases of conv and projections are omitted (they make the layer affine, not linear, in v).
All references are float64 numpy; forward passes are written as the layers compute them
(scans and recurrences), independent of the Ĥ construction they are checked against.
``backend=`` (``"ref"``, ``"numba"``, ``"torch"``, ``"torch:cuda"``) selects the backend of the
public :func:`~theorylab.ssm.selective_scan` (in :func:`forward`) and
:func:`~theorylab.ssm.selective_attention_matrix` (in :func:`implicit_attention`) inside the
Mamba layer; Griffin and RWKV are numpy only.  The claim: :mod:`theorylab.ssm.implicit_attention_claims`.
"""

from __future__ import annotations

from math import erf, sqrt

import numpy as np

from .. import _validate as V
from ._segsum import segsum
from .selective import selective_attention_matrix, selective_scan

__all__ = ["LAYERS", "init_params", "forward", "implicit_attention", "apply_implicit_attention", "gate_values"]

LAYERS = ("mamba", "griffin", "rwkv")


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _softplus(a):
    return np.logaddexp(0.0, a)


def _silu(a):
    return a * _sigmoid(a)


_verf = np.vectorize(erf, otypes=[np.float64])


def _gelu(a):
    return 0.5 * a * (1.0 + _verf(a / sqrt(2.0)))


def _causal_conv(v, w):
    """Depthwise causal conv1d: out[t, c] = Σ_j w[c, j] v[t - (k-1) + j, c] (zero padding)."""
    b, L, c = v.shape
    k = w.shape[1]
    pad = np.concatenate([np.zeros((b, k - 1, c)), v], axis=1)  # (b, L+k-1, c)
    return sum(w[:, j] * pad[:, j:j + L] for j in range(k))


def _toeplitz(w, L):
    """The conv as matrices T (c, L, L): T[c, t, s] = w[c, k-1-(t-s)] for 0 <= t-s < k."""
    c, k = w.shape
    T = np.zeros((c, L, L))
    for lag in range(min(k, L)):
        T[:, np.arange(lag, L), np.arange(0, L - lag)] = w[:, k - 1 - lag, None]
    return T


def init_params(layer: str, rng: np.random.Generator, *, d_model=4, d_inner=6, state=3, conv_width=4) -> dict:
    """Random float64 parameters of one layer (scaled so activations stay O(1))."""
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {LAYERS}; got {layer!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    d_model, d_inner, state, conv_width = (V.check_size(k, v) for k, v in (
        ("d_model", d_model), ("d_inner", d_inner), ("state", state), ("conv_width", conv_width)))
    g = lambda *s: rng.standard_normal(s) / np.sqrt(s[0])  # noqa: E731
    p = {"W_v": g(d_model, d_inner), "W_out": g(d_inner, d_model)}
    if layer in ("mamba", "griffin"):
        p.update(W_z=g(d_model, d_inner), conv=rng.standard_normal((d_inner, conv_width)) / np.sqrt(conv_width))
    if layer == "mamba":
        p.update(W_dt=g(d_inner, d_inner) * 0.5, dt_bias=np.log(np.expm1(rng.uniform(1e-2, 0.2, d_inner))),
                 W_B=g(d_inner, state), W_C=g(d_inner, state), A=-np.exp(rng.uniform(np.log(0.5), np.log(4), (d_inner, state))),
                 D=rng.standard_normal(d_inner))
    elif layer == "griffin":
        p.update(W_a=g(d_inner, d_inner), b_a=rng.standard_normal(d_inner) * 0.1, W_i=g(d_inner, d_inner),
                 b_i=rng.standard_normal(d_inner) * 0.1, Lambda=rng.uniform(1.0, 4.0, d_inner))
    else:
        p.update(W_k=g(d_model, d_inner), W_r=g(d_model, d_inner), mu_k=rng.uniform(0, 1, d_model),
                 mu_v=rng.uniform(0, 1, d_model), mu_r=rng.uniform(0, 1, d_model),
                 w=np.exp(rng.uniform(np.log(0.05), np.log(1.0), d_inner)), u=rng.standard_normal(d_inner) * 0.5)
    return p


def _shift_mix(x, mu):
    prev = np.concatenate([np.zeros_like(x[:, :1]), x[:, :-1]], axis=1)  # x_{t-1}, x_{-1} = 0
    return mu * x + (1.0 - mu) * prev


def _mamba_inner(x, p, conv):
    v = x @ p["W_v"]  # (b, L, d_inner)
    pre = _causal_conv(v, p["conv"]) if conv else v
    u = _silu(pre)
    delta = _softplus(u @ p["W_dt"] + p["dt_bias"])  # (b, L, d_inner)
    return v, pre, u, delta, u @ p["W_B"], u @ p["W_C"]  # B, C: (b, L, state)


def _rwkv_streams(x, p):
    k = _shift_mix(x, p["mu_k"]) @ p["W_k"]
    v = _shift_mix(x, p["mu_v"]) @ p["W_v"]
    r = _shift_mix(x, p["mu_r"]) @ p["W_r"]
    return k, v, r  # each (b, L, d_inner)


def _griffin_gates(u, p):
    r = _sigmoid(u @ p["W_a"] + p["b_a"])
    i = _sigmoid(u @ p["W_i"] + p["b_i"])
    log_a = -8.0 * r * _softplus(-p["Lambda"])  # (b, L, d_inner), <= 0
    return log_a, i


def gate_values(layer: str, x, p: dict):
    """The output gate g (batch, L, d_inner) of each layer: SiLU(x W_z), GeLU(x W_z), σ(r)."""
    if layer == "mamba":
        return _silu(x @ p["W_z"])
    if layer == "griffin":
        return _gelu(x @ p["W_z"])
    return _sigmoid(_rwkv_streams(x, p)[2])


def _selective(fn, backend, *args):
    """The public ``fn(*args, backend=backend)`` as numpy float64 (``ref`` is the float64 loop)."""
    from ..checks import call_backend

    return call_backend(fn, backend, *args)


def forward(layer: str, x, p: dict, *, conv: bool = True, gate: bool = True, backend: str = "ref"):
    """The layer as it computes itself (scan / recurrence); x (batch, L, d_model) float64."""
    x = _check_x(x, p)
    if layer == "mamba":
        v, pre, u, delta, B, C = _mamba_inner(x, p, conv)
        y = _selective(selective_scan, backend, u, delta, p["A"], B, C, p["D"])  # (b, L, d_inner)
    elif layer == "griffin":
        v = x @ p["W_v"]
        u = _causal_conv(v, p["conv"]) if conv else v
        log_a, i = _griffin_gates(u, p)
        a = np.exp(log_a)
        # sqrt(1 - a²) as sqrt((1 - a)(1 + a)), 1 - a = -expm1(log a): exact to a few eps also for a -> 1,
        # where 1 - a**2 would cancel (strongly saturated gates at large inputs)
        mult = np.sqrt(-np.expm1(log_a) * (1.0 + a))
        h = np.zeros((x.shape[0], v.shape[2]))
        y = np.empty_like(v)
        for t in range(x.shape[1]):  # the RG-LRU recurrence
            h = a[:, t] * h + mult[:, t] * (i[:, t] * u[:, t])
            y[:, t] = h
    elif layer == "rwkv":
        k, v, r = _rwkv_streams(x, p)
        y = np.empty_like(v)
        b, d = v.shape[0], v.shape[2]
        num, den, m = np.zeros((b, d)), np.zeros((b, d)), np.full((b, d), -np.inf)  # running max m
        for t in range(x.shape[1]):  # WKV recurrence, rescaled by the running max
            cur = p["u"] + k[:, t]
            top = np.maximum(m, cur)
            e_old, e_cur = np.exp(m - top), np.exp(cur - top)
            y[:, t] = (e_old * num + e_cur * v[:, t]) / (e_old * den + e_cur)
            m_new = np.maximum(m - p["w"], k[:, t])  # state decays by e^{-w}, then takes k_t
            e_old, e_k = np.exp(m - p["w"] - m_new), np.exp(k[:, t] - m_new)
            num, den, m = e_old * num + e_k * v[:, t], e_old * den + e_k, m_new
    else:
        raise ValueError(f"layer must be one of {LAYERS}; got {layer!r}")
    if gate:
        y = y * gate_values(layer, x, p)
    return y @ p["W_out"]  # (b, L, d_model)


def implicit_attention(layer: str, x, p: dict, *, conv: bool = True, gate: bool = True, backend: str = "ref"):
    """(Ĥ, v): Ĥ (batch, d_inner, L, L) lower-triangular and the value stream v (batch, L, d_inner)."""
    x = _check_x(x, p)
    L = x.shape[1]
    if layer == "mamba":
        v, pre, u, delta, B, C = _mamba_inner(x, p, conv)
        M = _selective(selective_attention_matrix, backend, delta, p["A"], B, C)  # (b, c, L, L)
        M = M + p["D"][None, :, None, None] * np.eye(L)
        H = M * _sigmoid(pre).transpose(0, 2, 1)[:, :, None, :]  # right-multiply diag(σ(pre))
    elif layer == "griffin":
        v = x @ p["W_v"]
        u = _causal_conv(v, p["conv"]) if conv else v
        log_a, i = _griffin_gates(u, p)
        lower = np.tril(np.ones((L, L), dtype=bool))
        decay = np.where(lower, np.exp(np.where(lower, segsum(log_a.transpose(0, 2, 1)), 0.0)), 0.0)  # (b, c, L, L)
        H = decay * (np.sqrt(-np.expm1(2 * log_a)) * i).transpose(0, 2, 1)[:, :, None, :]
    elif layer == "rwkv":
        k, v, r = _rwkv_streams(x, p)
        t_idx, s_idx = np.arange(L)[:, None], np.arange(L)[None, :]
        dist = (t_idx - 1 - s_idx).astype(np.float64)  # (L, L)
        kT = k.transpose(0, 2, 1)  # (b, c, L)
        logits = -dist * p["w"][None, :, None, None] + kT[:, :, None, :]  # (b, c, L, L)
        logits = np.where(t_idx == s_idx, p["u"][None, :, None, None] + kT[:, :, :, None], logits)
        logits = np.where(s_idx > t_idx, -np.inf, logits)
        logits = logits - logits.max(axis=-1, keepdims=True)
        H = np.exp(logits)
        H = H / H.sum(axis=-1, keepdims=True)  # row softmax over s <= t
    else:
        raise ValueError(f"layer must be one of {LAYERS}; got {layer!r}")
    if conv and layer != "rwkv":
        H = H @ _toeplitz(p["conv"], L)[None]  # right-multiply the conv matrix: (b, c, L, L)
    if gate:
        H = gate_values(layer, x, p).transpose(0, 2, 1)[:, :, :, None] * H  # left-multiply diag(g)
    return H, v


def apply_implicit_attention(H, v, p: dict):
    """out = Σ_c W_out[c] · (Ĥ_c v_c): (batch, L, d_model)."""
    y = np.einsum("bcts,bsc->btc", H, v)  # (b, L, d_inner)
    return y @ p["W_out"]


def _check_x(x, p):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray; got {type(x).__name__}")
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"x must be a non-empty (batch, length, d_model) array; got shape {x.shape}")
    if x.shape[2] != p["W_v"].shape[0]:
        raise ValueError(f"x has d_model {x.shape[2]} but the parameters expect {p['W_v'].shape[0]} (W_v {p['W_v'].shape})")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x contains NaN or inf (shape {x.shape})")
    return x.astype(np.float64)
