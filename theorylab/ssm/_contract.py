"""The array contract shared by the public ssm functions (private helpers).

* **Torch inputs**: user arrays become tensors through :func:`theorylab.backends.to_torch`
  (numpy of any strides, negative ones included); ``None`` passes through.
* **Half precision**: float16/bfloat16 tensors are computed in float32 on every torch path
  (:func:`upcast`): accumulating a scan, a cumulative sum or a chunk's matrix product in
  an 8-bit mantissa loses the answer at long lengths (bfloat16 selective scan at L = 4,096:
  1.9e-1 relative error, against ~4e-3 -- the output's own rounding -- when the state is
  float32).  The result is returned in the input dtype.
* **Real parameters** (:func:`check_real`): Python and numpy real scalars and 0-d numpy
  arrays are accepted; NaN, inf, bool, str and the like are a ``TypeError``/``ValueError``
  naming the parameter.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _validate as V
from ..backends import is_tensor, like_input, to_torch

HALF = ("float16", "bfloat16")


def torch_args(*xs, device=None):
    """Each of ``xs`` (numpy array, tensor or None) as a tensor; numpy of any strides."""
    return [None if x is None else to_torch(x, device=device) for x in xs]


def upcast(*xs):
    """Half-precision real tensors -> float32 (differentiable casts); others and None unchanged."""
    import torch

    half = (torch.float16, torch.bfloat16)
    return [x.float() if x is not None and x.dtype in half else x for x in xs]


def check_real(name: str, value, *, lo=None) -> float:
    """A finite real number (Python or numpy scalar, or a 0-d numpy array), optionally >= ``lo``."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number; got {value!r} ({type(value).__name__})")
    out = float(value)
    if not np.isfinite(out):
        raise ValueError(f"{name} must be finite; got {out}")
    if lo is not None and out < lo:
        raise ValueError(f"{name} must be >= {lo}; got {out}")
    return out


def finish(result, template, what: str = "output"):
    """``result`` in ``template``'s container: a tensor on its device and dtype, or numpy of its dtype.

    A half-precision result computed in float32 whose finite values do not fit the half dtype
    (float16 overflows past 65,504) is a ``ValueError``, never a silent inf."""
    out = like_input(result, template)
    if isinstance(out, np.ndarray):
        return out.astype(template.dtype, copy=False)
    if V.dtype_name(out) in HALF and not bool(out.detach().isfinite().all()):
        src = result.detach().abs().max() if is_tensor(result) else np.abs(result).max()
        if np.isfinite(float(src)):
            raise ValueError(f"the {what} overflows {V.dtype_name(out)} (max |{what}| = {float(src):.4g}); "
                             "pass float32 or bfloat16 inputs")
    return out
