"""array-interop: any array from any framework to NumPy, and back, with no surprises.

Example:
    >>> import numpy as np, interop
    >>> interop.to_numpy([[1, 2], [3, 4]]).shape
    (2, 2)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from interop._options import Options, options
from interop._plan import Plan
from interop._registry import BackendInfo, backends, register_backend

if TYPE_CHECKING:
    from interop._function import numpy_function
    from interop._io import load, save
    from interop._iter import Batches, iter_numpy
    from interop._structures import convert_tree, iter_convert
    from interop._tree import register_container, to_numpy_tree

__version__ = "0.1.0"

# The functions over trees, iterators and files, and the file formats they bring
# (zipfile and json for load and save), are imported on first use, so that `import
# interop` costs only the core: to_numpy, explain and convert.
_ON_FIRST_USE = {
    "Batches": "interop._iter",
    "numpy_function": "interop._function",
    "iter_numpy": "interop._iter",
    "convert_tree": "interop._structures",
    "iter_convert": "interop._structures",
    "register_container": "interop._tree",
    "to_numpy_tree": "interop._tree",
    "load": "interop._io",
    "save": "interop._io",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'interop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_ON_FIRST_USE})


__all__ = [
    "Backend",
    "Batches",
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
