"""Every kit reference answers a corrupted argument (wrong rank or size, integer or complex
dtype, NaN, inf, a list, an empty axis) with ValueError/TypeError naming it -- never a crash
deep inside theorylab, never a silent NaN."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theorylab.testing import (chunk_gla_ref, chunk_linear_attn_ref, chunk_retention_ref, chunk_simple_gla_ref, corrupt,
                               fixed_sparse_attention_ref, fla_inputs, mamba2_inputs, mamba_chunk_scan_combined_ref,
                               mamba_selective_scan_inputs, selective_scan_ref, sparse_heads_inputs)

pytestmark = pytest.mark.usefixtures("one_thread")

KIT = {
    "mamba": (selective_scan_ref, mamba_selective_scan_inputs("float32", max_length=5, max_dim=4)),
    "mamba2": (mamba_chunk_scan_combined_ref, mamba2_inputs("float32", max_length=5)),
    "simple_gla": (chunk_simple_gla_ref, fla_inputs("simple_gla", max_length=5)),
    "gla": (chunk_gla_ref, fla_inputs("gla", max_length=5)),
    "retention": (chunk_retention_ref, fla_inputs("retention", max_length=5)),
    "linear_attn": (chunk_linear_attn_ref, fla_inputs("linear_attn", max_length=5)),
    "sparse": (fixed_sparse_attention_ref, sparse_heads_inputs(max_length=8)),
}
HOW = ("extra_dim", "drop_dim", "wrong_size", "int_dtype", "complex_dtype", "nan", "inf", "list", "empty")


@settings(max_examples=60)
@given(kind=st.sampled_from(sorted(KIT)), how=st.sampled_from(HOW), data=st.data())
def test_a_corrupted_argument_is_refused_by_name(kind, how, data):
    ref, inputs = KIT[kind]
    p = data.draw(inputs)
    names = [k for k, v in p.items() if torch.is_tensor(v)]
    name = data.draw(st.sampled_from(names))
    bad = corrupt(p[name].numpy(), how, axis=-1)
    p[name] = torch.from_numpy(np.ascontiguousarray(bad)) if isinstance(bad, np.ndarray) else bad
    try:
        out = ref(**p)
    except (ValueError, TypeError) as e:
        msg = str(e)
        if how == "wrong_size":  # which of two now-inconsistent sizes is "wrong" is a matter of order
            assert any(k in msg for k in names), msg
        else:
            assert name in msg, msg
    else:  # a rank change can land on another valid layout (a (b, n, L) B with b = d, L = n reads as (d, n))
        assert how in ("drop_dim", "extra_dim"), (kind, name, how)
        first = out[0] if isinstance(out, tuple) else out
        assert torch.isfinite(first).all()
