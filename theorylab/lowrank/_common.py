"""Validation and container helpers shared by the low-rank families.

Every public function of :mod:`theorylab.lowrank` checks its array arguments here: one
container kind (numpy or torch), one floating dtype, the expected number of axes, no
zero-size axis, finite values.  Failures are ``TypeError``/``ValueError`` naming the
argument and its shape.
"""

from __future__ import annotations

import numpy as np

from .. import _validate as V
from ..backends import is_tensor

BACKENDS = ("ref", "torch")  # every low-rank public function: float64 numpy reference, torch (CPU/CUDA)


def check_inputs(named: dict, ndims: dict, *, finite: bool = True) -> str:
    """``named``: name -> array; ``ndims``: name -> (min_ndim, meaning).  Returns the container kind.
    ``finite=False`` leaves the NaN/inf test to the caller (a kernel that reads every entry anyway)."""
    kind = V.check_arrays(named)
    for name, a in named.items():
        lo, meaning = ndims[name]
        if a.ndim < lo:
            raise ValueError(f"{name} must have at least {lo} axes {meaning}; got shape {tuple(a.shape)}")
        V.check_nonempty(name, a, meaning)
        if finite:
            V.check_finite(name, a)
    return kind


def mismatch(name: str, a, expected, shapes: dict) -> ValueError:
    ctx = ", ".join(f"{k} {tuple(v.shape)}" for k, v in shapes.items())
    return ValueError(f"{name} has shape {tuple(a.shape)}; expected {expected} (inputs: {ctx})")


def check_positive_real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0; got {value}")
    return value


def to_torch_like(x, template):
    """``x`` as a tensor with ``template``'s device and dtype (numpy input: from_numpy)."""
    import torch

    t = x if is_tensor(x) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=template.device if is_tensor(template) else "cpu",
                dtype=template.dtype if is_tensor(template) else t.dtype)
