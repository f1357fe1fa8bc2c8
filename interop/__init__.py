"""array-interop: any array from any framework to NumPy, and back, with no surprises.

Example:
    >>> import numpy as np, interop
    >>> interop.to_numpy([[1, 2], [3, 4]]).shape
    (2, 2)
"""

from __future__ import annotations

from typing import Any

from interop._api import explain, framework_of, to_numpy
from interop._backend import Backend, Node, Reading
from interop._convert import convert
from interop._copies import Copy, Staged
from interop._errors import (
    ConversionError,
    CopyRequiredError,
    InteropError,
    TransferError,
    UnsupportedTypeError,
)
from interop._function import numpy_function
from interop._iter import iter_numpy
from interop._options import Options, options
from interop._plan import Plan
from interop._registry import BackendInfo, backends, register_backend
from interop._structures import convert_tree, iter_convert
from interop._tree import register_container, to_numpy_tree

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # load and save bring the file formats with them (zipfile, json, the readers):
    # imported on first use, so that `import interop` stays cheap.
    if name in ("load", "save"):
        from interop import _io

        return getattr(_io, name)
    raise AttributeError(f"module 'interop' has no attribute {name!r}")


__all__ = [
    "Backend",
    "BackendInfo",
    "ConversionError",
    "Copy",
    "CopyRequiredError",
    "InteropError",
    "Node",
    "Options",
    "Plan",
    "Reading",
    "Staged",
    "TransferError",
    "UnsupportedTypeError",
    "__version__",
    "backends",
    "convert",
    "convert_tree",
    "explain",
    "framework_of",
    "iter_convert",
    "iter_numpy",
    "load",
    "numpy_function",
    "options",
    "register_backend",
    "register_container",
    "save",
    "to_numpy",
    "to_numpy_tree",
]
