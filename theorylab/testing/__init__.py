"""Hypothesis strategies and equivalence helpers for testing *your* kernels against theorylab.

Typical use (a pytest test in your project)::

    from theorylab.testing import assert_equivalent, selective_scan_inputs
    from theorylab.ssm import selective_scan

    def test_my_scan():
        assert_equivalent(
            my_scan,                                    # your kernel: same keyword arguments
            lambda **p: selective_scan(**p, backend="ref"),
            selective_scan_inputs(dtype="float32"),
            dtype="float32",
        )

The kernel authors' kit -- references with the peers' own signatures and layouts, built on
theorylab's functions and differentiable, so ``assert_equivalent`` checks the backward pass
too: :func:`selective_scan_ref` (Mamba, :mod:`.mamba`), :func:`mamba_chunk_scan_combined_ref`
(Mamba-2, :mod:`.mamba2`), :func:`chunk_simple_gla_ref` / :func:`chunk_gla_ref` /
:func:`chunk_retention_ref` / :func:`chunk_linear_attn_ref` (flash-linear-attention,
:mod:`.fla`), :func:`fixed_sparse_attention_ref` (per-head fixed sparse pattern,
:mod:`.sparse_heads`); each with a strategy of valid keyword arguments.

Strategies draw *sizes and a seed* (awkward on purpose: length 1, odd lengths, state 1,
distinct small dimensions 2/3/5/7 so a transposed axis cannot pass) and build arrays with
the module's ``make_inputs``; the reference sees the candidate's inputs rounded to its dtype
and upcast to float64, and the comparison uses the tolerance policy.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st


from .equivalence import assert_equivalent, check_example, describe_example, upcast
from .fla import FLA_KINDS, chunk_gla_ref, chunk_linear_attn_ref, chunk_retention_ref, chunk_simple_gla_ref, fla_inputs
from .mamba import mamba_selective_scan_inputs, selective_scan_ref
from .mamba2 import mamba2_inputs, mamba_chunk_scan_combined_ref
from .sparse_heads import fixed_sparse_attention_ref, sparse_heads_inputs

__all__ = ["awkward_sizes", "seeds", "selective_scan_inputs", "linear_attention_sizes", "segmented_run", "assert_equivalent",
           "check_example", "describe_example", "upcast", "CORRUPTIONS", "corrupt",
           # the kernel authors' kit: drop-in references with the peers' signatures, and their input strategies
           "selective_scan_ref", "mamba_selective_scan_inputs", "mamba_chunk_scan_combined_ref", "mamba2_inputs",
           "chunk_simple_gla_ref", "chunk_gla_ref", "chunk_retention_ref", "chunk_linear_attn_ref", "fla_inputs", "FLA_KINDS",
           "fixed_sparse_attention_ref", "sparse_heads_inputs"]

seeds = st.integers(0, 2**32 - 1)
SMALL = (1, 2, 3, 5, 7)


def awkward_sizes(max_length: int = 64, *, small=SMALL) -> st.SearchStrategy[int]:
    """Lengths that break chunked code: 1, primes, one off a power of two, and any up to the max."""
    picks = [n for n in (1, 2, 3, 7, 15, 17, 31, 33, 63, 65) if n <= max_length]
    return st.one_of(st.sampled_from(picks), st.integers(1, max_length))


def selective_scan_inputs(dtype="float64", max_length: int = 64, max_batch: int = 2) -> st.SearchStrategy[dict]:
    """Keyword arguments ``x, delta, A, B, C, D`` for ``theorylab.ssm.selective_scan``."""
    from ..ssm import make_inputs

    @st.composite
    def build(draw):
        sizes = dict(
            batch=draw(st.integers(1, max_batch)),
            length=draw(awkward_sizes(max_length)),
            channels=draw(st.sampled_from(SMALL)),
            state=draw(st.sampled_from(SMALL)),
        )
        return make_inputs(np.random.default_rng(draw(seeds)), **sizes, dtype=np.dtype(dtype))

    return build()


def linear_attention_sizes(max_length: int = 40, max_batch: int = 2, max_heads: int = 3) -> st.SearchStrategy[dict]:
    """Sizes ``batch, length, heads, dk, dv`` for the linear-attention family
    (``theorylab.ssm.linear_forms.make_linear_attention_inputs`` and its relatives)."""
    dims = st.sampled_from(SMALL)
    return st.fixed_dictionaries({"batch": st.integers(1, max_batch), "length": st.integers(1, max_length),
                                  "heads": st.integers(1, max_heads), "dk": dims, "dv": dims})


def segmented_run(fn, p: dict, cut: int, **kw):
    """``fn`` on time steps [0, cut) then [cut, L), the second run starting from the first's final
    state; returns (concatenated outputs, final state).  The metamorphic property of a recurrent
    form: this equals one run over [0, L).  ``p`` maps argument names to (batch, length, ...)
    arrays; ``fn`` takes ``initial_state=`` and ``return_final_state=True``."""
    parts, state = [], None
    for sl in (slice(0, cut), slice(cut, None)):
        seg = {k: v[:, sl] for k, v in p.items()}
        if next(iter(seg.values())).shape[1]:
            y, state = fn(**seg, initial_state=state, return_final_state=True, **kw)
            parts.append(y)
    return np.concatenate(parts, axis=1), state


CORRUPTIONS = ("extra_dim", "drop_dim", "wrong_size", "int_dtype", "complex_dtype", "other_float", "nan", "inf",
               "list", "tensor", "empty")


def corrupt(v: np.ndarray, how: str, *, axis: int = -1):
    """A bad version of the valid array ``v``, for bad-input tests (one of :data:`CORRUPTIONS`).

    ``wrong_size`` grows ``axis`` by one; ``empty`` makes the last axis zero-length;
    ``other_float`` flips float32 <-> float64; ``list`` and ``tensor`` change the container.
    A public function given the result must raise ``ValueError``/``TypeError`` naming the
    argument -- never crash, hang or return NaN.
    """
    if how == "extra_dim":
        return v[..., None]
    if how == "drop_dim":
        return v[0] if v.ndim > 1 else v.reshape(1, -1)
    if how == "wrong_size":
        return np.concatenate([v, np.take(v, [0], axis=axis)], axis=axis)
    if how == "int_dtype":
        return v.real.astype(np.int64)
    if how == "complex_dtype":
        return v.astype(np.complex128)
    if how == "other_float":
        return v.astype(np.float32 if v.dtype == np.float64 else np.float64)
    if how in ("nan", "inf"):
        w = v.astype(np.result_type(v, np.float32), copy=True)
        w.reshape(-1)[0 if how == "nan" else -1] = np.nan if how == "nan" else np.inf
        return w
    if how == "list":
        return v.tolist()
    if how == "tensor":
        import torch

        return torch.from_numpy(np.ascontiguousarray(v))
    if how == "empty":
        return v[..., :0]
    raise ValueError(f"how must be one of {CORRUPTIONS}; got {how!r}")
