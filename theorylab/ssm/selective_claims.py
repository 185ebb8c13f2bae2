"""Claim ``ssm.selective-scan-is-attention``: check, negative control, sympy proof.

Statement (see :mod:`theorylab.ssm.selective` for the math and the papers):
the selective scan y_t = <C_t, h_t> + D x_t, h_t = exp(Δ_t A) ⊙ h_{t-1} + Δ_t x_t B_t
equals y = M x + D x with M[t, s] = Σ_n C_t[n] exp(Σ_{k=s+1..t} Δ_k A[n]) Δ_s B_s[n]
for s <= t and 0 above the diagonal.

* check: on a random instance (odd sizes, length 1 possible), the scan computed by the
  ``"auto"`` backend vs the materialized M x + D x, both float64, under the 1e-10 policy;
* negative control: the decay of M taken over Σ_{k=s..t} (one step too many, i.e. the
  "off by one" that drops the ZOH convention) -- must be rejected;
* proof: for L = 4, N = 2 with every quantity a sympy symbol, the unrolled recurrence
  minus the matrix form simplifies to exactly 0.
"""

from __future__ import annotations

import numpy as np

from ..backends import resolve_backend
from ..checks import identity_verdict
from ..claims import Claim, Paper, Proof, register
from ._segsum import segsum
from .selective import make_inputs, selective_attention_matrix_ref, selective_scan

PAPER = Paper("Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023, "2312.00752", index=93)

_SIZES = {"quick": dict(batch=2, length=48, channels=5, state=3), "full": dict(batch=3, length=384, channels=7, state=5)}


def _draw_sizes(rng: np.random.Generator, size: str) -> dict:
    top = _SIZES[size]
    return {k: int(rng.integers(1, v + 1)) for k, v in top.items()}


def _matrix_off_by_one(delta, A, B, C):
    """WRONG on purpose: decay over k = s..t (includes Δ_s), i.e. exp(Δ_s A) too many."""
    dT = np.transpose(delta, (0, 2, 1))  # (b, c, L)
    M = np.zeros(dT.shape + dT.shape[-1:])  # (b, c, L, L)
    for n in range(A.shape[1]):
        logdec = dT * A[None, :, n, None]  # (b, c, L)
        decay = np.exp(segsum(logdec) + logdec[:, :, None, :])  # adds Δ_s A: the wrong step
        M += C[:, None, :, None, n] * decay * (dT * B[:, None, :, n])[:, :, None, :]
    return M


def _verdict(rng, size, matrix_fn):
    sizes = _draw_sizes(rng, size)
    p = make_inputs(rng, **sizes)
    backend = resolve_backend("auto", (), valid=("ref", "numba", "torch"))
    y = selective_scan(p["x"], p["delta"], p["A"], p["B"], p["C"], p["D"], backend=backend)  # (b, L, c)
    M = matrix_fn(p["delta"], p["A"], p["B"], p["C"])  # (b, c, L, L)
    y_attn = np.einsum("bcts,bsc->btc", M, p["x"]) + p["D"] * p["x"]
    return identity_verdict(y_attn, y, dtype=np.float64, backend=backend, sizes=sizes, what="M x + D x vs scan")


def check(rng: np.random.Generator, size: str = "quick"):
    return _verdict(rng, size, selective_attention_matrix_ref)


def negative_control(rng: np.random.Generator, size: str = "quick"):
    return _verdict(rng, size, _matrix_off_by_one)


def proof_residuals(length: int = 4, state: int = 2, *, extra_step: bool = False) -> list:
    """Symbolic y_t(recurrence) - y_t(matrix form), simplified, for t = 0..length-1 (one channel).

    ``extra_step=True`` uses the wrong decay Σ_{k=s..t} (the negative control): its
    residuals are nonzero, which shows the proof can fail.
    """
    import sympy as sp

    L, N = length, state
    x = sp.symbols(f"x0:{L}", real=True)
    dl = sp.symbols(f"delta0:{L}", positive=True)
    A = sp.symbols(f"A0:{N}", negative=True)
    B = [sp.symbols(f"B{t}_0:{N}", real=True) for t in range(L)]
    C = [sp.symbols(f"C{t}_0:{N}", real=True) for t in range(L)]
    first = 0 if extra_step else 1
    h = [sp.Integer(0)] * N
    residuals = []
    for t in range(L):
        h = [sp.exp(dl[t] * A[n]) * h[n] + dl[t] * x[t] * B[t][n] for n in range(N)]  # recurrence
        y_rec = sum(C[t][n] * h[n] for n in range(N))
        y_mat = sum(  # matrix form: M[t, s] x_s
            C[t][n] * sp.exp(sum((dl[k] * A[n] for k in range(s + first, t + 1)), sp.Integer(0))) * dl[s] * B[s][n] * x[s]
            for s in range(t + 1)
            for n in range(N)
        )
        residuals.append(sp.expand(sp.powsimp(sp.expand(y_rec - y_mat), combine="exp")))
    return residuals


def proof(length: int = 4, state: int = 2) -> Proof:
    """Exact: unrolled recurrence == matrix form, all entries symbolic (one channel)."""
    ok = all(r == 0 for r in proof_residuals(length, state))
    return Proof(ok, f"sympy: unrolled recurrence = M x for L={length}, N={state}, all entries symbolic",
                 scope=f"L={length}, N={state}; retyped formula")


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
        controls="decay summed over k = s..t (one step too many)",
    )
)
