import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theorylab.tolerances import RTOL, assert_close, compare, rtol_for


def test_policy_table():
    assert RTOL == {"float64": 1e-10, "float32": 1e-4, "bfloat16": 2e-2, "float16": 2e-2}
    assert rtol_for(np.float32) == 1e-4 and rtol_for(torch.bfloat16) == 2e-2 and rtol_for("float64") == 1e-10
    with pytest.raises(ValueError, match="no tolerance policy for dtype 'int64'"):
        rtol_for(np.int64)


def test_normwise_by_hand():
    ref = np.array([[1.0, -4.0], [2.0, 0.0]])
    out = ref + np.array([[0.0, 0.0], [0.0, 4e-4]])
    c = compare(out, ref, dtype=np.float32)
    assert c.max_abs_error == pytest.approx(4e-4) and c.rel_error == pytest.approx(1e-4)
    assert c.worst_index == (1, 1) and c.ok  # exactly at the bound: holds
    with pytest.raises(AssertionError, match=r"worst index \(1, 1\)"):
        assert_close(out * 1.0 + np.array([[0, 0], [0, 1e-6]]), ref, dtype=np.float32)


@given(scale=st.floats(1e-6, 1e6), seed=st.integers(0, 99))
def test_scale_invariant(scale, seed):
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal(7)
    out = ref + 1e-5 * rng.standard_normal(7)
    assert compare(out * scale, ref * scale, rtol=1e-3).rel_error == pytest.approx(compare(out, ref, rtol=1e-3).rel_error)


def test_nonfinite_out_fails_and_shape_mismatch_raises():
    c = compare(np.array([1.0, np.nan]), np.array([1.0, 2.0]), dtype=np.float64)
    assert not c.ok and c.worst_index == (1,)
    with pytest.raises(ValueError, match="differ in shape"):
        compare(np.zeros(3), np.zeros(4), dtype=np.float64)
    with pytest.raises(ValueError, match="ref contains NaN"):
        compare(np.zeros(2), np.array([0.0, np.inf]), dtype=np.float64)


def test_torch_inputs_and_zero_reference():
    assert compare(torch.zeros(3, dtype=torch.bfloat16), np.zeros(3)).ok
    assert not compare(np.array([1e-3]), np.zeros(1), dtype=np.float64).ok
