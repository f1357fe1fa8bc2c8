"""Constructor fixtures: one test body per behaviour, run for every framework.

The constructors are :mod:`interop.testing`'s, the one catalogue the tests, the
benchmarks and the doctor share: ``make`` builds a framework array from a NumPy
array; ``native`` gives the NumPy view a framework itself hands out for the same
memory (used with ``np.shares_memory`` to prove aliasing claims); ``immutable``
says whether a zero-copy view is read-only (and writes to a mutable one show
through). A framework that is not installed is skipped, never faked; CI installs
all of them.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

from interop import testing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

Framework = testing.Framework

FRAMEWORKS = list(testing.FRAMEWORKS)


def load_framework(name: str) -> Framework:
    """The :class:`Framework` called ``name``; skips the test if it is not installed."""
    if not testing.available(name):
        pytest.skip(f"{name} is not installed")
    return testing.framework(name)


@pytest.fixture(params=FRAMEWORKS)
def fw(request: pytest.FixtureRequest) -> Framework:
    """Every framework, one test run each."""
    return load_framework(request.param)


@pytest.fixture(params=[f for f in FRAMEWORKS if f != "numpy"])
def tensor_fw(request: pytest.FixtureRequest) -> Framework:
    """Every framework except NumPy itself."""
    return load_framework(request.param)


def has_cuda() -> bool:
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("gpu" in item.keywords for item in items) and not has_cuda():
        skip = pytest.mark.skip(reason="needs a CUDA device")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
