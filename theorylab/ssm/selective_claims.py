"""Claim ``ssm.selective-scan-is-attention``: check, negative control, sympy proof.

Statement (see :mod:`theorylab.ssm.selective` for the math and the papers):
the selective scan y_t = <C_t, h_t> + D x_t, h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t x_t B_t
equals y = M x + D x with M[t, s] = Σ_n C_t[n] exp(Σ_{k=s+1..t} Δ_k A[n]) Δ_s B_s[n]
for s <= t and 0 above the diagonal.

* check: on a random instance (odd sizes, length 1 possible, lengths past the torch
  scan's 64-step chunk, moderate or extreme decays: Δ·A down to -1e4 and up to -1e-7),
  for every backend a user can call here (:func:`theorylab.checks.check_backends`: ref,
  numba, torch, torch:cuda) the public :func:`selective_scan` against M x + D x with M
  from the public :func:`selective_attention_matrix` *on the same backend*, float64, under
  the 1e-10 policy; and, for numba and torch, the same identity on float32 inputs: on the
  drawn instance under the float32 policy (1e-4), and on a long one (L = 1,024 quick,
  2,048 full; stretches of fast and slow forgetting, Σ Δ up to ~1e3-1e4) under √L·ε₃₂
  (error model at ``LONG_C``), where a segment sum taken as a difference of float32
  cumulative sums fails (in float64 that form is still accurate to ~1e-11, so the float64
  parts cannot see it); one verdict per backend and dtype, combined (holds iff all hold);
* negative control: the same comparison with the decay of M taken over Σ_{k=s..t} (one
  step too many, the off-by-one that drops the ZOH convention) -- a finite error, rejected
  by its size;
* proof (:mod:`theorylab.ssm._induction`): for every length and state size. A is
  diagonal, so each (channel, state index n) is the scalar recurrence h_t = exp(ell_t)
  h_{t-1} + u_t with ell_t = Δ_t A[n], u_t = Δ_t B_t[n] x_t, and y_t - D x_t = Σ_n C_t[n]
  h_t[n]; the matrix form is y_t - D x_t = Σ_n C_t[n] W_n(t) with W(T) = Σ_{s<=T}
  exp(Σ_{k=s+1..T} ell_k) u_s.  sympy checks W(-1) = 0 = h_{-1} and the induction step
  exp(ell_t) W(t-1) + u_t = W(t) with t symbolic, so h_t = W(t) for all t.  The recurrence
  step and M are the statement's formulas retyped (the library's numpy code cannot run
  on symbols); the check covers the code.
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from ._segsum import segsum
from .selective import make_inputs, selective_attention_matrix, selective_scan

PAPER = Paper("Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023, "2312.00752", index=93)

# lengths up to 150 cross the torch scan's 64-step chunks (the state carried between them)
_SIZES = {"quick": dict(batch=2, length=150, channels=5, state=3), "full": dict(batch=3, length=384, channels=7, state=5)}


def _draw_sizes(rng: np.random.Generator, size: str) -> dict:
    top = _SIZES[size]
    out = {k: int(rng.integers(1, v + 1)) for k, v in top.items()}
    if rng.random() < 0.25:  # short sequences (length 1 included) a quarter of the time
        out["length"] = int(rng.integers(1, 9))
    return out


def _matrix_off_by_one(delta, A, B, C):
    """WRONG on purpose: decay over k = s..t (includes Δ_s), i.e. exp(Δ_s A) too many."""
    dT = np.transpose(delta, (0, 2, 1))  # (b, c, L)
    M = np.zeros(dT.shape + dT.shape[-1:])  # (b, c, L, L)
    for n in range(A.shape[1]):
        logdec = dT * A[None, :, n, None]  # (b, c, L)
        decay = np.exp(segsum(logdec) + logdec[:, :, None, :])  # adds Δ_s A: the wrong step
        M += C[:, None, :, None, n] * decay * (dT * B[:, None, :, n])[:, :, None, :]
    return M


_LONG = {"quick": 1024, "full": 2048}
_EPS32 = float(np.finfo(np.float32).eps)
# Tolerance of the long float32 parts, c · √L · ε₃₂ with c = 1 (the error model of
# ssm.ssd-float32-long: float32 rounding over up to L steps, random-walk growth).  Measured on
# 12 long instances: c <= 0.22 (numba), 0.12 (torch); a torch segment sum taken as a float32
# cumsum difference measured c = 0.8 to 65 (10 of 12 above 1).
LONG_C = 1.0


def _long_float32_inputs(rng: np.random.Generator, length: int) -> dict:
    """float32, one batch row, 2 channels, 2 states: Δ in stretches (up to L/8 steps) of fast
    forgetting (log-uniform [1, 10]) and slow forgetting ([1e-3, 1e-2]), A = -exp(U[log 1e-2,
    log 30]): Σ Δ reaches ~1e3-1e4, so a segment sum taken as cs_t - cs_s in float32 loses
    ~1e-3 of a slow stretch's exponent, while the stable forms stay at float32 rounding."""
    p = make_inputs(rng, batch=1, length=length, channels=2, state=2, dtype=np.float32)
    delta = np.empty(length)
    t = 0
    while t < length:
        T = int(rng.integers(1, max(2, length // 8)))
        lo, hi = (1.0, 10.0) if rng.random() < 0.5 else (1e-3, 1e-2)
        delta[t:t + T] = np.exp(rng.uniform(np.log(lo), np.log(hi), size=min(T, length - t)))
        t += T
    p["delta"] = np.repeat(delta[None, :, None], 2, axis=2).astype(np.float32)
    p["A"] = -np.exp(rng.uniform(np.log(1e-2), np.log(30.0), size=(2, 2))).astype(np.float32)
    return p


def _verdict(rng, size, *, wrong_matrix: bool) -> Verdict:
    sizes = _draw_sizes(rng, size)
    decays = "extreme" if rng.random() < 0.5 else "moderate"
    p = make_inputs(rng, **sizes, decays=decays)
    x, delta, A, B, C, D = (p[k] for k in ("x", "delta", "A", "B", "C", "D"))
    low = [v.astype(np.float32) for v in (x, delta, A, B, C, D)]  # float32 inputs for the fast paths' float32 parts
    runs = [(b, np.float64, (x, delta, A, B, C, D)) for b in check_backends(("ref", "numba", "torch"))]
    if not wrong_matrix:  # the control stays in float64, where its error is far above tolerance
        runs += [(f"{b} float32", np.float32, low) for b in check_backends(("numba", "torch"))]
        q = _long_float32_inputs(rng, _LONG[size])
        long = tuple(q[k] for k in ("x", "delta", "A", "B", "C", "D"))
        runs += [(f"{b} float32 long", np.float32, long) for b in check_backends(("numba", "torch"))]
    parts = {}
    for name, dtype, (xx, dd, AA, BB, CC, DD) in runs:
        rtol = LONG_C * np.sqrt(_LONG[size]) * _EPS32 if name.endswith("long") else None
        backend = name.split()[0]
        y = call_backend(selective_scan, backend, xx, dd, AA, BB, CC, DD)  # (b, L, c)
        M = _matrix_off_by_one(*(v.astype(np.float64) for v in (dd, AA, BB, CC))) \
            if wrong_matrix else call_backend(selective_attention_matrix, backend, dd, AA, BB, CC)  # (b, c, L, L)
        y_attn = np.einsum("bcts,bsc->btc", M, xx.astype(np.float64)) + DD.astype(np.float64) * xx
        parts[name] = identity_verdict(y_attn, y, dtype=None if rtol else dtype, rtol=rtol, backend=name, sizes=sizes,
                                       what=f"M x + D x vs scan, {decays} decays, {np.dtype(dtype).name}")
    return Verdict.combine(parts, sizes={**sizes, "decays": decays})


def check(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _verdict(rng, size, wrong_matrix=False)


def negative_control(rng: np.random.Generator, size: str = "quick") -> Verdict:
    return _verdict(rng, size, wrong_matrix=True)


def proof(*, extra_step: bool = False) -> Proof:
    """General: the scan's recurrence = the matrix form for every length L and state size N.

    ``extra_step=True`` proves (and fails) the negative control's matrix, whose decay runs
    over Σ_{k=s..t}: its s = t term is exp(Δ_t A) Δ_t B_t x_t, not Δ_t B_t x_t."""
    from ._induction import induction_step, segment_sum_lemma

    lemma, lemma_detail = segment_sum_lemma()
    step, step_detail = induction_step(first=0 if extra_step else 1)
    return Proof(lemma and step, f"sympy, per state index (A diagonal): {lemma_detail}; {step_detail}",
                 scope="general: every L (induction on t, t symbolic) and every N (states decouple); "
                       "retyped formula (recurrence step and M[t, s] of the statement)")


CLAIM = register(
    Claim(
        id="ssm.selective-scan-is-attention",
        paper=PAPER,
        statement="A selective SSM layer (Mamba's scan) equals y = M x + D x with the lower-triangular, "
        "data-dependent attention matrix M[t,s] = sum_n C_t[n] exp(sum_{k=s+1..t} delta_k A[n]) delta_s B_s[n] "
        "(the hidden attention of Ali, Zimerman & Wolf 2024, arXiv:2403.01590; #6).",
        kind="identity",
        check=check,
        negative_control=negative_control,
        proof=proof,
        experiment="ssm_hidden_attention",
        module="theorylab/ssm/selective.py",
        test="tests/ssm/test_selective_scan.py",
        controls="decay of M summed over k = s..t (one step too many)",
    )
)
