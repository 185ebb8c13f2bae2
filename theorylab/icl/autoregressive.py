"""AR(p) forecasting in context: least squares, linear self-attention, chain-of-thought rollout.

Paper: #22 Zhou, Wang, Goel & Zhang, "Why Do Transformers Fail to Forecast Time Series
In-Context?" (2025, arXiv:2510.09776): under AR(p) data (1) linear self-attention (LSA) cannot
reach a lower expected MSE than classical linear models in context; (2) as the context grows it
recovers the optimal linear predictor; (3) a chain-of-thought (CoT) rollout collapses to the mean
exponentially.  The claims are in :mod:`theorylab.icl.autoregressive_claims`.

**Process.**  x_t = Σ_{i=1..p} a_i x_{t−i} + σ ε_t, ε_t ~ N(0, 1), with a *stable* recursion:
the companion matrix C(a) (first row a, ones on the subdiagonal) has spectral radius
ρ(a) = max |root| < 1, so the series is stationary with mean 0.  :func:`draw_coefficients`
draws the roots (conjugate pairs, one real root when p is odd) with moduli in ``radius``;
:func:`make_inputs` runs the recursion from zeros for ``burn_in`` steps, then keeps T values.

**Examples in context** (Hankel windows): example i = (z_{p+i}, x_{p+i}) with the lags
z_t = (x_{t−1}, ..., x_{t−p}); :func:`lag_examples`.  A series of length T gives
k = T − p − 1 examples before its last value; with n examples (n = 1..k) a forecaster predicts
x_{p+n} from z_{p+n}.  Every forecaster here returns all context lengths at once, shape
(..., k): ``out[..., n − 1]`` is the forecast of x_{p+n} after n examples.

* **least squares** (:func:`ls_forecast`): â_n = the minimum-norm least-squares fit of the n
  examples (ordinary least squares once they span R^p), forecast â_nᵀ z_{p+n}; it runs
  :func:`theorylab.icl.lstsq_predict` (Greville's recursion at every prefix) with the unit
  vectors e_1..e_p as queries, which read out â_n at every prefix.
* **linear self-attention** (:func:`lsa_forecast`): tokens e_i = [z_{p+i}; x_{p+i}] ∈ R^{p+1},
  the query token [z_{p+n}; 0]; one LSA layer (:func:`theorylab.icl.lsa_forward`, weights
  W_Q, W_K, W_V) with the n context tokens as keys and values; the forecast is the query
  token's last entry after the layer (no sign flip: trained weights carry their own):
      ŷ_n = (1/n) Σ_{i<n} (W_V e_i)[p] (W_K e_i)ᵀ W_Q [z_{p+n}; 0],
  all n at once by a running sum (causal linear attention).  Given its context the layer is a
  linear recursion in the query lags: ŷ = âᵀ z with â = W_Q[:, :p]ᵀ (1/n) Σ_i (W_K e_i)(W_V e_i)[p]
  (:func:`lsa_coefficients`).
* **training** (:func:`train_lsa`, torch, float64): Adam on the mean squared forecast error over
  every context length n >= ``n_min`` of fresh prompts each step, each prompt with its own
  coefficients (the in-context task: weights cannot memorize one process) or one given process;
  data and initial weights come from a numpy Generator and torch runs one thread, so a run is a
  function of its seed.  (With one fixed process the layer can store the coefficients in its
  weights and beat in-context least squares, which must estimate them: the comparison of
  claim (1) is between in-context learners, so the claims train on random coefficients.)
* **CoT rollout** (:func:`cot_rollout`): beyond the series, feed each forecast back as the
  newest lag, x̂_{T+h} = aᵀ(x̂_{T+h−1}, ..., x̂_{T+h−p}): the state s_h = C(a)^h s_0, so |x̂|
  decays like ρ(a)^h to the mean 0 (Gelfand: ‖C^h‖^{1/h} → ρ).

Excess MSE: the noise ε_{p+n} is independent of every forecast made from x_{<p+n}, so
E(ŷ − x_{p+n})² = σ² + E(ŷ − aᵀz_{p+n})²: the noise floor σ² plus the excess, which the claims
measure directly as E(ŷ − aᵀz)² (:func:`excess_sq`) -- the same expectation, far less noise.

Glossary: series -> x_1..x_T, coeffs -> a (AR coefficients, lag 1 first), p -> the order p,
noise -> σ, WQ/WK/WV -> W_Q/W_K/W_V, horizon -> the CoT steps H, n -> the context length.
Shapes: series (..., T), coeffs (..., p), forecasts (..., T − p − 1), rollout (..., H),
weights (p + 1, p + 1).  Backends: ``"ref"`` (numpy float64), ``"numba"`` (least squares only),
``"torch"`` (CPU/CUDA, differentiable), ``"auto"``.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _validate as V
from ..backends import like_input, resolve_backend, to_numpy, to_torch
from .predictors import check_positive

__all__ = ["draw_coefficients", "companion", "spectral_radius", "make_inputs", "lag_examples", "ls_forecast",
           "ls_forecast_ref", "lsa_forecast", "lsa_coefficients", "cot_rollout", "train_lsa", "excess_sq",
           "LS_BACKENDS", "BACKENDS"]

LS_BACKENDS = ("ref", "numba", "torch")
BACKENDS = ("ref", "torch")


def draw_coefficients(rng: np.random.Generator, p: int, *, batch=(), radius=(0.5, 0.85)) -> np.ndarray:
    """Coefficients a (*batch, p) of stable AR(p) recursions: roots with moduli uniform in ``radius``
    (conjugate pairs at angles uniform in (0, π), a real root of random sign when p is odd)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    p = V.check_size("p", p)
    lo, hi = (float(r) for r in radius)
    if not 0 <= lo <= hi < 1:
        raise ValueError(f"radius must be (lo, hi) with 0 <= lo <= hi < 1 (a stable recursion); got {radius!r}")
    lead = (batch,) if isinstance(batch, (int, np.integer)) else tuple(batch)
    roots = np.empty(lead + (p,), dtype=np.complex128)
    for i in range(0, p - 1, 2):
        r, th = rng.uniform(lo, hi, lead), rng.uniform(0, np.pi, lead)
        roots[..., i], roots[..., i + 1] = r * np.exp(1j * th), r * np.exp(-1j * th)
    if p % 2:
        roots[..., -1] = rng.uniform(lo, hi, lead) * rng.choice([-1.0, 1.0], lead)
    # x^p − a_1 x^{p−1} − ... − a_p = Π (x − root): expand the product one root at a time
    poly = np.zeros(lead + (p + 1,), dtype=np.complex128)
    poly[..., 0] = 1.0
    for i in range(p):
        poly[..., 1:] = poly[..., 1:] - roots[..., i, None] * poly[..., :-1]
    return -poly[..., 1:].real.copy()


def companion(coeffs):
    """C(a) (..., p, p): first row a, ones on the subdiagonal (numpy or torch)."""
    p = int(coeffs.shape[-1])
    if hasattr(coeffs, "detach"):
        import torch

        C = torch.zeros(tuple(coeffs.shape[:-1]) + (p, p), dtype=coeffs.dtype, device=coeffs.device)
    else:
        C = np.zeros(coeffs.shape[:-1] + (p, p), dtype=np.result_type(coeffs, np.float64))
    C[..., 0, :] = coeffs
    for i in range(1, p):
        C[..., i, i - 1] = 1.0
    return C


def spectral_radius(coeffs) -> np.ndarray:
    """ρ(a) = max |eigenvalue of C(a)| (...,) in float64 numpy."""
    return np.abs(np.linalg.eigvals(companion(np.asarray(to_numpy(coeffs), dtype=np.float64)))).max(-1)


def make_inputs(rng: np.random.Generator, *, batch=1, T=64, p=2, noise=1.0, coeffs=None, radius=(0.5, 0.85),
                burn_in=200, dtype=np.float64) -> dict:
    """AR(p) prompts: series (..., T), coeffs (..., p) (drawn per prompt unless given, shape (p,) or
    (..., p)), noise σ.  The recursion starts from zeros ``burn_in`` steps before x_1."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    lead = (batch,) if isinstance(batch, (int, np.integer)) else tuple(batch)
    for s in lead:
        V.check_size("batch", s)
    p, T = V.check_size("p", p), V.check_size("T", T, lo=p + 2)
    burn_in = V.check_size("burn_in", burn_in, lo=0)
    if not (isinstance(noise, (int, float, np.floating, np.integer)) and math.isfinite(noise) and noise > 0):
        raise ValueError(f"noise must be a finite number > 0; got {noise!r}")
    if coeffs is None:
        a = draw_coefficients(rng, p, batch=lead, radius=radius)
    else:
        a = np.broadcast_to(np.asarray(coeffs, dtype=np.float64), lead + (p,)).copy()
        if not np.all(spectral_radius(a) < 1):
            raise ValueError(f"coeffs must give a stable recursion (spectral radius < 1); got {coeffs!r}")
    eps = noise * rng.standard_normal(lead + (burn_in + T,))
    x = np.zeros(lead + (p + burn_in + T,))
    for t in range(burn_in + T):  # x[p + t] = Σ_i a_i x[p + t − i] + σ ε_t
        x[..., p + t] = np.einsum("...i,...i->...", a, x[..., t:p + t][..., ::-1]) + eps[..., t]
    return {"series": x[..., p + burn_in:].astype(dtype), "coeffs": a.astype(dtype), "noise": float(noise)}


def lag_examples(series, p: int):
    """Z (..., T − p, p) with Z[..., i, :] = z_{p+i} = (x_{p+i−1}, ..., x_i), and targets (..., T − p) = x_{p+i}
    (0-based; numpy or torch)."""
    T = int(series.shape[-1])
    cols = [series[..., p - 1 - l:T - 1 - l] for l in range(p)]  # lag l + 1
    if hasattr(series, "detach"):
        import torch

        return torch.stack(cols, dim=-1), series[..., p:]
    return np.stack(cols, axis=-1), series[..., p:]


def _check_series(series, p, *extra):
    kind = V.check_arrays({"series": series, **dict(extra)})
    if V.dtype_name(series) not in ("float32", "float64"):
        raise TypeError(f"series must be float32 or float64; got {V.dtype_name(series)} (shape {tuple(series.shape)})")
    p = V.check_size("p", p)
    if series.ndim < 1 or int(series.shape[-1]) < p + 2:
        raise ValueError(f"series must have shape (..., T) with T >= p + 2 = {p + 2}; got {tuple(series.shape)}")
    V.check_nonempty("series", series, "(every batch dim must be >= 1)")
    V.check_finite("series", series)
    return kind, p


def ls_forecast(series, p, *, backend="auto"):
    """In-context least-squares AR(p) forecasts at every context length n = 1..T − p − 1: (..., T − p − 1)."""
    from .predictors import lstsq_predict

    kind, p = _check_series(series, p)
    backend = resolve_backend(backend, (series,), valid=LS_BACKENDS)
    Z, tgt = lag_examples(series, p)  # (..., T − p, p), (..., T − p)
    lead, k = tuple(series.shape[:-1]), int(series.shape[-1]) - p - 1
    # the queries e_1..e_p read out the fitted coefficients of every prefix: W[..., j, :] = â_{j+1}
    if kind == "torch":
        import torch

        E = torch.eye(p, dtype=series.dtype, device=series.device).expand(*lead, p, p)
    else:
        E = np.broadcast_to(np.eye(p, dtype=series.dtype), lead + (p, p)).copy()  # writable (torch backend)
    W = lstsq_predict(Z[..., :k, :], tgt[..., :k], E, prefixes=True, backend=backend)  # (..., k, p)
    return (W * Z[..., 1:, :]).sum(-1)  # â_nᵀ z_{p+n}


def ls_forecast_ref(series, p):
    """The same forecasts by one ``numpy.linalg.lstsq`` per prompt and context length (slow; for checks)."""
    x = np.asarray(series, dtype=np.float64)
    Z, tgt = lag_examples(x, p)
    lead, k = x.shape[:-1], x.shape[-1] - p - 1
    Zf, tf = Z.reshape(-1, k + 1, p), tgt.reshape(-1, k + 1)
    out = np.empty((Zf.shape[0], k))
    for b in range(Zf.shape[0]):
        for n in range(1, k + 1):
            a = np.linalg.lstsq(Zf[b, :n], tf[b, :n], rcond=None)[0]
            out[b, n - 1] = Zf[b, n] @ a
    return out.reshape(*lead, k)


def _check_weights(p, Ws):
    for name, W in zip(("WQ", "WK", "WV"), Ws):
        V.check_shape(name, W, (p + 1, p + 1), {name: tuple(W.shape)})
        V.check_finite(name, W)


def _lsa_parts(series, p, WQ, WK, WV, xp):
    """Per token i: keys k_i = W_K e_i (..., n, e), values v_i = (W_V e_i)[p] (..., n), and the query lags."""
    Z, tgt = lag_examples(series, p)
    E = xp.cat([Z, tgt[..., None]], -1) if xp is not np else np.concatenate([Z, tgt[..., None]], -1)  # tokens (..., T − p, e)
    keys = E @ WK.T
    vals = E @ WV[p]
    queries = Z @ WQ[:, :p].T  # W_Q [z; 0]  (..., T − p, e)
    return keys, vals, queries


def lsa_forecast(series, p, WQ, WK, WV, *, backend="auto"):
    """One-layer LSA forecasts at every context length n = 1..T − p − 1 (module docstring): (..., T − p − 1)."""
    kind, p = _check_series(series, p, ("WQ", WQ), ("WK", WK), ("WV", WV))
    _check_weights(p, (WQ, WK, WV))
    backend = resolve_backend(backend, (series, WQ, WK, WV), valid=BACKENDS)
    if backend == "torch":
        import torch

        args = [to_torch(a) for a in (series, WQ, WK, WV)]
        keys, vals, q = _lsa_parts(args[0], p, *args[1:], torch)
        c = torch.cumsum(keys * vals[..., None], dim=-2)[..., :-1, :]  # Σ_{i<n} k_i v_i  (..., k, e)
        n = torch.arange(1, c.shape[-2] + 1, dtype=c.dtype, device=c.device)
        out = (c * q[..., 1:, :]).sum(-1) / n
    else:
        x, Wq, Wk, Wv = (np.asarray(to_numpy(a), dtype=np.float64) for a in (series, WQ, WK, WV))
        keys, vals, q = _lsa_parts(x, p, Wq, Wk, Wv, np)
        c = np.cumsum(keys * vals[..., None], axis=-2)[..., :-1, :]
        out = np.einsum("...ne,...ne->...n", c, q[..., 1:, :]) / np.arange(1, c.shape[-2] + 1)
    out = like_input(out, series)
    return out.astype(series.dtype, copy=False) if kind == "numpy" else out


def lsa_coefficients(series, p, WQ, WK, WV, *, backend="auto"):
    """â (..., p): the linear recursion the layer applies to a query after all T − p tokens of ``series``."""
    kind, p = _check_series(series, p, ("WQ", WQ), ("WK", WK), ("WV", WV))
    _check_weights(p, (WQ, WK, WV))
    backend = resolve_backend(backend, (series, WQ, WK, WV), valid=BACKENDS)
    if backend == "torch":
        import torch

        x, Wq, Wk, Wv = (to_torch(a) for a in (series, WQ, WK, WV))
        keys, vals, _ = _lsa_parts(x, p, Wq, Wk, Wv, torch)
        out = (keys * vals[..., None]).mean(-2) @ Wq[:, :p]
    else:
        x, Wq, Wk, Wv = (np.asarray(to_numpy(a), dtype=np.float64) for a in (series, WQ, WK, WV))
        keys, vals, _ = _lsa_parts(x, p, Wq, Wk, Wv, np)
        out = (keys * vals[..., None]).mean(-2) @ Wq[:, :p]
    out = like_input(out, series)
    return out.astype(series.dtype, copy=False) if kind == "numpy" else out


def cot_rollout(series, coeffs, horizon, *, backend="auto"):
    """x̂_{T+h}, h = 1..H (..., H): the recursion a fed its own forecasts after the last p values of ``series``."""
    kind = V.check_arrays({"series": series, "coeffs": coeffs})
    if coeffs.ndim < 1 or series.ndim < 1:
        raise ValueError(f"series (..., T) and coeffs (..., p) need a last axis; got {tuple(series.shape)}, {tuple(coeffs.shape)}")
    p = V.check_size("p", int(coeffs.shape[-1]))
    if int(series.shape[-1]) < p or tuple(series.shape[:-1]) != tuple(coeffs.shape[:-1]):
        raise ValueError(f"series must have shape (..., T >= p) with the leading dims of coeffs (..., p); "
                         f"got series {tuple(series.shape)}, coeffs {tuple(coeffs.shape)}")
    for name, a in (("series", series), ("coeffs", coeffs)):
        V.check_nonempty(name, a, "(every size must be >= 1)")
        V.check_finite(name, a)
    H = V.check_size("horizon", horizon)
    backend = resolve_backend(backend, (series, coeffs), valid=BACKENDS)
    if backend == "torch":
        import torch

        x, a = to_torch(series), to_torch(coeffs)
        state, outs = x[..., -p:].flip(-1), []  # (x_T, ..., x_{T−p+1})
        for _ in range(H):
            nxt = (a * state).sum(-1)
            outs.append(nxt)
            state = torch.cat([nxt[..., None], state[..., :-1]], -1)
        out = torch.stack(outs, -1)
    else:
        a = np.asarray(to_numpy(coeffs), dtype=np.float64)
        state = np.asarray(to_numpy(series), dtype=np.float64)[..., -p:][..., ::-1].copy()
        out = np.empty(a.shape[:-1] + (H,))
        for h in range(H):
            out[..., h] = np.einsum("...i,...i->...", a, state)
            state = np.concatenate([out[..., h, None], state[..., :-1]], -1)
    out = like_input(out, series)
    return out.astype(series.dtype, copy=False) if kind == "numpy" else out


def excess_sq(forecast, series, coeffs, p):
    """(ŷ − aᵀz)² per context length (..., T − p − 1): the squared gap to the oracle forecast
    (its mean is the excess MSE over the noise floor σ²)."""
    Z, _ = lag_examples(np.asarray(series, dtype=np.float64), p)
    oracle = np.einsum("...ni,...i->...n", Z[..., 1:, :], np.asarray(coeffs, dtype=np.float64))
    return (np.asarray(forecast, dtype=np.float64) - oracle) ** 2


def train_lsa(rng: np.random.Generator, p: int, *, coeffs=None, radius=(0.5, 0.85), T=64, noise=1.0, steps=300,
              batch=64, lr=0.02, n_min=4, init_scale=0.3) -> dict:
    """One LSA layer trained by Adam on AR(p) prompts, fresh ones each step: coefficients drawn per prompt
    (:func:`draw_coefficients` with ``radius``, the in-context task) or the one process ``coeffs`` (p,).
    Loss = mean over prompts and context lengths n >= ``n_min`` of (ŷ_n − x_{p+n})².

    Returns WQ, WK, WV (numpy float64, (p + 1, p + 1)) and ``loss`` (per step)."""
    from ._autoregressive_torch import adam_lsa

    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator; got {type(rng).__name__}")
    p, T = V.check_size("p", p), V.check_size("T", T)
    steps, batch, n_min = V.check_size("steps", steps), V.check_size("batch", batch), V.check_size("n_min", n_min)
    if n_min > T - p - 1:
        raise ValueError(f"n_min must be <= T − p − 1 = {T - p - 1}; got {n_min}")
    lr, init_scale = check_positive("lr", lr), check_positive("init_scale", init_scale)
    W0 = [init_scale * rng.standard_normal((p + 1, p + 1)) for _ in range(3)]
    data = make_inputs(rng, batch=(steps, batch), T=T, p=p, noise=noise, coeffs=coeffs, radius=radius)["series"]
    WQ, WK, WV, loss = adam_lsa(W0, data, p, lr=lr, n_min=n_min)  # data (steps, batch, T): one batch per step
    return {"WQ": WQ, "WK": WK, "WV": WV, "loss": loss}
