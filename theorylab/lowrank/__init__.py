"""Low-rank limits of attention (#12, #36, #98, #65, #59, #110, #41).

Public API (each module's docstring states the claim it encodes):

* bounded entries (:mod:`theorylab.lowrank.bounded_entries`, #98 / #36 / #65):
  :func:`polynomial_features` (the degree-g Taylor features, C(d+g, g) of them),
  :func:`feature_count`, :func:`eps_rank` (batched), :func:`eps_rank_bound`,
  :func:`taylor_kernel`, :func:`taylor_remainder_bound`.
* Linformer (:mod:`theorylab.lowrank.linformer`, #59): :func:`linformer_attention`,
  :func:`softmax_attention`, :func:`sampling_projection`, :func:`topk_energy`.
* LoRA (:mod:`theorylab.lowrank.lora`, #36 / #110 / #41): :func:`lora_linear`,
  :func:`lora_gradients` (the factored gradients), :func:`lora_factors`, :func:`nola_factors`,
  :func:`lora_parameter_count`, :func:`nola_parameter_count`; modules ``LoRALinear`` and
  ``NOLALinear`` in :mod:`theorylab.lowrank._lora_torch`.
* rank vs heads (:mod:`theorylab.lowrank.heads`, #12): :func:`nearest_point_target`,
  :func:`attention_heads`, :func:`multihead_lowrank` (the rank-r multi-head layer),
  :func:`fit_output_weights` (batched least squares: normal equations with a conditioning check
  and SVD fallback, :func:`lstsq_batched`), :func:`full_rank_head`; measured scaling
  (:mod:`theorylab.lowrank.heads_scaling`): :func:`random_heads`, :func:`held_out_errors`,
  :func:`heads_needed` (H*(ε)), :func:`exponential_rate`, :func:`trained_heads_error`.
* LoRA in the NTK regime (:mod:`theorylab.lowrank.lora_ntk`, #110): :func:`ntk_jacobians`,
  :func:`ntk_residuals`, :func:`fit_lora_ntk`, :func:`lora_rank_threshold` (r(r+1)/2 > KN),
  :func:`dimension_count_rank`.

One anatomy per family: ``<family>.py`` (statement, inputs, reference, public functions),
``_<family>_torch.py`` (the torch path), ``<family>_claims.py`` (checks, controls, proofs).
Every public function takes ``backend=`` in ``"ref"`` (float64 numpy), ``"torch"`` or ``"auto"``.
"""

from .bounded_entries import (
    eps_rank,
    eps_rank_bound,
    feature_count,
    polynomial_features,
    taylor_kernel,
    taylor_remainder_bound,
)
from . import bounded_entries_claims as _bounded_entries_claims  # noqa: F401  (registers its claims)
from .linformer import linformer_attention, sampling_projection, softmax_attention, topk_energy
from . import linformer_claims as _linformer_claims  # noqa: F401  (registers its claims)
from .lora import lora_factors, lora_gradients, lora_linear, lora_parameter_count, nola_factors, nola_parameter_count
from . import lora_claims as _lora_claims  # noqa: F401  (registers its claims)
from .heads import attention_heads, fit_output_weights, full_rank_head, lstsq_batched, multihead_lowrank, nearest_point_target
from .heads_scaling import exponential_rate, heads_needed, held_out_errors, random_heads, trained_heads_error
from . import heads_claims as _heads_claims  # noqa: F401  (registers its claims)
from .lora_ntk import dimension_count_rank, fit_lora_ntk, lora_rank_threshold, ntk_jacobians, ntk_residuals
from . import lora_ntk_claims as _lora_ntk_claims  # noqa: F401  (registers its claim)

__all__ = [
    "polynomial_features",
    "feature_count",
    "eps_rank",
    "eps_rank_bound",
    "taylor_kernel",
    "taylor_remainder_bound",
    "linformer_attention",
    "softmax_attention",
    "sampling_projection",
    "topk_energy",
    "lora_linear",
    "lora_gradients",
    "lora_factors",
    "lora_parameter_count",
    "nola_factors",
    "nola_parameter_count",
    "nearest_point_target",
    "attention_heads",
    "multihead_lowrank",
    "fit_output_weights",
    "full_rank_head",
    "lstsq_batched",
    "random_heads",
    "held_out_errors",
    "heads_needed",
    "exponential_rate",
    "trained_heads_error",
    "ntk_jacobians",
    "ntk_residuals",
    "lora_rank_threshold",
    "dimension_count_rank",
    "fit_lora_ntk",
]
