"""Input validation shared by every public function.

Each failure raises ``TypeError`` (wrong container or dtype) or ``ValueError``
(wrong shape, empty, non-finite, out of domain) whose message names the argument
and shows the shapes involved.
"""

from __future__ import annotations

import numpy as np

from .backends import is_tensor, warm_torch_cpu_math

FLOAT_NUMPY = ("float32", "float64")
FLOAT_TORCH = ("float16", "bfloat16", "float32", "float64")


def dtype_name(a) -> str:
    return str(a.dtype).replace("torch.", "")


def check_arrays(named: dict, *, allow_none=()) -> str:
    """Check that every value is an array of one container kind and one floating dtype.

    ``named`` maps argument names to values.  Returns ``"torch"`` or ``"numpy"``.
    """
    present = {k: v for k, v in named.items() if not (v is None and k in allow_none)}
    kinds = {}
    for k, v in present.items():
        if is_tensor(v):
            kinds[k] = "torch"
        elif isinstance(v, np.ndarray):
            kinds[k] = "numpy"
        else:
            raise TypeError(f"{k} must be a numpy.ndarray or torch.Tensor; got {type(v).__name__}")
    if len(set(kinds.values())) > 1:
        raise TypeError(f"inputs mix numpy arrays and torch tensors: {kinds}; pass one kind")
    kind = next(iter(kinds.values()))
    valid = FLOAT_TORCH if kind == "torch" else FLOAT_NUMPY
    dtypes = {k: dtype_name(v) for k, v in present.items()}
    for k, d in dtypes.items():
        if d not in valid:
            raise TypeError(f"{k} must have a floating dtype in {valid}; got {d} (shape {tuple(present[k].shape)})")
    if len(set(dtypes.values())) > 1:
        raise TypeError(f"inputs must share one dtype; got {dtypes}")
    if kind == "torch":
        devices = {k: str(v.device) for k, v in present.items()}
        if len(set(devices.values())) > 1:
            raise ValueError(f"inputs must be on one device; got {devices}")
        meta = [k for k, v in present.items() if v.device.type == "meta"]
        if meta:
            raise ValueError(f"{meta[0]} is on the 'meta' device (shape {tuple(present[meta[0]].shape)}): it has no "
                             "values to compute with; move the inputs to 'cpu' or 'cuda'")
        warm_torch_cpu_math()  # before any torch math: see its docstring
    return kind


def check_size(name: str, value, *, lo: int = 1) -> int:
    """An integer size (Python or numpy integer, not bool, not a float such as 2.7) >= ``lo``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__})")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}; got {value}")
    return int(value)


def check_shape(name: str, a, expected: tuple, shapes: dict) -> None:
    """``expected`` holds ints; ``shapes`` is shown in the message for context."""
    got = tuple(a.shape)
    if got != tuple(expected):
        ctx = ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())
        raise ValueError(f"{name} must have shape {tuple(expected)}; got {got} (inputs: {ctx})")


def check_ndim(name: str, a, ndim: int, meaning: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-d {meaning}; got shape {tuple(a.shape)}")


def check_nonempty(name: str, a, meaning: str) -> None:
    if any(int(s) == 0 for s in a.shape):
        raise ValueError(f"{name} has a zero-size dimension: shape {tuple(a.shape)} {meaning}")


def check_finite(name: str, a) -> None:
    """No NaN or inf in ``a``.  One reduction first: a NaN or inf makes the sum non-finite, so
    only when the sum is not finite (a bad entry, or finite entries overflowing the sum) is
    every entry tested -- large inputs pay one pass, not a boolean temporary."""
    with np.errstate(over="ignore", invalid="ignore"):
        if bool(a.detach().sum().isfinite()) if is_tensor(a) else bool(np.isfinite(np.sum(a))):  # real or complex
            return
    ok = bool(a.detach().isfinite().all()) if is_tensor(a) else bool(np.isfinite(a).all())
    if not ok:
        raise ValueError(f"{name} contains NaN or inf (shape {tuple(a.shape)})")


def check_bound(name: str, a, *, lo=None, hi=None, why: str = "") -> None:
    """Every entry in ``[lo, hi]``; the message gives the offending extreme value."""
    a = a.detach() if is_tensor(a) else a
    if lo is not None:
        m = float(a.min())
        if m < lo:
            raise ValueError(f"{name} must be >= {lo}{' (' + why + ')' if why else ''}; min is {m} (shape {tuple(a.shape)})")
    if hi is not None:
        m = float(a.max())
        if m > hi:
            raise ValueError(f"{name} must be <= {hi}{' (' + why + ')' if why else ''}; max is {m} (shape {tuple(a.shape)})")
