"""Argument checks of the S4 functions (:mod:`theorylab.ssm.s4`): containers, dtypes, devices,
shapes, finiteness and the step-size domain, each failure a ValueError/TypeError naming the argument."""

from __future__ import annotations

import numpy as np

from .. import _validate as V_
from ..backends import is_tensor

_NO_C = object()  # C of a discretization, which has none


def _check_ssm(A, B, C, dt):
    """A (N, N), B and C (channels, N), dt (channels,); one container, dtype and device; finite; dt > 0.
    ``C=_NO_C`` skips C (discretization only).  Returns the container kind."""
    named = {"A": A, "B": B, "C": C, "dt": dt}
    if C is _NO_C:
        named.pop("C")
    kind = V_.check_arrays(named)
    V_.check_ndim("A", A, 2, "(N, N)")
    V_.check_ndim("B", B, 2, "(channels, N)")
    h, n = (int(s) for s in B.shape)
    shapes = {k: v.shape for k, v in named.items()}
    V_.check_shape("A", A, (n, n), shapes)
    if C is not _NO_C:
        V_.check_shape("C", C, (h, n), shapes)
    V_.check_shape("dt", dt, (h,), shapes)
    for k, v in named.items():
        V_.check_nonempty(k, v, "(N and channels must be >= 1)")
        V_.check_finite(k, v)
    V_.check_bound("dt", dt, lo=np.finfo(np.float64).tiny, why="a step size")
    return kind


_DPLR_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128")


def _check_dplr(Lam, P, B, C, dt, c_tilde=None) -> str:
    """Lam, P (N,), B, C (channels, N) real or complex; dt (channels,) real; c_tilde like C or None.
    One container kind and device; finite; dt > 0.  Returns the container kind."""
    named = {"Lam": Lam, "P": P, "B": B, "C": C, "dt": dt}
    if c_tilde is not None:
        named["c_tilde"] = c_tilde
    kind = V_.check_arrays({"dt": dt})  # real float, not on 'meta'
    for k, v in named.items():
        if not (is_tensor(v) or isinstance(v, np.ndarray)):
            raise TypeError(f"{k} must be a numpy.ndarray or torch.Tensor; got {type(v).__name__}")
        if is_tensor(v) != (kind == "torch"):
            raise TypeError(f"inputs mix numpy arrays and torch tensors: {k} is a {type(v).__name__}, dt a "
                            f"{type(dt).__name__}; pass one kind")
        if V_.dtype_name(v) not in _DPLR_DTYPES[(0 if kind == "torch" else 2):]:
            raise TypeError(f"{k} must be real or complex floating; got {V_.dtype_name(v)}")
        if kind == "torch" and v.device != dt.device:
            raise ValueError(f"inputs must be on one device; {k} is on {v.device}, dt on {dt.device}")
    V_.check_ndim("Lam", Lam, 1, "(N,)")
    V_.check_ndim("B", B, 2, "(channels, N)")
    h, n = (int(s) for s in B.shape)
    shapes = {k: v.shape for k, v in named.items()}
    V_.check_shape("Lam", Lam, (n,), shapes)
    V_.check_shape("P", P, (n,), shapes)
    V_.check_shape("C", C, (h, n), shapes)
    V_.check_shape("dt", dt, (h,), shapes)
    if c_tilde is not None:
        V_.check_shape("c_tilde", c_tilde, (h, n), shapes)
    for k, v in named.items():
        V_.check_nonempty(k, v, "(N and channels must be >= 1)")
        V_.check_finite(k, v)
    V_.check_bound("dt", dt, lo=np.finfo(np.float64).tiny, why="a step size")
    return kind


def _check_u(u, channels=None):
    kind = V_.check_arrays({"u": u})
    V_.check_ndim("u", u, 3, "(batch, length, channels)")
    V_.check_nonempty("u", u, "(every size must be >= 1)")
    V_.check_finite("u", u)
    if channels is not None and int(u.shape[2]) != channels:
        raise ValueError(f"u must have {channels} channels (last axis); got shape {tuple(u.shape)}")
    return kind
