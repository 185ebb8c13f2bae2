"""torch path of :mod:`theorylab.icl.constructions` (CPU/CUDA, differentiable, in the input dtype).

:func:`lsa_forward_torch` must match ``layers`` applications of ``lsa_layer_ref``.
"""

from __future__ import annotations


def lsa_forward_torch(Z, WQ, WK, WV, n_context: int, layers: int):
    """Z (..., N, e) after ``layers`` linear self-attention layers; keys/values are the first n_context rows."""
    for _ in range(layers):
        ctx = Z[..., :n_context, :]  # (..., n, e)
        scores = (Z @ WQ.T) @ (ctx @ WK.T).transpose(-1, -2)  # (..., N, n)
        Z = Z + (scores @ (ctx @ WV.T)) / n_context
    return Z
