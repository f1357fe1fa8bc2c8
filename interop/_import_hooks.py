"""Run a function as soon as a module is imported, without importing it.

Why: some integrations must act before the first conversion. pyarrow rebuilds an
extension type from a file or a stream only if the type is registered when the
data is read, so the ``interop.dtype`` type must be registered as soon as
``pyarrow`` exists in the process, whether it was imported before ``interop`` or
after it. :func:`when_imported` runs the function at once for a module already
imported, and otherwise puts a finder first on ``sys.meta_path`` that lets the
other finders find the module, wraps its loader so that the function runs right
after the module's code, and puts the original loader back on the module. The
finder answers only for the watched names and leaves ``sys.meta_path`` once
nothing is watched any more. Python has no official post-import hook; this is the
pattern of ``wrapt``'s ``register_post_import_hook``.

A leaf module: it imports nothing from :mod:`interop`.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.abc import Loader, MetaPathFinder
else:  # the import system asks only for the methods; importlib.abc costs an import
    Loader = MetaPathFinder = object

__all__ = ["when_imported"]

_lock = threading.Lock()
# Module name -> the "module:function" specs to run once it is imported.
_pending: dict[str, list[str]] = {}
# Names whose spec the finder is looking up right now (it then steps aside).
_busy: set[str] = set()


def _run(spec: str) -> None:
    module, _, name = spec.partition(":")
    # An integration that fails must not make importing the user's library fail:
    # it is reported and skipped, whatever it raised.
    try:
        getattr(importlib.import_module(module), name)()
    except Exception as exc:
        warnings.warn(
            f"interop: {spec} failed when its module was imported: {exc!r}",
            RuntimeWarning,
            stacklevel=2,
        )


class _Loader(Loader):
    """The module's own loader, followed by the functions waiting for it."""

    def __init__(self, loader: Loader, name: str) -> None:
        self.loader = loader
        self.name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # The module sees its own loader from its first line (importlib.resources
        # and pkgutil ask for it), and keeps it afterwards.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        with _lock:
            specs = _pending.pop(self.name, [])
            _leave_if_idle()
        for spec in specs:
            _run(spec)


class _Finder(MetaPathFinder):
    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending or fullname in _busy:
            return None
        _busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            _busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, fullname)
        return spec


_finder = _Finder()


def _leave_if_idle() -> None:
    if not _pending and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def when_imported(module: str, spec: str) -> None:
    """Run the function ``spec`` (``"package.module:function"``) once ``module`` is imported.

    At once if ``module`` is already imported; otherwise right after it is, in the
    thread that imports it. The function is imported only then.
    """
    with _lock:
        if module not in sys.modules:
            _pending.setdefault(module, []).append(spec)
            if _finder not in sys.meta_path:
                sys.meta_path.insert(0, _finder)
            return
    _run(spec)
