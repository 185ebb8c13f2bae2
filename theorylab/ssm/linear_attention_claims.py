"""Linear-attention family = RNN: checks, negative controls, sympy proofs, registration.

Math: :mod:`theorylab.ssm.linear_forms` (Katharopoulos et al.; Cottention #74),
:mod:`theorylab.ssm.gated_linear` (GateLoop #80; AFT-simple #119), :mod:`theorylab.ssm.hla`
(second-order HLA #14).

Every identity check draws awkward sizes (length 1 possible, distinct small dims) and
compares float64 forms under the 1e-10 policy.  AFT's forms differ by exp/log rounding of
size ~|lse_t| eps (lse_t = log Σ e^{k_s} <= max k + log L), below 1e-12 for the keys drawn
here (|k| up to a few hundred), so no loosening is needed.

Controls (each a plausible bug): linear attention with the diagonal dropped from the mask;
Cottention with unnormalized keys; GateLoop's surrogate mask including a_m; AFT without
rescaling the numerator when the running max grows; HLA without the masked correction G;
the KV cache fitted against the constant-state law.
"""

from __future__ import annotations

import numpy as np

from ..checks import identity_verdict, slope_verdict
from ..claims import Claim, Paper, Proof, register
from .gated_linear import (
    aft_simple,
    aft_simple_attention,
    aft_simple_closed_form,
    aft_simple_recurrent,
    gateloop,
    gateloop_attention,
    gateloop_recurrent,
    gateloop_scan,
    make_gateloop_inputs,
)
from .hla import hla2, hla2_materialized, hla2_recurrent
from .linear_forms import (
    _feature,
    cottention,
    cottention_parallel,
    linear_attention,
    linear_attention_parallel,
    linear_attention_recurrent,
    make_linear_attention_inputs,
)

KATHAROPOULOS = Paper("Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention", 2020, "2006.16236")
COTTENTION = Paper("Cottention: Linear Transformers With Cosine Attention", 2024, "2409.18747", index=74)
GATELOOP = Paper("GateLoop: Fully Data-Controlled Linear Recurrence for Sequence Modeling", 2023, "2311.01927", index=80)
AFT = Paper("An Attention Free Transformer", 2021, "2105.14103", index=119)
HLA = Paper("Higher-order Linear Attention", 2025, "2510.27258", index=14)
TEST = "tests/ssm/test_linear_attention.py"

_TOP = {"quick": dict(batch=2, length=48, heads=3), "full": dict(batch=3, length=256, heads=4)}
DIMS = (1, 2, 3, 5, 7)


def _draw(rng, size, same_dim=False):
    sz = {k: int(rng.integers(1, v + 1)) for k, v in _TOP[size].items()}
    sz["dk"] = int(rng.choice(DIMS))
    sz["dv"] = sz["dk"] if same_dim else int(rng.choice(DIMS))
    return sz


def _worst(*verdicts):
    return max(verdicts, key=lambda v: v.error / v.tolerance)


# ---- causal linear attention -------------------------------------------------------------
def _la_verdict(rng, size, drop_diagonal):
    sz = _draw(rng, size)
    p = make_linear_attention_inputs(rng, **sz)
    fm, normalize = [("identity", False), ("elu1", False), ("elu1", True)][int(rng.integers(3))]
    ref, _ = linear_attention_recurrent(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize)
    if drop_diagonal:  # WRONG on purpose: mask s < t instead of s <= t
        fq, fk = _feature(p["q"], fm), _feature(p["k"], fm)
        A = np.einsum("bthk,bshk->bhts", fq, fk) * np.tril(np.ones((sz["length"],) * 2), -1)
        out = np.einsum("bhts,bshv->bthv", A, p["v"])
        if normalize:
            out = out / np.maximum(np.transpose(A.sum(-1), (0, 2, 1))[..., None], 1e-300)
    else:
        out = linear_attention_parallel(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize)
    sizes = {**sz, "feature_map": fm, "normalize": normalize}
    v1 = identity_verdict(out, ref, dtype=np.float64, sizes=sizes, what="(φQ φKᵀ ∘ L)V vs recurrence")
    v2 = identity_verdict(linear_attention(p["q"], p["k"], p["v"], feature_map=fm, normalize=normalize,
                                           chunk_size=int(rng.integers(1, 17)), backend="torch"), ref,
                          dtype=np.float64, backend="torch", sizes=sizes, what="chunked vs recurrence")
    return _worst(v1, v2) if not drop_diagonal else v1


def _symbolic_qkv(L, dk, dv):
    import sympy as sp

    q = [sp.Matrix(dk, 1, sp.symbols(f"q{t}_0:{dk}", real=True)) for t in range(L)]
    k = [sp.Matrix(dk, 1, sp.symbols(f"k{t}_0:{dk}", real=True)) for t in range(L)]
    v = [sp.Matrix(dv, 1, sp.symbols(f"v{t}_0:{dv}", real=True)) for t in range(L)]
    return q, k, v


def la_proof(L: int = 4, dk: int = 2, dv: int = 2) -> Proof:
    """Exact: the recurrence S_t = S_{t-1} + k_t v_tᵀ, y_t = S_tᵀ q_t equals Σ_{s<=t} (q_t·k_s) v_s."""
    import sympy as sp

    q, k, v = _symbolic_qkv(L, dk, dv)
    S = sp.zeros(dk, dv)
    ok = True
    for t in range(L):
        S = S + k[t] * v[t].T
        par = sum(((q[t].T * k[s])[0] * v[s] for s in range(t + 1)), sp.zeros(dv, 1))
        ok = ok and sp.expand(S.T * q[t] - par) == sp.zeros(dv, 1)
    return Proof(bool(ok), f"sympy: recurrence = (QKᵀ ∘ L)V for L={L}, dk={dk}, dv={dv}, all entries symbolic", scope=f"L={L}, dk={dk}, dv={dv}; retyped formula")


# ---- Cottention ----------------------------------------------------------------------------
def _cot_verdict(rng, size, raw_keys):
    sz = _draw(rng, size)
    p = make_linear_attention_inputs(rng, **sz)
    pw, off = float(rng.choice([0.0, 0.5, 1.0])), int(rng.integers(0, 5))
    ref = cottention(p["q"], p["k"], p["v"], p=pw, position_offset=off, backend="ref")
    if raw_keys:  # WRONG on purpose: queries normalized, keys not
        qh = _feature(p["q"], "cosine")
        n_t = (off + 1.0 + np.arange(sz["length"]))[None, :, None, None]
        out = linear_attention_parallel(qh, p["k"], p["v"]) * n_t**-pw
    else:
        out = cottention_parallel(p["q"], p["k"], p["v"], p=pw, position_offset=off)
    sizes = {**sz, "p": pw, "position_offset": off}
    v1 = identity_verdict(out, ref, dtype=np.float64, sizes=sizes, what="(Q̂K̂ᵀ ∘ L)V/n^p vs RNN")
    if raw_keys:
        return v1
    out_t = cottention(p["q"], p["k"], p["v"], p=pw, position_offset=off, chunk_size=int(rng.integers(1, 17)),
                       backend="torch")
    return _worst(v1, identity_verdict(out_t, ref, dtype=np.float64, backend="torch", sizes=sizes, what="chunked vs RNN"))


# ---- GateLoop --------------------------------------------------------------------------------
def _gl_verdict(rng, size, mask_from):
    sz = _draw(rng, size)
    p = make_gateloop_inputs(rng, scalar_gate=bool(rng.integers(2)), **sz)
    args = (p["q"], p["k"], p["v"], p["a"])
    ref, _ = gateloop_recurrent(*args)
    sizes = {**sz, "gate": "scalar" if p["a"].ndim == 3 else "per-dim"}
    v_att = identity_verdict(gateloop_attention(*args, mask_from=mask_from), ref, dtype=np.float64, sizes=sizes,
                             what="surrogate attention (QKᵀ∘M)V vs recurrence")
    if mask_from != 1:
        return v_att
    v_scan = identity_verdict(gateloop_scan(*args)[0], ref, dtype=np.float64, sizes=sizes,
                              what="associative scan vs recurrence")
    v_t = identity_verdict(gateloop(*args, chunk_size=int(rng.integers(1, 17)), backend="torch"), ref, dtype=np.float64,
                           backend="torch", sizes=sizes, what="torch chunked scan vs recurrence")
    return _worst(v_att, v_scan, v_t)


def gl_proof(L: int = 4) -> Proof:
    """Exact (scalar state, symbolic complex gates): unrolled recurrence = Σ_m q_n k_m Π_{j=m+1..n} a_j v_m."""
    import sympy as sp

    a, q, k, v = (sp.symbols(f"{c}0:{L}") for c in "aqkv")
    H, ok = 0, True
    for n in range(L):
        H = a[n] * H + k[n] * v[n]
        att = sum(q[n] * k[m] * sp.prod(a[m + 1:n + 1]) * v[m] for m in range(n + 1))
        ok = ok and sp.expand(q[n] * H - att) == 0
    return Proof(bool(ok), f"sympy: recurrence = surrogate attention for L={L}, symbolic gates", scope=f"L={L}; retyped formula")


# ---- AFT-simple --------------------------------------------------------------------------------
def _aft_verdict(rng, size, rescale):
    sz = _draw(rng, size, same_dim=True)
    if not rescale:
        sz["length"] = max(sz["length"], 4)  # the bug needs the running max to grow after step 0
    p = make_linear_attention_inputs(rng, **sz)
    # keys of scale 1, 10 or 40 (e^k overflows float64 past k ~ 709) with an upward drift, so
    # the running max grows often
    drift = np.linspace(0.0, 3.0, sz["length"])[None, :, None, None]
    k = (p["k"] * np.sqrt(sz["dk"]) + drift) * float(rng.choice([1.0, 10.0, 40.0]))
    q, v = p["q"], p["v"]
    ref, _ = aft_simple_recurrent(q, k, v, rescale_num=rescale)
    cf, _ = aft_simple_closed_form(q, k, v)
    sizes = {**sz, "max|k|": float(np.abs(k).max())}
    v1 = identity_verdict(cf, ref, dtype=np.float64, sizes=sizes,
                          what="log-cumsum-exp closed form vs running-max recurrence")
    if not rescale:
        return v1
    v2 = identity_verdict(aft_simple_attention(q, k, v), ref, dtype=np.float64, sizes=sizes,
                          what="attention form vs recurrence")
    v3 = identity_verdict(aft_simple(q, k, v, backend="torch"), ref, dtype=np.float64, backend="torch", sizes=sizes,
                          what="torch closed form vs recurrence")
    return _worst(v1, v2, v3)


# ---- HLA -----------------------------------------------------------------------------------------
def _hla_verdict(rng, size, masked):
    sz = _draw(rng, size)
    if not masked:
        sz["length"] = max(sz["length"], 2)  # at length 1 the correction G is 0
    p = make_linear_attention_inputs(rng, **sz)
    ref = hla2_materialized(p["q"], p["k"], p["v"])
    out, _ = hla2_recurrent(p["q"], p["k"], p["v"], masked=masked)
    v1 = identity_verdict(out, ref, dtype=np.float64, sizes=sz,
                          what="streaming (S^K, C^QV, G) vs (L∘QKᵀ)(L∘KQᵀ)V")
    if not masked:
        return v1
    T = int(rng.integers(1, 17))
    v2 = identity_verdict(hla2(p["q"], p["k"], p["v"], chunk_size=T, backend="torch"), out, dtype=np.float64,
                          backend="torch", sizes={**sz, "chunk": T}, what="chunk-parallel scan vs serial recurrence")
    return _worst(v1, v2)


def hla_proof(L: int = 3, dk: int = 2, dv: int = 1) -> Proof:
    """Exact: the streaming recurrence equals the materialized form, all entries symbolic."""
    import sympy as sp

    q, k, v = _symbolic_qkv(L, dk, dv)
    S, C, G = sp.zeros(dk, dk), sp.zeros(dk, dv), sp.zeros(dk, dv)
    ok = True
    for t in range(L):
        G = G + S * q[t] * v[t].T
        S, C = S + k[t] * k[t].T, C + q[t] * v[t].T
        stream = (S * C - G).T * q[t]
        mat = sum(((q[t].T * k[s])[0] * (k[s].T * q[u])[0] * v[u] for s in range(t + 1) for u in range(s + 1)),
                  sp.zeros(dv, 1))
        ok = ok and sp.expand(stream - mat) == sp.zeros(dv, 1)
    return Proof(bool(ok), f"sympy: streaming HLA = (L∘QKᵀ)(L∘KQᵀ)V for L={L}, dk={dk}, dv={dv}", scope=f"L={L}, dk={dk}, dv={dv}; retyped formula")


# ---- constant state vs growing KV cache --------------------------------------------------------
def state_bytes(form: str, n: int, *, heads: int = 4, dim: int = 16, seed: int = 0) -> int:
    """Bytes a decoder must keep after a context of ``n`` tokens (batch 1, float64)."""
    p = make_gateloop_inputs(np.random.default_rng(seed), length=n, heads=heads, dk=dim, dv=dim)
    q, k, v = p["q"], p["k"], p["v"]
    if form == "softmax KV cache":
        return int(k.nbytes + v.nbytes)  # every key and value is kept
    if form == "linear attention":
        return int(linear_attention(q, k, v, return_final_state=True, backend="ref")[1].nbytes)
    if form == "GateLoop":
        return int(gateloop(q, k, v, p["a"], return_final_state=True, backend="ref")[1].nbytes)
    if form == "AFT-simple":
        return int(aft_simple(q, k, v, return_final_state=True, backend="ref")[1].nbytes)
    if form == "HLA (2nd order)":
        return int(sum(x.nbytes for x in hla2(q, k, v, return_final_state=True, backend="ref")[1]))
    raise ValueError(f"unknown form {form!r}")


RECURRENT_FORMS = ("linear attention", "GateLoop", "AFT-simple", "HLA (2nd order)")


def _state_verdict(rng, size, control):
    ns = (8, 32, 128) if size == "quick" else (16, 64, 256, 1024)
    if control:  # WRONG on purpose: the KV cache held to the constant-state law
        return slope_verdict(ns, [state_bytes("softmax KV cache", n) for n in ns], expected=0.0, band=0.05,
                             what="KV cache bytes vs context")
    vs = [slope_verdict(ns, [state_bytes(f, n) for n in ns], expected=0.0, band=0.05, what=f"{f} state bytes vs context")
          for f in RECURRENT_FORMS]
    vs.append(slope_verdict(ns, [state_bytes("softmax KV cache", n) for n in ns], expected=1.0, band=0.05,
                            what="KV cache bytes vs context"))
    return max(vs, key=lambda v: v.error)


# ---- registration --------------------------------------------------------------------------------
def _reg(id_, paper, statement, fn, controls, module, proof=None, experiment="ssm_recurrent_forms", kind="identity"):
    register(Claim(id=id_, paper=paper, statement=statement, kind=kind,
                   check=lambda rng, size="quick": fn(rng, size, False),
                   negative_control=lambda rng, size="quick": fn(rng, size, True), proof=proof, experiment=experiment,
                   module=module, test=TEST, samples=3, controls=controls))


_reg("ssm.linear-attention-is-rnn", KATHAROPOULOS,
     "Causal linear attention (φ(Q)φ(K)ᵀ ∘ L)V, optionally normalized by its row sums, equals the RNN "
     "S_t = S_{t-1} + φ(k_t)v_tᵀ, z_t = z_{t-1} + φ(k_t), y_t = φ(q_t)ᵀS_t (/ φ(q_t)ᵀz_t), and its chunked form.",
     _la_verdict, "causal mask without its diagonal (s < t)", "theorylab/ssm/linear_forms.py", proof=la_proof)
_reg("ssm.cottention-is-rnn", COTTENTION,
     "Causal cosine attention (Q̂K̂ᵀ ∘ L)V / n_t^p with unit-length rows Q̂, K̂ equals an RNN with a dk x dv state "
     "S_t = S_{t-1} + k̂_t v_tᵀ, y_t = q̂_tᵀ S_t / n_t^p.",
     lambda rng, size, wrong: _cot_verdict(rng, size, wrong), "keys not normalized (only queries)",
     "theorylab/ssm/linear_forms.py")
_reg("ssm.gateloop-three-forms", GATELOOP,
     "With data-controlled complex gates |a_t| <= 1, the GateLoop recurrence H_t = diag(a_t)H_{t-1} + k_t v_tᵀ, "
     "y_t = q_tᵀH_t equals its associative scan and the surrogate attention (QKᵀ ∘ M)V, M[n,m] = Π_{j=m+1..n} a_j.",
     lambda rng, size, wrong: _gl_verdict(rng, size, 0 if wrong else 1), "surrogate mask Π_{j=m..n} a_j (includes a_m)",
     "theorylab/ssm/gated_linear.py", proof=gl_proof)
_reg("ssm.aft-simple-recurrent", AFT,
     "AFT-simple σ(Q) ∘ cumsum(e^K ∘ V)/cumsum(e^K), computed stably in log space, equals its running-max recurrence "
     "and the causal per-feature softmax-over-positions attention form, also for keys where e^K overflows.",
     lambda rng, size, wrong: _aft_verdict(rng, size, not wrong), "numerator not rescaled when the running max grows",
     "theorylab/ssm/gated_linear.py")
_reg("ssm.hla-second-order-streaming", HLA,
     "Second-order causal HLA: the streaming statistics S^K = Σkkᵀ, C^QV = Σqvᵀ and G_t = Σ_{u<=t} S^K_{u-1}q_u v_uᵀ give "
     "y_t = q_tᵀ(S^K_t C^QV_t - G_t) = ((L∘QKᵀ)(L∘KQᵀ)V)_t, and the chunk-parallel scan reproduces the serial recurrence.",
     lambda rng, size, wrong: _hla_verdict(rng, size, not wrong), "masked correction G dropped (unmasked S^K C^QV)",
     "theorylab/ssm/hla.py", proof=hla_proof)
_reg("ssm.recurrent-state-is-constant", KATHAROPOULOS,
     "The decoding state of linear attention, GateLoop, AFT-simple and second-order HLA has a size independent of the "
     "context length n (log-log slope 0 +- 0.05), while a softmax KV cache grows linearly (slope 1 +- 0.05).",
     _state_verdict, "the KV cache held to the constant-state law", "theorylab/ssm/linear_forms.py",
     kind="complexity")
