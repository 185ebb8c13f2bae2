"""Hypothesis profiles and shared fixtures.

Profiles (choose with HYPOTHESIS_PROFILE): ``dev`` (25 examples, the default),
``ci`` (100, derandomized, no deadline -- numba compiles on first call),
``thorough`` (2000).  Strategies draw sizes and a seed; ``make_inputs`` builds arrays.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors])
settings.register_profile("dev", max_examples=25, **_common)
settings.register_profile("ci", max_examples=100, derandomize=True, print_blob=True, **_common)
settings.register_profile("thorough", max_examples=2000, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture
def rng():
    """A fresh, seeded generator per test: the seed is part of the test's contract."""
    return np.random.default_rng(20241128)


@pytest.fixture(scope="module")
def one_thread():
    """One torch and one numba thread for a module of tiny problems (waking thread pools would
    dominate the time); use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import numba
    import torch

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    yield
    torch.set_num_threads(before[0])
    numba.set_num_threads(before[1])


DATA = Path(__file__).parent / "data"


def load_golden(name: str) -> dict:
    """The golden-vector file ``tests/data/<name>.json`` (provenance: tests/data/README.md).
    A missing file raises: a clone must run these tests, never skip them."""
    import json

    return json.loads((DATA / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def golden():
    """``golden(name)`` -> the parsed ``tests/data/<name>.json``."""
    return load_golden
