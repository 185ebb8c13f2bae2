"""Claim of :mod:`theorylab.ssm.implicit_attention`: ``ssm.implicit-attention-layers``.

Check: for Mamba, Griffin and RWKV-4 layers, full and with the conv or the gate ablated,
the layer's own forward pass equals Σ_c W_out[c] Ĥ_c(x) v_c.  The Mamba layer runs the
public :func:`~theorylab.ssm.selective_scan` (forward) and
:func:`~theorylab.ssm.selective_attention_matrix` (Ĥ) on every backend (``ref``, ``numba``,
``torch``, ``torch:cuda`` when present): backend b's Ĥ is checked against the float64
forward, and backend b's forward against the float64 Ĥ.  Griffin and RWKV are numpy only
(part ``ref``).  Inputs are drawn at scales 1 and 30, and RWKV's key projection at 1 and 30
times that (keys up to ~1e3: a softmax or WKV recurrence without its max shift overflows);
Mamba's steps then reach Δ ~ 1e2 (decays e^{ΔA} that underflow).

Control: the output gate applied on the key side (Ĥ diag(g)) instead of the query side.
Tolerance: the float64 policy (1e-10); measured errors ~1e-15.
"""

from __future__ import annotations

import numpy as np

from ..checks import check_backends, identity_verdict
from ..claims import Claim, Paper, Verdict, register
from .implicit_attention import LAYERS, apply_implicit_attention, forward, gate_values, implicit_attention, init_params

PAPER = Paper("A Unified Implicit Attention Formulation for Gated-Linear Recurrent Sequence Models", 2024, "2405.16504",
              index=6)
_SIZES = {"quick": dict(batch=2, length=24, d_model=5, d_inner=7, state=4),
          "full": dict(batch=3, length=96, d_model=8, d_inner=12, state=8)}
SCALES = (1.0, 30.0)


def _instances(rng, size, min_length=1):
    top = _SIZES[size]
    sz = {k: int(rng.integers(1, v + 1)) for k, v in top.items()}
    sz["length"] = max(sz["length"], min_length)  # at length 1, diag(g) Ĥ = Ĥ diag(g): the control needs 2
    for layer in LAYERS:
        for conv, gate in ((True, True), (False, True), (True, False)):
            p = init_params(layer, rng, d_model=sz["d_model"], d_inner=sz["d_inner"], state=sz["state"],
                            conv_width=int(rng.integers(1, 5)))
            scale = float(rng.choice(SCALES))
            if layer == "rwkv":
                p["W_k"] = p["W_k"] * scale
            x = rng.standard_normal((sz["batch"], sz["length"], sz["d_model"])) * scale
            yield {**sz, "scale": scale}, layer, conv, gate, p, x


def _verdict(rng, size, gate_on_keys: bool):
    backends = check_backends(("ref", "numba", "torch"))
    parts: dict[str, list] = {}
    for sz, layer, conv, gate, p, x in _instances(rng, size, 2 if gate_on_keys else 1):
        what = f"{layer} conv={conv} gate={gate} scale={sz['scale']:g}"
        ref = forward(layer, x, p, conv=conv, gate=gate)
        H, v = implicit_attention(layer, x, p, conv=conv, gate=gate and not gate_on_keys)
        if gate and gate_on_keys:  # WRONG on purpose: diag(g) on the key side, Ĥ diag(g)
            H = H * gate_values(layer, x, p).transpose(0, 2, 1)[:, :, None, :]
        out = apply_implicit_attention(H, v, p)
        parts.setdefault("ref", []).append(identity_verdict(out, ref, dtype=np.float64, sizes=sz, what=what))
        if layer != "mamba" or gate_on_keys:
            continue
        for b in backends[1:]:
            Hb, vb = implicit_attention(layer, x, p, conv=conv, gate=gate, backend=b)
            parts.setdefault(b, []).extend([
                identity_verdict(apply_implicit_attention(Hb, vb, p), ref, dtype=np.float64, backend=b, sizes=sz,
                                 what=f"{what}: Ĥ[{b}] vs forward[ref]"),
                identity_verdict(forward(layer, x, p, conv=conv, gate=gate, backend=b), out, dtype=np.float64,
                                 backend=b, sizes=sz, what=f"{what}: forward[{b}] vs Ĥ[ref]")])
    worst = {b: max(vs, key=lambda v_: (not v_.holds, v_.margin if np.isfinite(v_.margin) else np.inf))
             for b, vs in parts.items()}
    return Verdict.combine(worst)


def check(rng: np.random.Generator, size: str = "quick"):
    return _verdict(rng, size, gate_on_keys=False)


def negative_control(rng: np.random.Generator, size: str = "quick"):
    return _verdict(rng, size, gate_on_keys=True)


CLAIM = register(Claim(
    id="ssm.implicit-attention-layers", paper=PAPER, kind="identity",
    statement="A whole Mamba block (in-proj, causal conv1d, SiLU, selective SSM, SiLU(z) gate, out-proj), "
    "a Griffin RG-LRU block and RWKV-4 time mixing each equal out = sum_c W_out[c] (H_c(x) v_c) with a "
    "lower-triangular data-dependent H (gates and SiLU as diagonal matrices, the conv as a Toeplitz "
    "matrix); also with the conv or the gate ablated.",
    check=check, negative_control=negative_control, experiment="ssm_implicit_attention",
    module="theorylab/ssm/implicit_attention.py", test="tests/ssm/test_implicit_attention.py",
    controls="output gate applied on the key side (H diag(g)) instead of the query side (diag(g) H)"))
