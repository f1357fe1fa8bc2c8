"""The target of a conversion: which backend creates the result, and on which device.

``convert(x, "torch")`` names the target framework, ``convert(x, like=y)`` takes
``y``'s. A name is looked up in the registry once; the answer is kept while the
registry keeps that backend in that place.
"""

from __future__ import annotations

from typing import Any

from interop import _registry
from interop._backend import Backend, is_target
from interop._devices import device_name
from interop._errors import type_name

__all__ = ["Target", "known", "resolve"]


class Target:
    """The resolved target: a backend, its own device object, and that device in DLPack terms."""

    __slots__ = ("backend", "device", "dl", "name")

    def __init__(self, backend: Backend, device: Any) -> None:
        self.backend = backend
        self.device = device
        self.dl = backend.dlpack_device(device)
        self.name = device_name(self.dl)


# Target name -> (its backend, its place in the registry's framework list): filled
# by the first conversion to that name, which loads the backend (importing the
# framework the name asks for); valid while that place still holds that backend.
_names: dict[str, tuple[Backend, int]] = {}
_frameworks = _registry._frameworks


def known(to: str, /) -> Backend | None:
    """The backend called ``to`` if a conversion has already resolved that name, else ``None``."""
    entry = _names.get(to)
    if entry is not None and entry[1] < len(_frameworks) and _frameworks[entry[1]] is entry[0]:
        return entry[0]
    return None


def resolve(to: Any, like: Any, /) -> Backend:
    """The backend that creates the result: the one called ``to``, or ``like``'s.

    Raises:
        TypeError: Neither or both of ``to`` and ``like`` are given, or ``to`` is not a name.
        ImportError: The framework ``to`` names cannot be imported.
        ValueError: No backend has that name.
    """
    if (to is None) == (like is None):
        given = "both" if to is not None else "neither"
        raise TypeError(
            f"expected exactly one of `to` (a framework name) and `like` (an array), got {given}. "
            "hint: convert(x, 'torch') or convert(x, like=other_array)"
        )
    if like is not None:
        likes = _registry.get(like)
        if not is_target(likes):
            raise TypeError(
                f"expected like= to be an array of a framework that creates arrays, got "
                f"`{type_name(like)}`, which interop reads but cannot make. hint: pass an "
                "array of the framework you want (a NumPy array, a tensor), or its name as to="
            )
        return likes
    if not isinstance(to, str):
        raise TypeError(
            f"expected `to` to be a framework name such as 'torch', got `{type_name(to)}`. "
            "hint: to match an existing array, pass it as like="
        )
    backend = known(to)
    if backend is not None:
        return backend
    try:
        backend = _registry.by_name(to)
    except ImportError as exc:
        raise ImportError(
            f"expected an installed framework, got to={to!r}, which cannot be imported: {exc}. "
            f"hint: install {to}"
        ) from exc
    if backend in _frameworks:
        _names[to] = (backend, _frameworks.index(backend))
    return backend
