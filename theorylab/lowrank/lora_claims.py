"""Claims of :mod:`theorylab.lowrank.lora`: checks, negative controls, registration.

* ``lowrank.lora-factored-gradients`` (identity) -- the public :func:`lora_gradients` on every
  backend, ((α/r)(G B)ᵀ X, (α/r) Gᵀ(X Aᵀ)), equals torch autograd of L = ⟨G, Y⟩ for the LoRA
  forward written out here with the full product (Y = X W0ᵀ + (α/r) X (BA)ᵀ), and the public
  :func:`lora_linear` on every backend equals that forward.  Sizes: leading axes of X,
  d_in, d_out, r from {1, 2, 3, 5, 7} (distinct, so a transposed factor cannot pass by shape)
  and sometimes d_in = d_out = r (so a transposed factor is caught by magnitude); α in
  {0.5, 1, 16}.  Float64 policy 1e-10.  Control: the gradients scaled by α instead of α/r
  (r >= 2; the scale LoRA's paper folds into the learning rate).
* ``lowrank.nola-parameter-count`` (complexity, exact count) -- the library's
  :func:`nola_parameter_count` = k + l equals the enumerated trainable parameters
  (``requires_grad``) of :class:`~theorylab.lowrank._lora_torch.NOLALinear` built at two
  different ranks and layer shapes (so the count is the same for both), and
  :func:`lora_parameter_count` = r(d_in + d_out) equals the enumeration of
  :class:`~theorylab.lowrank._lora_torch.LoRALinear`.  Control: a NOLA layer whose random bases
  are registered as trainable parameters (the bases not frozen): its count is k + l + r(k d_in
  + l d_out), which depends on rank and shape.
"""

from __future__ import annotations

import numpy as np

from ..checks import backends_verdict, call_backend, check_backends
from ..claims import Claim, Paper, Verdict, register
from ._common import BACKENDS
from .lora import lora_gradients, lora_linear, lora_parameter_count, make_inputs, nola_parameter_count

LORA_LIMITS = Paper("Computational Limits of Low-Rank Adaptation (LoRA) for Transformer-Based Models", 2024,
                    "2406.03136", index=36)
NOLA = Paper("NOLA: Networks as Linear Combination of Low Rank Random Basis", 2023, "2310.02556", index=41)
MODULE, TEST = "theorylab/lowrank/lora.py", "tests/lowrank/test_lora.py"
DIMS = (1, 2, 3, 5, 7)


def autograd_gradients(X, W0, A, B, G, alpha):
    """(∂L/∂A, ∂L/∂B) of L = ⟨G, X W0ᵀ + (α/r) X (BA)ᵀ⟩ by torch autograd (the full product BA formed here)."""
    import torch

    At, Bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (A, B))
    Xt, Wt, Gt = (torch.tensor(a, dtype=torch.float64) for a in (X, W0, G))
    Y = Xt @ Wt.T + (alpha / A.shape[0]) * Xt @ (Bt @ At).T
    (Gt * Y).sum().backward()
    return At.grad.numpy(), Bt.grad.numpy(), Y.detach().numpy()


def _draw(rng, control):
    if rng.random() < 0.3:  # square: d_in = d_out = r
        d = int(rng.choice(DIMS[1:] if control else DIMS))
        d_in = d_out = r = d
    else:
        d_in, d_out = (int(x) for x in rng.choice(DIMS, 2, replace=False))
        r = int(rng.choice([x for x in DIMS if x >= (2 if control else 1)]))
    lead = tuple(int(x) for x in rng.integers(1, 6, size=int(rng.integers(1, 3))))
    return {"lead": lead, "d_in": d_in, "d_out": d_out, "r": r, "alpha": float(rng.choice([0.5, 1.0, 16.0]))}


def _gradients(rng, size, control):
    sz = _draw(rng, control)
    p = make_inputs(rng, N=int(np.prod(sz["lead"])), d_in=sz["d_in"], d_out=sz["d_out"], r=sz["r"])
    X, G = p["X"].reshape(sz["lead"] + (sz["d_in"],)), p["G"].reshape(sz["lead"] + (sz["d_out"],))
    W0, A, B, alpha = p["W0"], p["A"], p["B"], sz["alpha"]
    gA, gB, Y = autograd_gradients(X, W0, A, B, G, alpha)
    ref = np.concatenate([gA.ravel(), gB.ravel()])
    if control:  # WRONG on purpose: scale α instead of α/r
        dA, dB = lora_gradients(X, A, B, G, alpha=alpha, backend="ref")
        bad = np.concatenate([dA.ravel(), dB.ravel()]) * sz["r"]
        return backends_verdict(ref, {"scale-alpha": bad}, dtype=np.float64, sizes=sz, what="gradients x r vs autograd")
    grads, fwd = {}, {}
    for b in check_backends(BACKENDS):
        dA, dB = call_backend(lora_gradients, b, X, A, B, G, alpha=alpha)
        grads[b] = np.concatenate([dA.ravel(), dB.ravel()])
        fwd[b] = call_backend(lora_linear, b, X, W0, A, B, alpha=alpha)
    return Verdict.combine({"gradients": backends_verdict(ref, grads, dtype=np.float64, sizes=sz,
                                                          what="factored (dA, dB) vs autograd"),
                            "forward": backends_verdict(Y, fwd, dtype=np.float64, sizes=sz,
                                                        what="lora_linear vs X W0ᵀ + (α/r) X (BA)ᵀ")}, sizes=sz)


def trainable(module) -> int:
    """Enumeration: the number of scalars in the module's parameters that require grad."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _nola_bases_trainable(module):
    """WRONG on purpose: the NOLA layer with its random bases registered as trainable parameters."""
    import torch

    for name in ("basis_a", "basis_b"):
        value = getattr(module, name)
        delattr(module, name)
        module.register_parameter(name, torch.nn.Parameter(value.clone()))
    return module


def _counts(rng, size, control):
    import torch

    from ._lora_torch import LoRALinear, NOLALinear

    k, l = (int(x) for x in rng.integers(1, 65, size=2))
    cfgs = []
    while len(cfgs) < 2:
        c = (int(rng.integers(1, 65)), int(rng.integers(1, 65)), int(rng.integers(1, 9)))
        if c not in cfgs:
            cfgs.append(c)
    gen = torch.Generator().manual_seed(int(rng.integers(2**31)))
    errs, notes = 0, []
    nola_enum = []
    for d_in, d_out, r in cfgs:
        m = NOLALinear(d_in, d_out, min(r, d_in, d_out), k, l, generator=gen)
        if control:
            m = _nola_bases_trainable(m)
        e = trainable(m)
        nola_enum.append(e)
        errs += abs(nola_parameter_count(k, l) - e)
        if not control:
            lr = min(r, d_in, d_out)
            le = trainable(LoRALinear(d_in, d_out, lr, generator=gen))
            errs += abs(lora_parameter_count(d_in, d_out, lr) - le)
            notes.append(f"LoRA r={lr} ({d_in}->{d_out}): {le}")
    errs += abs(nola_enum[0] - nola_enum[1])  # independent of rank and shape
    sz = {"k": k, "l": l, "configs": cfgs}
    return Verdict.from_error(errs, 0.0, backend="counter", sizes=sz,
                              detail=f"NOLA k + l = {k + l}, enumerated {nola_enum} at (d_in, d_out, r) = {cfgs}; "
                              + "; ".join(notes))


register(Claim(
    id="lowrank.lora-factored-gradients", paper=LORA_LIMITS, kind="identity",
    statement="LoRA's gradients factor through rank r: ∂L/∂A = (α/r)(G B)ᵀ X and ∂L/∂B = (α/r) Gᵀ(X Aᵀ) equal autograd "
    "of ⟨G, X W0ᵀ + (α/r) X (BA)ᵀ⟩ without forming BA.",
    check=lambda rng, size="quick": _gradients(rng, size, False),
    negative_control=lambda rng, size="quick": _gradients(rng, size, True),
    module=MODULE, test=TEST, samples=5, controls="gradients scaled by α instead of α/r (r >= 2)"))

register(Claim(
    id="lowrank.nola-parameter-count", paper=NOLA, kind="complexity",
    statement="NOLA trains k + l mixture coefficients whatever the rank and layer shape (LoRA trains r(d_in + d_out)): "
    "the library's counters equal the enumerated trainable parameters of built layers at two ranks and shapes.",
    check=lambda rng, size="quick": _counts(rng, size, False),
    negative_control=lambda rng, size="quick": _counts(rng, size, True),
    module=MODULE, test=TEST, samples=3, controls="the random bases registered as trainable parameters"))
