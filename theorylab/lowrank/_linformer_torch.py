"""Torch paths of :mod:`theorylab.lowrank.linformer` (CPU/CUDA, differentiable).

* :func:`softmax_attention_torch` must match ``softmax_attention_ref``;
* :func:`linformer_attention_torch` must match ``linformer_attention_ref``.
"""

from __future__ import annotations

import math


def softmax_attention_torch(Q, K, V):
    """softmax(Q Kᵀ / √d) V; torch.softmax shifts by the row max."""
    import torch

    P = torch.softmax(Q @ K.transpose(-1, -2) / math.sqrt(Q.shape[-1]), dim=-1)  # (..., m, n)
    return P @ V


def linformer_attention_torch(Q, K, V, E, F):
    """softmax(Q (E K)ᵀ / √d) (F V): the keys and values projected to k rows first."""
    return softmax_attention_torch(Q, E @ K, F @ V)  # (..., k, d), (..., k, dv)
