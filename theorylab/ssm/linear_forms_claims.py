"""Claims of :mod:`theorylab.ssm.linear_forms`: checks, negative controls, sympy proof, registration.

* ``ssm.linear-attention-is-rnn`` -- the public :func:`linear_attention` on every backend
  (``ref`` = the float64 recurrence, ``numba`` = the compiled recurrence, ``torch`` = the
  chunked form, ``torch:cuda`` when present) equals the materialized parallel form
  (φQ φKᵀ ∘ L)V, and its final state equals Σ_s φ(k_s)[v_s, 1]ᵀ.  Control: the causal mask
  without its diagonal (s < t), the off-by-one of a mask.  Proof: the library's one-step
  update :func:`la_step` run on sympy symbols, an induction step valid for every L.
* ``ssm.cottention-is-rnn`` -- the public :func:`cottention` on every backend and the
  library's materialized :func:`cottention_parallel` equal cosine attention written out in
  this module (its own normalization and its own token counts n_s = offset + s + 1, so an
  off-by-one in the library's ``_stabilizer`` is caught).  Control: the output divided by
  n_t^p instead of each value by n_s^p (the two agree only at p = 0).

Tolerance: the float64 policy (1e-10); measured errors stay below 1e-14.  Instances draw
awkward sizes (length 1 possible, distinct small dims) and logit scales 1 and 30 (the elu+1
feature map exponentiates negative logits).
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from .linear_forms import (
    _feature,
    cottention,
    cottention_parallel,
    la_step,
    linear_attention,
    linear_attention_parallel,
    make_linear_attention_inputs,
)

KATHAROPOULOS = Paper("Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention", 2020, "2006.16236")
COTTENTION = Paper("Cottention: Linear Transformers With Cosine Attention", 2024, "2409.18747", index=74)
MODULE, TEST = "theorylab/ssm/linear_forms.py", "tests/ssm/test_linear_forms.py"
BACKENDS = ("ref", "numba", "torch")

_TOP = {"quick": dict(batch=2, length=48, heads=3), "full": dict(batch=3, length=256, heads=4)}
DIMS = (1, 2, 3, 5, 7)
LOGIT_SCALES = (1.0, 30.0)


def draw_sizes(rng, size, same_dim=False, min_length=1):
    """Random sizes of the family's instances (length 1 possible, distinct small dims)."""
    sz = {k: int(rng.integers(1, v + 1)) for k, v in _TOP[size].items()}
    sz["length"] = max(sz["length"], min_length)
    sz["dk"] = int(rng.choice(DIMS))
    sz["dv"] = sz["dk"] if same_dim else int(rng.choice(DIMS))
    return sz


def worst(verdicts, backend):
    """The verdict of largest error / tolerance among ``verdicts``, renamed ``backend``."""
    w = max(verdicts, key=lambda v: (not v.holds, v.margin if np.isfinite(v.margin) else np.inf))
    return Verdict(holds=all(v.holds for v in verdicts), error=w.error, tolerance=w.tolerance, backend=backend,
                   sizes=w.sizes, detail=w.detail)


# ---- causal linear attention ------------------------------------------------------------------
def _la_verdict(rng, size, control):
    sz = draw_sizes(rng, size, min_length=2 if control else 1)
    p = make_linear_attention_inputs(rng, **sz)
    scale = float(rng.choice(LOGIT_SCALES))
    q, k, v = p["q"] * scale, p["k"] * scale, p["v"]
    fm, normalize = [("identity", False), ("elu1", False), ("elu1", True)][int(rng.integers(3))]
    sizes = {**sz, "feature_map": fm, "normalize": normalize, "logit_scale": scale}
    if control:  # WRONG on purpose: mask s < t instead of s <= t, against the library's recurrence
        fq, fk = _feature(q, fm), _feature(k, fm)
        A = np.einsum("bthk,bshk->bhts", fq, fk) * np.tril(np.ones((sz["length"],) * 2), -1)
        out = np.einsum("bhts,bshv->bthv", A, v)
        if normalize:
            out = out / np.maximum(np.transpose(A.sum(-1), (0, 2, 1))[..., None], 1e-300)
        ref = linear_attention(q, k, v, feature_map=fm, normalize=normalize, backend="ref")
        return identity_verdict(out, ref, dtype=np.float64, sizes=sizes, what="strict-mask parallel form vs RNN")
    ref = linear_attention_parallel(q, k, v, feature_map=fm, normalize=normalize)  # (b, L, h, dv)
    fk = _feature(k, fm)
    v1 = np.concatenate([v, np.ones(v.shape[:3] + (1,))], axis=-1)
    S_ref = np.einsum("bshk,bshv->bhkv", fk, v1)  # Σ_s φ(k_s)[v_s, 1]ᵀ
    chunk = int(rng.integers(1, 17))
    parts = {}
    for b in check_backends(BACKENDS):
        y, S = call_backend(linear_attention, b, q, k, v, feature_map=fm, normalize=normalize, chunk_size=chunk,
                            return_final_state=True)
        parts[b] = worst([identity_verdict(y, ref, dtype=np.float64, backend=b, sizes=sizes,
                                           what=f"linear_attention[{b}] vs (φQφKᵀ∘L)V"),
                          identity_verdict(S, S_ref, dtype=np.float64, backend=b, sizes=sizes,
                                           what=f"final state [{b}] vs Σφ(k)[v,1]ᵀ")], b)
    return Verdict.combine(parts, sizes={**sizes, "chunk": chunk})


def _symbols(name, shape):
    import sympy as sp

    return np.array(sp.symbols(f"{name}0:{int(np.prod(shape))}", real=True), dtype=object).reshape(shape)


def la_proof(dk: int = 2, dv: int = 3, L: int = 4) -> Proof:
    """The library's :func:`la_step` on sympy symbols: the induction step for every t, and L steps unrolled.

    Hypothesis: S_{t-1} = Σ_{s<t} φ(k_s)[v_s, 1]ᵀ (a symbolic dk x (dv+1) matrix X; S_{-1} = 0 is
    the empty sum).  Step: la_step(X, q, k, v) must return S_t = X + φ(k_t)[v_t, 1]ᵀ (= Σ_{s<=t})
    and out_t = φ(q_t)ᵀX + (φ(q_t)·φ(k_t))[v_t, 1], which is the parallel row
    Σ_{s<=t} (φ(q_t)·φ(k_s))[v_s, 1] by linearity; the normalized output divides its first dv
    entries by the last.  Unrolled: L steps from 0 against the retyped parallel sum.
    """
    import sympy as sp

    X, q, k, v = _symbols("X", (dk, dv + 1)), _symbols("q", (dk,)), _symbols("k", (dk,)), _symbols("v", (dv,))
    v1 = np.append(v, sp.Integer(1))
    S, out = la_step(X, q, k, v1)
    zero = lambda a: all(sp.expand(e) == 0 for e in np.ravel(a))  # noqa: E731
    ok = zero(S - X - np.outer(k, v1)) and zero(out - (X.T @ q + (q @ k) * v1))
    Q, K, Vv = _symbols("Q", (L, dk)), _symbols("K", (L, dk)), _symbols("V", (L, dv))
    S = np.full((dk, dv + 1), sp.Integer(0), dtype=object)
    for t in range(L):
        S, out = la_step(S, Q[t], K[t], np.append(Vv[t], sp.Integer(1)))
        par = sum(((Q[t] @ K[s]) * np.append(Vv[s], sp.Integer(1)) for s in range(t + 1)), np.zeros(dv + 1, object))
        ok = ok and zero(out - par)
    return Proof(bool(ok), "sympy: the library's one-step update la_step on symbolic S_{t-1}, q_t, k_t, v_t gives "
                 "S_t = Σ_{s<=t} φ(k_s)[v_s,1]ᵀ and the t-th row of (φQφKᵀ∘L)[V,1]; also unrolled from S = 0",
                 scope=f"general L (induction step on t), dk={dk}, dv={dv}; unrolled L={L}; library reference "
                 "(la_step, the update the float64 reference loops over)")


# ---- Cottention --------------------------------------------------------------------------------
def cosine_attention_written_out(q, k, v, p, position_offset, *, divide_output=False):
    """y_t = Σ_{s<=t} (q̂_t·k̂_s) v_s / n_s^p, n_s = position_offset + s + 1, written out here.

    Independent of the library (its own unit vectors and token counts).  ``divide_output=True``
    is the WRONG form y_t = Σ_{s<=t} (q̂_t·k̂_s) v_s / n_t^p (the control).
    """
    qh = q / np.sqrt(np.sum(q * q, axis=-1, keepdims=True))
    kh = k / np.sqrt(np.sum(k * k, axis=-1, keepdims=True))
    L = q.shape[1]
    counts = position_offset + 1.0 + np.arange(L)  # n_s: tokens the causal row of token s sees
    scores = np.einsum("bthd,bshd->bhts", qh, kh) * np.tril(np.ones((L, L)))  # (b, h, L, L)
    if divide_output:
        return np.einsum("bhts,bshv->bthv", scores, v) / counts[None, :, None, None] ** p
    return np.einsum("bhts,bshv->bthv", scores, v / counts[None, :, None, None] ** p)


def _cot_verdict(rng, size, control):
    sz = draw_sizes(rng, size, min_length=2 if control else 1)
    p = make_linear_attention_inputs(rng, **sz)
    q, k, v = p["q"], p["k"], p["v"]
    pw = float(rng.choice([0.5, 1.0] if control else [0.0, 0.5, 1.0, 1.0 / (1.0 + np.exp(-0.5))]))
    off = int(rng.integers(0, 5))
    sizes = {**sz, "p": pw, "position_offset": off}
    if control:  # WRONG on purpose: the output divided by n_t^p
        bad = cosine_attention_written_out(q, k, v, pw, off, divide_output=True)
        return identity_verdict(bad, cottention(q, k, v, p=pw, position_offset=off, backend="ref"), dtype=np.float64,
                                sizes=sizes, what="output / n_t^p vs the RNN")
    ref = cosine_attention_written_out(q, k, v, pw, off)
    chunk = int(rng.integers(1, 17))
    parts = {"parallel": identity_verdict(cottention_parallel(q, k, v, p=pw, position_offset=off), ref,
                                          dtype=np.float64, backend="parallel", sizes=sizes,
                                          what="cottention_parallel vs cosine attention written out")}
    for b in check_backends(BACKENDS):
        y, S = call_backend(cottention, b, q, k, v, p=pw, position_offset=off, chunk_size=chunk, return_final_state=True)
        parts[b] = identity_verdict(y, ref, dtype=np.float64, backend=b, sizes=sizes,
                                    what=f"cottention[{b}] vs Σ(q̂·k̂)v_s/n_s^p written out")
    return Verdict.combine(parts, sizes={**sizes, "chunk": chunk})


# ---- registration --------------------------------------------------------------------------------
register(Claim(
    id="ssm.linear-attention-is-rnn", paper=KATHAROPOULOS, kind="identity",
    statement="Causal linear attention (φ(Q)φ(K)ᵀ ∘ L)V, optionally normalized by its row sums, equals the RNN "
    "S_t = S_{t-1} + φ(k_t)v_tᵀ, z_t = z_{t-1} + φ(k_t), y_t = φ(q_t)ᵀS_t (/ φ(q_t)ᵀz_t), and its chunked form.",
    check=lambda rng, size="quick": _la_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _la_verdict(rng, size, True),
    proof=la_proof, experiment="ssm_recurrent_forms", module=MODULE, test=TEST, samples=3,
    controls="causal mask without its diagonal (s < t)"))

register(Claim(
    id="ssm.cottention-is-rnn", paper=COTTENTION, kind="identity",
    statement="Causal cosine attention y_t = Σ_{s<=t} (q̂_t·k̂_s) v_s / n_s^p with unit-length rows q̂, k̂ and each value "
    "divided by its token count n_s = offset + s + 1 raised to p = σ(m) (the released causal code) equals an RNN with "
    "a dk x dv state S_t = S_{t-1} + k̂_t (v_t / n_t^p)ᵀ, y_t = S_tᵀ q̂_t.",
    check=lambda rng, size="quick": _cot_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _cot_verdict(rng, size, True),
    experiment="ssm_recurrent_forms", module=MODULE, test=TEST, samples=3,
    controls="the output divided by n_t^p instead of each value by n_s^p"))
