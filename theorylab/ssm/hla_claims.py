"""Claim of :mod:`theorylab.ssm.hla`: ``ssm.hla-second-order-streaming`` (check, control, proof).

Check: the public :func:`hla2` on every backend (``ref`` the float64 serial recurrence,
``numba`` the compiled recurrence, ``torch`` the chunk-parallel scan, ``torch:cuda`` when
present) equals the materialized (L∘QKᵀ)(L∘KQᵀ)V, and its final state equals the prefix
sums written out (S = Σ k kᵀ, C = Σ q vᵀ, G = Σ_u S_{u-1} q_u v_uᵀ).  Control: the masked
correction G dropped (the unmasked product S^K C^QV).  Proof: the library's one-step update
:func:`hla2_step` on sympy symbols: the invariant S_t C_t - G_t = Σ_{s<=t} k_s k_sᵀ C_s is
preserved by one step for every t (induction), and y_t = q_tᵀ (S_t C_t - G_t) is then the
t-th row of the materialized form; also L steps unrolled.

Tolerance: the float64 policy (1e-10); measured errors ~1e-15 (logit scales 1 and 30).
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from .hla import hla2, hla2_materialized, hla2_recurrent, hla2_step
from .linear_forms import make_linear_attention_inputs
from .linear_forms_claims import LOGIT_SCALES, _symbols, draw_sizes, worst

HLA = Paper("Higher-order Linear Attention", 2025, "2510.27258", index=14)
MODULE, TEST = "theorylab/ssm/hla.py", "tests/ssm/test_hla.py"
BACKENDS = ("ref", "numba", "torch")


def prefix_statistics(q, k, v):
    """(S, C, G) after the whole sequence, written out: Σ k kᵀ, Σ q vᵀ, Σ_u (Σ_{s<u} k_s k_sᵀ) q_u v_uᵀ."""
    S = np.einsum("bthk,bthj->bhkj", k, k)
    C = np.einsum("bthk,bthv->bhkv", q, v)
    KK = np.cumsum(np.einsum("bthk,bthj->bthkj", k, k), axis=1) - np.einsum("bthk,bthj->bthkj", k, k)  # S_{u-1}
    G = np.einsum("buhkj,buhj,buhv->bhkv", KK, q, v)
    return S, C, G


def _hla_verdict(rng, size, control):
    sz = draw_sizes(rng, size, min_length=2 if control else 1)  # at length 1 the correction G is 0
    p = make_linear_attention_inputs(rng, **sz)
    scale = float(rng.choice(LOGIT_SCALES))
    q, k, v = p["q"] * scale, p["k"] * scale, p["v"]
    sizes = {**sz, "logit_scale": scale}
    ref = hla2_materialized(q, k, v)
    if control:  # WRONG on purpose: y_t = q_tᵀ S^K_t C^QV_t
        return identity_verdict(hla2_recurrent(q, k, v, masked=False)[0], ref, dtype=np.float64, sizes=sizes,
                                what="unmasked S^K C^QV vs (L∘QKᵀ)(L∘KQᵀ)V")
    st_ref = prefix_statistics(q, k, v)
    chunk = int(rng.integers(1, 17))
    parts = {}
    for b in check_backends(BACKENDS):
        y, st = call_backend(hla2, b, q, k, v, chunk_size=chunk, return_final_state=True)
        vs = [identity_verdict(y, ref, dtype=np.float64, backend=b, sizes=sizes, what=f"hla2[{b}] vs (L∘QKᵀ)(L∘KQᵀ)V")]
        vs += [identity_verdict(x, r, dtype=np.float64, backend=b, sizes=sizes, what=f"final {n} [{b}] vs prefix sums")
               for n, x, r in zip("SCG", st, st_ref)]
        parts[b] = worst(vs, b)
    return Verdict.combine(parts, sizes={**sizes, "chunk": chunk})


def hla_proof(dk: int = 2, dv: int = 2, L: int = 3) -> Proof:
    """Induction with the library's :func:`hla2_step` (see the module docstring), plus L steps unrolled."""
    import sympy as sp

    zero = lambda a: all(sp.expand(e) == 0 for e in np.ravel(a))  # noqa: E731
    S, C, G = _symbols("S", (dk, dk)), _symbols("C", (dk, dv)), _symbols("G", (dk, dv))
    q, k, v = _symbols("q", (dk,)), _symbols("k", (dk,)), _symbols("v", (dv,))
    (S1, C1, G1), y = hla2_step((S, C, G), q, k, v)
    # invariant: (S_t C_t - G_t) - (S_{t-1} C_{t-1} - G_{t-1}) = k_t k_tᵀ C_t, with the updates of S and C
    ok = (zero(S1 - S - np.outer(k, k)) and zero(C1 - C - np.outer(q, v))
          and zero((S1 @ C1 - G1) - (S @ C - G) - np.outer(k, k) @ C1) and zero(y - (S1 @ C1 - G1).T @ q))
    Q, K, V = _symbols("Q", (L, dk)), _symbols("K", (L, dk)), _symbols("V", (L, dv))
    st = (np.full((dk, dk), sp.Integer(0), object), np.full((dk, dv), sp.Integer(0), object),
          np.full((dk, dv), sp.Integer(0), object))
    for t in range(L):
        st, y = hla2_step(st, Q[t], K[t], V[t])
        mat = sum(((Q[t] @ K[s]) * (K[s] @ Q[u]) * V[u] for s in range(t + 1) for u in range(s + 1)), np.zeros(dv, object))
        ok = ok and zero(y - mat)
    return Proof(bool(ok), "sympy: the library's hla2_step keeps S_t C_t - G_t = Σ_{s<=t} k_s k_sᵀ C_s (induction "
                 "step on symbolic S, C, G, q, k, v), so y_t = q_tᵀ(S_t C_t - G_t) is row t of (L∘QKᵀ)(L∘KQᵀ)V; "
                 "also unrolled", scope=f"general L (induction step on t), dk={dk}, dv={dv}; unrolled L={L}; "
                 "library reference (hla2_step, the update the float64 reference loops over)")


register(Claim(
    id="ssm.hla-second-order-streaming", paper=HLA, kind="identity",
    statement="Second-order causal HLA: the streaming statistics S^K = Σkkᵀ, C^QV = Σqvᵀ and G_t = Σ_{u<=t} S^K_{u-1}q_u v_uᵀ "
    "give y_t = q_tᵀ(S^K_t C^QV_t - G_t) = ((L∘QKᵀ)(L∘KQᵀ)V)_t, and the chunk-parallel scan reproduces the serial recurrence.",
    check=lambda rng, size="quick": _hla_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _hla_verdict(rng, size, True),
    proof=hla_proof, experiment="ssm_recurrent_forms", module=MODULE, test=TEST, samples=3,
    controls="masked correction G dropped (unmasked S^K C^QV)"))
