"""Claims of :mod:`theorylab.ssm.gated_linear`: checks, negative controls, sympy proof, registration.

* ``ssm.gateloop-three-forms`` -- the public :func:`gateloop` on every backend (``ref`` the
  complex128 recurrence, ``numba`` the compiled recurrence, ``torch`` the chunked
  associative scan, ``torch:cuda`` when present) and the numpy associative scan
  :func:`gateloop_scan` equal the surrogate attention (QKᵀ ∘ M)V with
  M[n, m] = Π_{j=m+1..n} a_j taken from stable segment sums.  Gates are drawn with moderate,
  extreme (modulus down to e^{-60}: products underflow to 0, so a form dividing cumulative
  products gives 0/0) and unit moduli.  Control: the surrogate mask Π_{j=m..n} a_j (one
  gate too many).  Proof: the library's one-step update :func:`gateloop_step` on sympy
  symbols (induction step, every L) and L steps unrolled against the retyped surrogate form.
* ``ssm.aft-simple-recurrent`` -- the public :func:`aft_simple` on every backend (``ref`` /
  ``numba``: recurrence with a running max; ``torch``: log-space closed form) and the numpy
  closed form equal the attention form W[t, s] = exp(k_s - lse_t) (``logaddexp``).  Keys
  are drawn at scales 1, 30 and 300 with an upward drift (|k| up to ~1e3, past float64's
  e^709 overflow), so a recurrence without its max shift gives inf/inf.  Control: the
  numerator not rescaled when the running max grows.

Tolerance: the float64 policy (1e-10).  AFT's forms differ by exp/log rounding of size
~|lse_t| eps (lse_t <= max k + log L ~ 1e3), ~2e-13 here: no loosening needed.
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Proof, Verdict, register
from .gated_linear import (
    DECAYS,
    aft_simple,
    aft_simple_attention,
    aft_simple_closed_form,
    aft_simple_recurrent,
    gateloop,
    gateloop_attention,
    gateloop_scan,
    gateloop_step,
    make_gateloop_inputs,
)
from .linear_forms import make_linear_attention_inputs
from .linear_forms_claims import _symbols, draw_sizes

GATELOOP = Paper("GateLoop: Fully Data-Controlled Linear Recurrence for Sequence Modeling", 2023, "2311.01927", index=80)
AFT = Paper("An Attention Free Transformer", 2021, "2105.14103", index=119)
MODULE, TEST = "theorylab/ssm/gated_linear.py", "tests/ssm/test_gated_linear.py"
BACKENDS = ("ref", "numba", "torch")
KEY_SCALES = (1.0, 30.0, 300.0)


# ---- GateLoop --------------------------------------------------------------------------------
def _gl_verdict(rng, size, control):
    sz = draw_sizes(rng, size, min_length=2 if control else 1)
    decay = str(rng.choice(DECAYS))
    p = make_gateloop_inputs(rng, scalar_gate=bool(rng.integers(2)), decay=decay, **sz)
    args = (p["q"], p["k"], p["v"], p["a"])
    sizes = {**sz, "gate": "scalar" if p["a"].ndim == 3 else "per-dim", "decay": decay,
             "min|a|": float(np.abs(p["a"]).min())}
    if control:  # WRONG on purpose: the mask includes a_m
        return identity_verdict(gateloop_attention(*args, mask_from=0), call_backend(gateloop, "ref", *args),
                                dtype=np.float64, sizes=sizes, what="mask Π_{j=m..n} a_j vs recurrence")
    ref = gateloop_attention(*args)  # (QKᵀ ∘ M)V, M from stable segment sums
    chunk = int(rng.integers(1, 17))
    parts = {"scan": identity_verdict(gateloop_scan(*args)[0], ref, dtype=np.float64, backend="scan", sizes=sizes,
                                      what="associative scan vs surrogate attention")}
    for b in check_backends(BACKENDS):
        parts[b] = identity_verdict(call_backend(gateloop, b, *args, chunk_size=chunk), ref, dtype=np.float64,
                                    backend=b, sizes=sizes, what=f"gateloop[{b}] vs surrogate attention")
    return Verdict.combine(parts, sizes={**sizes, "chunk": chunk})


def gl_proof(dk: int = 2, dv: int = 2, L: int = 4) -> Proof:
    """The library's :func:`gateloop_step` on sympy symbols (complex gates).

    Hypothesis: H_{t-1} = Σ_{m<t} (Π_{j=m+1..t-1} a_j) ⊙ k_m v_mᵀ (a symbolic matrix X).  Step:
    gateloop_step must return H_t = a_t ⊙ X + k_t v_tᵀ, which is Σ_{m<=t} (Π_{j=m+1..t} a_j) ⊙ k_m v_mᵀ
    because a_t Π_{j=m+1..t-1} a_j = Π_{j=m+1..t} a_j, and y_t = q_tᵀ H_t, the surrogate row.
    Unrolled: L steps from 0 against Σ_m Σ_d q_n[d] k_m[d] Π_{j=m+1..n} a_j[d] v_m (retyped).
    """
    import sympy as sp

    zero = lambda a: all(sp.expand(e) == 0 for e in np.ravel(a))  # noqa: E731
    X = np.array(sp.symbols(f"X0:{dk * dv}"), dtype=object).reshape(dk, dv)
    a = np.array(sp.symbols(f"a0:{dk}"), dtype=object)
    q, k, v = _symbols("q", (dk,)), _symbols("k", (dk,)), _symbols("v", (dv,))
    H, y = gateloop_step(X, q, k, v, a)
    ok = zero(H - (a[:, None] * X + np.outer(k, v))) and zero(y - H.T @ q)
    A = np.array(sp.symbols(f"A0:{L * dk}"), dtype=object).reshape(L, dk)
    Q, K, V = _symbols("Q", (L, dk)), _symbols("K", (L, dk)), _symbols("V", (L, dv))
    H = np.full((dk, dv), sp.Integer(0), dtype=object)
    for n in range(L):
        H, y = gateloop_step(H, Q[n], K[n], V[n], A[n])
        att = sum((sum(Q[n, d] * K[m, d] * sp.prod(A[m + 1:n + 1, d]) for d in range(dk)) * V[m] for m in range(n + 1)),
                  np.zeros(dv, object))
        ok = ok and zero(y - att)
    return Proof(bool(ok), "sympy: the library's gateloop_step on symbolic H_{t-1}, gates, q, k, v is the induction "
                 "step of H_t = Σ_{m<=t} Π_{j=m+1..t} a_j k_m v_mᵀ; unrolled it equals the surrogate attention",
                 scope=f"general L (induction step on t), dk={dk}, dv={dv}, symbolic complex gates; unrolled L={L}; "
                 "library reference (gateloop_step, the update the complex128 reference loops over)")


# ---- AFT-simple --------------------------------------------------------------------------------
def _aft_verdict(rng, size, control):
    sz = draw_sizes(rng, size, same_dim=True, min_length=4 if control else 1)
    p = make_linear_attention_inputs(rng, **sz)
    # keys of scale 1, 30 or 300 with an upward drift so the running max grows often; at 300,
    # |k| ~ 1e3 > 709 where e^k overflows float64
    scale = float(rng.choice(KEY_SCALES))
    drift = np.linspace(0.0, 3.0, sz["length"])[None, :, None, None]
    k = (p["k"] * np.sqrt(sz["dk"]) + drift) * scale
    q, v = p["q"], p["v"]
    sizes = {**sz, "key_scale": scale, "max|k|": float(np.abs(k).max())}
    ref = aft_simple_attention(q, k, v)  # W[t, s] = exp(k_s - lse_t), lse by logaddexp
    if control:  # WRONG on purpose: num not rescaled when the running max grows
        return identity_verdict(aft_simple_recurrent(q, k, v, rescale_num=False)[0], ref, dtype=np.float64, sizes=sizes,
                                what="recurrence without rescaling num vs attention form")
    parts = {"closed form": identity_verdict(aft_simple_closed_form(q, k, v)[0], ref, dtype=np.float64,
                                             backend="closed form", sizes=sizes,
                                             what="log-cumsum-exp closed form vs attention form")}
    for b in check_backends(BACKENDS):
        parts[b] = identity_verdict(call_backend(aft_simple, b, q, k, v), ref, dtype=np.float64, backend=b,
                                    sizes=sizes, what=f"aft_simple[{b}] vs attention form")
    return Verdict.combine(parts, sizes=sizes)


# ---- registration --------------------------------------------------------------------------------
register(Claim(
    id="ssm.gateloop-three-forms", paper=GATELOOP, kind="identity",
    statement="With data-controlled complex gates |a_t| <= 1, the GateLoop recurrence H_t = diag(a_t)H_{t-1} + k_t v_tᵀ, "
    "y_t = q_tᵀH_t equals its associative scan and the surrogate attention (QKᵀ ∘ M)V, M[n,m] = Π_{j=m+1..n} a_j, "
    "also for gates whose products underflow.",
    check=lambda rng, size="quick": _gl_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _gl_verdict(rng, size, True),
    proof=gl_proof, experiment="ssm_recurrent_forms", module=MODULE, test=TEST, samples=3,
    controls="surrogate mask Π_{j=m..n} a_j (includes a_m)"))

register(Claim(
    id="ssm.aft-simple-recurrent", paper=AFT, kind="identity",
    statement="AFT-simple σ(Q) ∘ cumsum(e^K ∘ V)/cumsum(e^K), computed stably in log space, equals its running-max recurrence "
    "and the causal per-feature softmax-over-positions attention form, also for keys where e^K overflows.",
    check=lambda rng, size="quick": _aft_verdict(rng, size, False),
    negative_control=lambda rng, size="quick": _aft_verdict(rng, size, True),
    experiment="ssm_recurrent_forms", module=MODULE, test=TEST, samples=3,
    controls="numerator not rescaled when the running max grows"))
