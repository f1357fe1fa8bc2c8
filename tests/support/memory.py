"""The peak of NumPy's (and Python's) allocations during one call, for the one-copy tests."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from typing import Any


def traced_peak(call: Callable[[], Any]) -> tuple[Any, int]:
    """``call()`` and the peak of the memory it allocated, in bytes, as tracemalloc sees it.

    NumPy's allocations are traced; a framework's own (PyTorch's, TensorFlow's) are not.
    """
    tracemalloc.start()
    try:
        out = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak
