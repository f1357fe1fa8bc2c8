"""Constructor fixtures: one test body per behaviour, run for every framework.

``make`` builds a framework array from a NumPy array; ``native`` gives the NumPy
view a framework itself hands out for the same memory (used with
``np.shares_memory`` to prove aliasing claims). A framework that is not installed
is skipped, never faked; CI installs all of them.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@dataclass(frozen=True)
class Framework:
    """How to build arrays of one framework in tests."""

    name: str
    make: Callable[[np.ndarray], Any]
    native: Callable[[Any], np.ndarray]
    # Whether the framework treats its memory as immutable (zero-copy views are read-only).
    immutable: bool
    # Whether writes to a zero-copy result show through to the source.
    mutable_view: bool


def _numpy() -> Framework:
    return Framework("numpy", lambda a: a.copy(), lambda a: a, immutable=False, mutable_view=True)


def _torch() -> Framework:
    import torch

    return Framework(
        "torch",
        lambda a: torch.from_numpy(a.copy()),
        lambda t: t.detach().numpy(),
        immutable=False,
        mutable_view=True,
    )


def _tensorflow() -> Framework:
    import tensorflow as tf

    return Framework(
        "tensorflow",
        lambda a: tf.constant(a),
        lambda t: np.asarray(t),
        immutable=True,
        mutable_view=False,
    )


def _jax() -> Framework:
    import jax.numpy as jnp

    return Framework(
        "jax", lambda a: jnp.asarray(a), lambda x: np.asarray(x), immutable=True, mutable_view=False
    )


_FACTORIES: dict[str, tuple[str, Callable[[], Framework]]] = {
    "numpy": ("numpy", _numpy),
    "torch": ("torch", _torch),
    "tensorflow": ("tensorflow", _tensorflow),
    "jax": ("jax", _jax),
}

FRAMEWORKS = list(_FACTORIES)


def load_framework(name: str) -> Framework:
    """The :class:`Framework` called ``name``; skips the test if it is not installed."""
    module, factory = _FACTORIES[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    return factory()


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
