"""Shared pieces of the kernel authors' kit: argument checks, the compute dtype rule, a
seeded tensor builder for the strategies."""

from __future__ import annotations

import numpy as np

HALF = ("float16", "bfloat16")


def dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def check_tensor(name: str, t, shape: tuple | None = None, *, optional=False, layout: str = ""):
    """``t`` must be a real floating-point torch tensor of ``shape`` (None entries: any size >= 1)."""
    import torch

    if t is None:
        if optional:
            return
        raise TypeError(f"{name} is required (a torch tensor{', ' + layout if layout else ''})")
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor{' ' + layout if layout else ''}; got {type(t).__name__}")
    if t.is_complex():
        raise TypeError(f"{name} must be real: complex {name} is outside what theorylab's reference covers")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be floating point; got {t.dtype}")
    if shape is not None:
        ok = t.ndim == len(shape) and all(s is None or int(a) == s for a, s in zip(t.shape, shape))
        if not ok:
            want = tuple("*" if s is None else s for s in shape)
            raise ValueError(f"{name} must have shape {want}{' ' + layout if layout else ''}; got {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t.detach()).all()):
        raise ValueError(f"{name} contains NaN or inf (shape {tuple(t.shape)})")


def check_flag(name: str, v) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool; got {type(v).__name__}")
    return bool(v)


def compute_dtype(*tensors):
    """float64 when any given tensor is float64, else float32 (half inputs compute in float32)."""
    import torch

    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def scalar_scale(scale, dk: int) -> float:
    """``scale`` (default dk**-0.5) as a finite float."""
    if scale is None:
        return dk ** -0.5
    if isinstance(scale, bool) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"scale must be a real number or None; got {type(scale).__name__}")
    if not np.isfinite(float(scale)):
        raise ValueError(f"scale must be finite; got {scale}")
    return float(scale)


def tensor(a: np.ndarray, dtype: str):
    """numpy float64 -> torch tensor of ``dtype`` (by name)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).to(getattr(torch, dtype))
