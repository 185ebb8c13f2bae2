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
  the 1e-10 policy; one verdict per backend, combined (holds iff all hold);
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


def _verdict(rng, size, *, wrong_matrix: bool) -> Verdict:
    sizes = _draw_sizes(rng, size)
    decays = "extreme" if rng.random() < 0.5 else "moderate"
    p = make_inputs(rng, **sizes, decays=decays)
    x, delta, A, B, C, D = (p[k] for k in ("x", "delta", "A", "B", "C", "D"))
    parts = {}
    for backend in check_backends(("ref", "numba", "torch")):
        y = call_backend(selective_scan, backend, x, delta, A, B, C, D)  # (b, L, c)
        M = _matrix_off_by_one(delta, A, B, C) if wrong_matrix else \
            call_backend(selective_attention_matrix, backend, delta, A, B, C)  # (b, c, L, L)
        y_attn = np.einsum("bcts,bsc->btc", M, x) + D * x
        parts[backend] = identity_verdict(y_attn, y, dtype=np.float64, backend=backend, sizes=sizes,
                                          what=f"M x + D x vs scan, {decays} decays")
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
