"""The affine-step combine and its parallel prefix scan (numpy and torch alike).

A step of a diagonal linear recurrence is the affine map h -> a ⊙ h + b.  Two steps,
first (a, b) then (a', b'), compose to one,

    (a, b) ∘ (a', b') = (a' a, a' b + b'),

and this composition is associative, so every prefix of a sequence of steps can be
formed by a parallel (Hillis-Steele) scan in log2(T) rounds of elementwise products.
Used by the selective scan's torch path (:mod:`theorylab.ssm._selective_torch`) and by
GateLoop (:mod:`theorylab.ssm.gated_linear`).  This module imports nothing from the
families that use it.
"""

from __future__ import annotations

__all__ = ["scan_combine", "_prefix_scan"]


def scan_combine(first, second):
    """Compose two affine steps h -> a ⊙ h + b: first ``(a, b)``, then ``(a2, b2)``.

    ``(a, b) ∘ (a2, b2) = (a2 a, a2 b + b2)``.  Works on numpy arrays and tensors alike.
    """
    a, b = first
    a2, b2 = second
    return a2 * a, a2 * b + b2


def _prefix_scan(a, b, dim: int = 1):
    """Inclusive Hillis-Steele scan of torch affine steps along ``dim`` (no in-place ops).

    Returns ``(A, B)`` with ``(A_t, B_t) = (a_0, b_0) ∘ ... ∘ (a_t, b_t)``: the map from the
    state before step 0 to the state after step t, h_t = A_t ⊙ h_{-1} + B_t.
    """
    import torch

    T = a.shape[dim]
    shift = 1
    while shift < T:
        # step t combines with the prefix ending at t - shift: first (a, b)[t-shift], then (a, b)[t]
        head_a, tail_a = a.narrow(dim, 0, shift), a.narrow(dim, 0, T - shift)
        head_b, tail_b = b.narrow(dim, 0, shift), b.narrow(dim, 0, T - shift)
        new_a, new_b = scan_combine((tail_a, tail_b), (a.narrow(dim, shift, T - shift), b.narrow(dim, shift, T - shift)))
        a = torch.cat([head_a, new_a], dim=dim)
        b = torch.cat([head_b, new_b], dim=dim)
        shift *= 2
    return a, b
