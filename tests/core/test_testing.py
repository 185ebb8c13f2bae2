"""The public testing helpers catch what they promise to catch."""

import numpy as np
import pytest
import torch

from theorylab.testing import CORRUPTIONS, corrupt


def test_every_corruption_changes_shape_dtype_container_or_values():
    v = np.arange(6.0).reshape(2, 3)
    for how in CORRUPTIONS:
        bad = corrupt(v, how)
        if isinstance(bad, (list, torch.Tensor)):
            continue
        changed = bad.shape != v.shape or bad.dtype != v.dtype or not np.all(np.isfinite(bad))
        assert changed, how
    assert corrupt(v, "wrong_size", axis=0).shape == (3, 3)
    with pytest.raises(ValueError, match="how must be one of"):
        corrupt(v, "bogus")
