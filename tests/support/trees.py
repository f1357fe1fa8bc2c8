"""Containers and a failing leaf for the tree tests (the hostile trees, the error paths)."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple


class Pair(NamedTuple):
    left: Any
    right: Any


@dataclasses.dataclass(frozen=True)
class Box:
    value: Any
    label: str = "box"


class BrokenArray:
    """Claims to be an array, then fails."""

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise RuntimeError("broken __array__")
