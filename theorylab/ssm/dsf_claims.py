"""Claim of :mod:`theorylab.ssm.dsf`: ``ssm.dsf-equal-matrices-equal-outputs``.

S6 with A = 0 and one step size shared by all channels (Δ_t[c] = δ_t) has the DSF matrix of
unnormalized causal linear attention with q_t = C_t, k_s = δ_s B_s, v = x.  Check, on one
random instance:

* ``dsf``: the two DSF matrices (:func:`dsf_matrix` of each mapping) are equal, Φ u = the
  DSF recurrence for each, and Φ u = the scan for S6 with a decay (so Φ's transitions Λ
  are exercised: with A = 0 they are all I);
* per backend b of the public :func:`~theorylab.ssm.selective_scan` and
  :func:`~theorylab.ssm.linear_attention` (``ref``, ``numba``, ``torch``, ``torch:cuda`` when
  present): both outputs equal Φ u.

Control: S6 with a nonzero decay A (Λ ≠ I), whose output must differ from linear attention's.
Tolerance: the float64 policy (1e-10); measured errors ~1e-15.
"""

from __future__ import annotations

import numpy as np

from ..checks import call_backend, check_backends, identity_verdict
from ..claims import Claim, Paper, Verdict, register
from .dsf import dsf_apply, dsf_matrix, dsf_recurrence, linear_attention_to_dsf, selective_ssm_to_dsf
from .linear_forms import linear_attention
from .selective import make_inputs, selective_scan

PAPER = Paper("Understanding the differences in Foundation Models: Attention, State Space Models, and Recurrent "
              "Neural Networks", 2024, "2405.15731", index=49)
_SIZES = {"quick": dict(batch=2, length=12, channels=4, state=3), "full": dict(batch=3, length=40, channels=6, state=5)}


def _pair(rng, size, decay: bool):
    sz = {k: int(rng.integers(1, v + 1)) for k, v in _SIZES[size].items()}
    if decay:  # at length 1 no Λ enters Φ: the control needs two steps to be able to differ
        sz["length"] = max(sz["length"], 2)
    p = make_inputs(rng, **sz)
    step = p["delta"][:, :, :1]  # (b, L, 1): one step size shared by all channels
    delta = np.repeat(step, sz["channels"], axis=2)
    # decay=False: A = 0, so Λ_t = I as in linear attention; decay=True is the negative control
    A = -rng.uniform(0.2, 1.0, p["A"].shape) if decay else np.zeros_like(p["A"])
    return sz, p, delta, A, step


def _la(backend, q, k, v):
    """The public linear attention with one head: (b, L, d) -> (b, L, 1, d) -> (b, L, d)."""
    return call_backend(linear_attention, backend, q[:, :, None], k[:, :, None], v[:, :, None])[:, :, 0]


def _verdict(rng, size, decay):
    sz, p, delta, A, step = _pair(rng, size, decay)
    q, k, v = p["C"], step * p["B"], p["x"]  # C -> Q, Δ B -> K, x -> V
    if decay:  # WRONG on purpose: Λ ≠ I, yet compared with linear attention
        return identity_verdict(_la("ref", q, k, v), call_backend(selective_scan, "ref", p["x"], delta, A, p["B"], p["C"]),
                                dtype=np.float64, sizes=sz, what="linear attention vs S6 with decay")
    dsf_ssm = selective_ssm_to_dsf(p["x"], delta, A, p["B"], p["C"])
    dsf_la = linear_attention_to_dsf(q, k, v)
    Phi_ssm, Phi_la = dsf_matrix(*dsf_ssm[:3]), dsf_matrix(*dsf_la[:3])
    y = dsf_apply(Phi_ssm, p["x"])  # (b, L, channels)
    # the DSF matrix of S6 with a decay (Λ ≠ I) applied to x must still be the scan: Φ's transitions are exercised
    A_dec = -rng.uniform(0.2, 1.0, A.shape)
    y_dec = call_backend(selective_scan, "ref", p["x"], delta, A_dec, p["B"], p["C"])
    Phi_dec = dsf_matrix(*selective_ssm_to_dsf(p["x"], delta, A_dec, p["B"], p["C"])[:3])
    parts = {"dsf": max([identity_verdict(Phi_la, Phi_ssm, dtype=np.float64, backend="dsf", sizes=sz, what="DSF matrices"),
                         identity_verdict(dsf_apply(Phi_dec, p["x"]), y_dec, dtype=np.float64, backend="dsf", sizes=sz,
                                          what="Φu of S6 with decay vs the scan"),
                         identity_verdict(dsf_recurrence(*dsf_ssm), y, dtype=np.float64, backend="dsf", sizes=sz,
                                          what="S6 DSF recurrence vs Φu"),
                         identity_verdict(dsf_recurrence(*dsf_la), dsf_apply(Phi_la, v), dtype=np.float64, backend="dsf",
                                          sizes=sz, what="linear attention DSF recurrence vs Φu")], key=lambda x: x.margin)}
    for b in check_backends(("ref", "numba", "torch")):
        parts[b] = max([identity_verdict(call_backend(selective_scan, b, p["x"], delta, A, p["B"], p["C"]), y,
                                         dtype=np.float64, backend=b, sizes=sz, what=f"selective_scan[{b}] vs Φu"),
                        identity_verdict(_la(b, q, k, v), y, dtype=np.float64, backend=b, sizes=sz,
                                         what=f"linear_attention[{b}] vs Φu")], key=lambda x: x.margin)
    return Verdict.combine(parts, sizes=sz)


def check(rng: np.random.Generator, size: str = "quick"):
    return _verdict(rng, size, decay=False)


def negative_control(rng: np.random.Generator, size: str = "quick"):
    return _verdict(rng, size, decay=True)


CLAIM = register(Claim(
    id="ssm.dsf-equal-matrices-equal-outputs", paper=PAPER, kind="identity",
    statement="In the DSF h_t = Lambda_t h_{t-1} + B_t u_t, y_t = C_t h_t, linear attention (Lambda = I) and "
    "the selective SSM (diagonal input-dependent Lambda) have DSF matrices Phi[t,s] = C_t Lambda_t..Lambda_{s+1} "
    "B_s; S6 with A = 0 and a channel-shared step has the same Phi as linear attention with Q = C, K = delta B, "
    "V = x, and the outputs coincide.",
    check=check, negative_control=negative_control, experiment=None, module="theorylab/ssm/dsf.py",
    test="tests/ssm/test_dsf.py",
    controls="S6 with a nonzero decay A (Lambda != I): the DSF matrices and the outputs must differ"))
