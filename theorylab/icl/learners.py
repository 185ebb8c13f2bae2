"""Trained in-context learners, and how close they come to each in-context predictor.

Paper: #34 Akyürek, Schuurmans, Andreas, Ma & Zhou, "What learning algorithm is in-context
learning? Investigations with linear models" (2022, arXiv:2211.15661), Sec. 4 (trained
transformers match ridge / least squares, measured by SPD and ILWD) and Sec. 4.3 (the best
matching ridge λ follows the noise); the one-layer linear-attention learner follows von Oswald
et al. (2023, arXiv:2212.07677).

**Learners.**  A prompt holds k examples (x_i, y_i), x_i ~ N(0, I_d), y_i = wᵀx_i + σε_i,
w ~ N(0, τ²I).  Two models read it:

* ``"transformer"``: a pre-LN softmax transformer (``layers`` blocks of ``heads``-head
  attention + ReLU MLP, width ``width``, no positional encoding).  Tokens are
  z_i = [x_i; y_i; 0] for the examples and z_q = [x_q; 0; 1] for a query -- the query's y
  masked to 0 as in #34, plus a query flag.  Masking: example token t attends to examples
  0..t (causal); a query of prefix length n attends to examples 0..n−1 and to itself; queries
  never see each other.  So one pass predicts every query at every prefix length.
* ``"lsa"``: ``layers`` linear self-attention layers over z_i = [x_i; y_i], z_q = [x_q; 0]
  with trained W_Q, W_K, W_V (one set per layer), exactly the layer of
  :func:`theorylab.icl.lsa_forward` (keys and values: the n examples of the prefix);
  prediction ŷ_q = −(last entry of the query token).

:func:`train_learner` trains either with Adam on the squared error of one fresh query per
prefix length 1..k, on fresh prompts every step; all randomness comes from one
``torch.Generator`` seeded by ``seed`` (no global RNG), and it runs on one torch thread
(restored afterwards): tiny matrices train ~5x faster than on two, with the same weights on
every machine.  ``shuffle_labels=True`` permutes the labels across the
prompts of each batch (the control: no relation between x and y left to learn).

**Measures** (#34, Sec. 4.1), at every prefix length n = 1..k, over prompts and queries:

* SPD (squared prediction difference): SPD_n(f, g) = mean (f_n(x_q) − g_n(x_q))²;
* ILWD (implicit linear weight difference): each learner's implicit weights ŵ_n are the
  least-squares fit of its predictions on m >= d probe queries, ŵ_n = argmin Σ_q (ŵᵀx_q − f_n(x_q))²;
  ILWD_n(f, g) = mean ||ŵ_n(f) − ŵ_n(g)||².  For a linear predictor ŵ_n is its weight vector.

Glossary: k -> number of in-context examples, n -> prefix length, noise -> σ, tau -> τ,
lam -> λ, lr -> η, SPD / ILWD -> the paper's SPD / ILWD.

Shapes: X (..., k, d), y (..., k), Xq (..., m, d); :func:`learner_predict` returns (..., m) or,
with ``prefixes=True``, (..., k, m) (row n−1: the prediction from the first n examples), the
contract of the predictors in :mod:`theorylab.icl.predictors`.  Backends of
:func:`learner_predict`: ``"ref"`` (numpy float64: the transformer over the full token
sequence with an explicit (N, N) mask; the LSA model through ``lsa_forward(backend="ref")``
once per prefix and layer), ``"torch"`` (CPU/CUDA, differentiable in the inputs), ``"auto"``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _validate as V
from ..backends import like_input, resolve_backend, to_numpy
from .predictors import (averaging_predict, check_positive, check_prompt, gd_predict, knn_predict, lstsq_predict,
                         ridge_predict)

__all__ = ["Learner", "train_learner", "learner_predict", "transformer_ref", "lsa_model_ref", "spd", "ilwd",
           "implicit_weights", "predictor_predictions", "best_ridge_lambda", "best_gd_lr", "KINDS", "BACKENDS"]

KINDS = ("transformer", "lsa")
BACKENDS = ("ref", "torch")


@dataclass(frozen=True, eq=False)
class Learner:
    """A trained in-context learner: its architecture, training setting and float64 parameters."""

    kind: str
    d: int
    k: int
    layers: int
    width: int
    heads: int
    noise: float
    tau: float
    seed: int
    shuffle_labels: bool
    params: dict  # name -> numpy float64 array
    losses: tuple = ()  # training loss per step
    train_seconds: float = field(default=float("nan"), compare=False)


def train_learner(kind: str, *, d: int, k: int, noise: float = 0.0, tau: float = 1.0, seed: int = 0, steps: int = 300,
                  batch: int = 64, lr: float | None = None, layers: int = 1, width: int = 32, heads: int = 2,
                  shuffle_labels: bool = False, init_scale: float | None = None) -> Learner:
    """Train a ``kind`` learner ("transformer" or "lsa") on d-dimensional prompts of k examples
    with noise σ = ``noise`` and prior scale τ = ``tau``; deterministic under ``seed``.

    ``lr`` defaults to 1e-2 (transformer) and 5e-2 (lsa); ``init_scale`` (the scale of the
    random initial weights: of W_Q, W_K, W_V for lsa, of the readout for the transformer)
    defaults to 0.5 (lsa: small enough that every seed leaves the saddle at 0 the same way;
    measured 6/6 seeds converge at d = 4, k = 8, where 1.0 loses one in six) and 1.0
    (transformer); ``width`` and ``heads`` concern the transformer only (width divisible by heads)."""
    import torch

    from . import _learners_torch as T

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    d, k, steps, batch, layers = (V.check_size(n, v) for n, v in
                                  (("d", d), ("k", k), ("steps", steps), ("batch", batch), ("layers", layers)))
    width, heads = V.check_size("width", width), V.check_size("heads", heads)
    if kind == "transformer" and width % heads:
        raise ValueError(f"width must be divisible by heads; got width={width}, heads={heads}")
    tau = check_positive("tau", tau)
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
    lr = check_positive("lr", (1e-2 if kind == "transformer" else 5e-2) if lr is None else lr)
    init_scale = check_positive("init_scale", (1.0 if kind == "transformer" else 0.5) if init_scale is None else init_scale)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0; got {seed!r}")
    if not isinstance(shuffle_labels, bool):
        raise TypeError(f"shuffle_labels must be a bool; got {shuffle_labels!r}")
    t0 = time.perf_counter()
    params, losses = T.train(kind, d=d, k=k, noise=float(noise), tau=tau, steps=steps, batch=batch, lr=lr,
                             seed=int(seed), layers=layers, width=width if kind == "transformer" else 0,
                             heads=heads, init_scale=init_scale, shuffle_labels=shuffle_labels, dtype=torch.float32)
    return Learner(kind=kind, d=d, k=k, layers=layers, width=width if kind == "transformer" else 0,
                   heads=heads if kind == "transformer" else 1, noise=float(noise), tau=tau, seed=int(seed),
                   shuffle_labels=shuffle_labels, params={n: v.numpy() for n, v in params.items()},
                   losses=tuple(losses), train_seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# references (numpy float64)
# ---------------------------------------------------------------------------------------
def _ln(h, g, b, eps=1e-5):
    mu = h.mean(-1, keepdims=True)
    return (h - mu) / np.sqrt(((h - mu) ** 2).mean(-1, keepdims=True) + eps) * g + b


def transformer_ref(params, X, y, Xq, plen, *, layers, heads):
    """The transformer over the full sequence [examples; queries] (B, N = k + Q) with an explicit
    mask M (N, N): M[t, i] for examples i <= t < k; M[k + j, i] for i < plen[j]; M[k + j, k + j]."""
    P = params
    B, k, d = X.shape
    Q = Xq.shape[1]
    N = k + Q
    M = np.zeros((N, N), dtype=bool)
    for t in range(k):
        M[t, : t + 1] = True
    for j in range(Q):
        M[k + j, : plen[j]] = True
        M[k + j, k + j] = True
    Z = np.concatenate([np.concatenate([X, y[..., None], np.zeros((B, k, 1))], -1),
                        np.concatenate([Xq, np.zeros((B, Q, 1)), np.ones((B, Q, 1))], -1)], 1)  # (B, N, d+2)
    h = Z @ P["W_in"] + P["b_in"]  # (B, N, w)
    dh = h.shape[-1] // heads
    for layer in range(layers):
        a = _ln(h, P[f"ln1_g{layer}"], P[f"ln1_b{layer}"])
        q, kk, v = (a @ P[f"{n}{layer}"] for n in ("Wq", "Wk", "Wv"))
        o = np.empty_like(h)
        for hd in range(heads):
            cols = slice(hd * dh, (hd + 1) * dh)
            s = np.einsum("bti,bsi->bts", q[..., cols], kk[..., cols]) / math.sqrt(dh)  # (B, N, N)
            s = np.where(M, s, -np.inf)
            att = np.exp(s - s.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            o[..., cols] = att @ v[..., cols]
        h = h + o @ P[f"Wo{layer}"]
        m = _ln(h, P[f"ln2_g{layer}"], P[f"ln2_b{layer}"]) @ P[f"W1_{layer}"] + P[f"b1_{layer}"]
        h = h + np.maximum(m, 0.0) @ P[f"W2_{layer}"] + P[f"b2_{layer}"]
    return (_ln(h[:, k:], P["lnf_g"], P["lnf_b"]) @ P["W_out"] + P["b_out"])[..., 0]  # (B, Q)


def lsa_model_ref(params, X, y, Xq, plen, *, layers):
    """Per prefix length n and layer, the library's :func:`lsa_forward` (backend "ref") with the
    layer's trained weights on [first n examples; the queries of that prefix]."""
    from .constructions import lsa_forward, prompt_tokens

    B, k, d = X.shape
    out = np.empty((B, Xq.shape[1]))
    for n in sorted(set(int(v) for v in plen)):
        sel = np.flatnonzero(np.asarray(plen) == n)
        Z = prompt_tokens(X[:, :n], y[:, :n], Xq[:, sel])  # (B, n + q, d+1)
        for layer in range(layers):
            Z = lsa_forward(Z, params[f"WQ{layer}"], params[f"WK{layer}"], params[f"WV{layer}"], n_context=n,
                            backend="ref")
        out[:, sel] = -Z[:, n:, d]
    return out


# ---------------------------------------------------------------------------------------
# public forward
# ---------------------------------------------------------------------------------------
def learner_predict(learner: Learner, X, y, Xq, *, prefixes=False, backend="auto"):
    """The learner's predictions for the queries Xq from the examples (X, y): (..., m); with
    ``prefixes=True`` from every prefix of the examples at once, (..., k, m)."""
    if not isinstance(learner, Learner):
        raise TypeError(f"learner must be a Learner (from train_learner); got {type(learner).__name__}")
    if not isinstance(prefixes, bool):
        raise TypeError(f"prefixes must be a bool; got {prefixes!r} ({type(prefixes).__name__})")
    kind, lead, k, d, m = check_prompt(X, y, Xq)
    if d != learner.d:
        raise ValueError(f"X must have d = {learner.d} features (the learner's); got X {tuple(X.shape)}")
    backend = resolve_backend(backend, (X, y, Xq), valid=BACKENDS)
    B = int(np.prod(lead, dtype=np.int64))
    plen = np.repeat(np.arange(1, k + 1), m) if prefixes else np.full(m, k)  # (Q,) prefix length of each query
    if backend == "torch":
        import torch

        from . import _learners_torch as T
        from ..backends import to_torch

        Xt, yt, Xqt = (to_torch(a) for a in (X, y, Xq))
        p = {n: to_torch(v, device=Xt.device, dtype=Xt.dtype) for n, v in learner.params.items()}
        Xqt = Xqt.reshape(B, m, d)
        if prefixes:
            Xqt = Xqt.repeat(1, k, 1)  # (B, k m, d): the m queries once per prefix
        out = T.forward(learner.kind, p, Xt.reshape(B, k, d), yt.reshape(B, k), Xqt,
                        torch.as_tensor(plen, device=Xt.device), layers=learner.layers, heads=learner.heads)
    else:
        X64, y64, Xq64 = (np.asarray(to_numpy(a), dtype=np.float64) for a in (X, y, Xq))
        X64, y64, Xq64 = X64.reshape(B, k, d), y64.reshape(B, k), Xq64.reshape(B, m, d)
        if prefixes:
            Xq64 = np.tile(Xq64, (1, k, 1))
        if learner.kind == "lsa":
            out = lsa_model_ref(learner.params, X64, y64, Xq64, plen, layers=learner.layers)
        else:
            out = transformer_ref(learner.params, X64, y64, Xq64, plen, layers=learner.layers, heads=learner.heads)
    out = out.reshape(*lead, k, m) if prefixes else out.reshape(*lead, m)
    out = like_input(out, X)
    return out.astype(X.dtype, copy=False) if kind == "numpy" else out


# ---------------------------------------------------------------------------------------
# measures
# ---------------------------------------------------------------------------------------
def _pair(a, b, what):
    a, b = np.asarray(to_numpy(a), dtype=np.float64), np.asarray(to_numpy(b), dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"{what} needs two predictions of one shape (..., k, m); got {a.shape} and {b.shape}")
    V.check_nonempty("a", a, "(every size must be >= 1)")
    V.check_finite("a", a)
    V.check_finite("b", b)
    return a, b


def spd(a, b):
    """SPD per prefix length: mean over prompts and queries of (a − b)², a, b (..., k, m) -> (k,)."""
    a, b = _pair(a, b, "spd")
    return np.moveaxis((a - b) ** 2, -2, 0).reshape(a.shape[-2], -1).mean(-1)


def implicit_weights(Xq, pred):
    """ŵ (..., k, d): per prompt and prefix the least-squares weights of ``pred`` (..., k, m) on the
    probe queries Xq (..., m, d); needs m >= d probes of full column rank."""
    Xq, pred = (np.asarray(to_numpy(a), dtype=np.float64) for a in (Xq, pred))
    if Xq.ndim < 2 or pred.shape[:-2] != Xq.shape[:-2] or pred.shape[-1] != Xq.shape[-2]:
        raise ValueError(f"pred must have shape (..., k, m) for Xq (..., m, d); got pred {pred.shape}, Xq {Xq.shape}")
    m, d = Xq.shape[-2:]
    if m < d:
        raise ValueError(f"implicit weights need m >= d probe queries; got Xq {Xq.shape}")
    G = np.swapaxes(Xq, -1, -2) @ Xq  # (..., d, d)
    rhs = np.swapaxes(Xq, -1, -2) @ np.swapaxes(pred, -1, -2)  # (..., d, k)
    return np.swapaxes(np.linalg.solve(G, rhs), -1, -2)  # (..., k, d)


def ilwd(Xq, a, b):
    """ILWD per prefix length: mean ||ŵ(a) − ŵ(b)||² with ŵ from :func:`implicit_weights`, (k,)."""
    a, b = _pair(a, b, "ilwd")
    diff = implicit_weights(Xq, a) - implicit_weights(Xq, b)  # (..., k, d)
    return np.moveaxis((diff**2).sum(-1), -1, 0).reshape(a.shape[-2], -1).mean(-1)


PREDICTORS = ("ridge", "lstsq", "gd", "averaging", "knn")


def predictor_predictions(X, y, Xq, *, lam, lr, n_neighbors=3, backend="auto") -> dict:
    """Every predictor at every prefix, (..., k, m) each, through the public batched functions:
    ridge (λ = ``lam``), minimum-norm least squares, one GD step (η = ``lr``), averaging, kNN."""
    kw = dict(prefixes=True, backend=backend)
    return {"ridge": to_numpy(ridge_predict(X, y, Xq, lam, **kw)), "lstsq": to_numpy(lstsq_predict(X, y, Xq, **kw)),
            "gd": to_numpy(gd_predict(X, y, Xq, lr, 1, **kw)), "averaging": to_numpy(averaging_predict(X, y, Xq, **kw)),
            "knn": to_numpy(knn_predict(X, y, Xq, n_neighbors, **kw))}


def best_ridge_lambda(pred, X, y, Xq, lams, *, backend="auto"):
    """(λ*, SPD per λ): the λ of the grid whose ridge predictor is closest to ``pred`` (..., k, m),
    SPD averaged over prefix lengths."""
    s = np.array([spd(pred, ridge_predict(X, y, Xq, float(lam), prefixes=True, backend=backend)).mean() for lam in lams])
    return float(lams[int(np.argmin(s))]), s


def best_gd_lr(pred, X, y, Xq, lrs, *, backend="auto"):
    """(η*, SPD per η): the step size of the grid whose one-step GD predictor is closest to ``pred``."""
    s = np.array([spd(pred, gd_predict(X, y, Xq, float(lr), 1, prefixes=True, backend=backend)).mean() for lr in lrs])
    return float(lrs[int(np.argmin(s))]), s
