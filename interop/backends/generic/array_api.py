"""Array API objects (``__array_namespace__``): through DLPack, after ``to_device`` if needed.

Array API devices have no common type: a CPU device is recognised by its name
(:func:`is_cpu`, the one decision every hook asks), and data elsewhere is moved with
``to_device`` before NumPy imports it, and is never exported through DLPack for
another framework to alias. As a target of :func:`interop.convert`, the namespace
is the one of ``like``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import class_attr
from interop._devices import HOST, dlpack_device_of, split_device, unnamed_device
from interop._errors import ConversionError
from interop._memory import aligned_copy, layout_problem
from interop._options import Options
from interop._plan import Plan
from interop.backends.generic.array_protocol import host_array
from interop.backends.generic.base import GenericBackend
from interop.backends.generic.dlpack import dlpack_view, from_dlpack

__all__ = ["ArrayApiBackend", "is_cpu"]


def _standard_dtype(x: Any) -> np.dtype[Any] | None:
    """The NumPy dtype of an Array API array's standard dtype, without reading its data.

    (The standard's dtypes are NumPy's, by name; a namespace may lack float16.)
    """
    import array_api_compat

    xp = array_api_compat.array_namespace(x)
    for name in _dtypes.NUMPY_NAMES:
        candidate = getattr(xp, name, None)
        if candidate is not None and x.dtype == candidate:
            return np.dtype(name)
    return None


class ArrayApiBackend(GenericBackend):
    """Array API objects (``__array_namespace__``), through DLPack after ``to_device``."""

    name = "array_api"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            from_dlpack=from_dlpack,
            to_cpu=self._to_cpu,
            array_protocol=lambda x, p: p.prepared if p.prepared is not None else np.asarray(x),
        )

    def matches(self, cls: type) -> bool:
        return class_attr(cls, "__array_namespace__") is not None

    def plan(self, x: Any, options: Options, /) -> Plan:
        import array_api_compat

        dev = array_api_compat.device(x)
        device = str(dev)
        on_cpu = is_cpu(dev)
        steps: list[str] = []
        reason: str | None = None
        view: np.ndarray[Any, Any] | None = None
        source: np.dtype[Any] | None = None
        if not on_cpu:
            steps.append("to_cpu")
            reason = f"the data is on {device} and must be copied to host memory"
            source = _standard_dtype(x)
        elif hasattr(x, "__dlpack__"):
            # A host view copies nothing, and tells the dtype the tail steps need.
            view = dlpack_view(x)
        else:
            view, reason = host_array(x, options)
        steps.append("from_dlpack" if hasattr(x, "__dlpack__") else "array_protocol")
        return _plan.finish(
            self.name,
            "cpu" if on_cpu else device,
            steps,
            source_dtype=source if view is None else view.dtype,
            options=options,
            copy_reason=reason,
            transfer=not on_cpu,
            readonly=view is not None and not view.flags.writeable,
            upcast_to=None if view is None else _dtypes.upcast_target(view.dtype),
            prepared=view,
        )

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        obj = x
        i = 0
        if plan.steps[0] == "to_cpu":
            obj = self._to_cpu(obj, plan)
            i = 1
        a: np.ndarray[Any, Any] = self.steps[plan.steps[i]](obj, plan)
        for step in plan.steps[i + 1 :]:
            a = self.steps[step](a, plan)
        return a

    def _to_cpu(self, x: Any, plan: Plan) -> Any:
        import array_api_compat

        return array_api_compat.to_device(x, _cpu_device(x))

    # -- conversion into this framework --
    # The target is the namespace of `like` (array_api_strict, ...); a device here is
    # the pair (namespace, the namespace's own device object).

    mutable = True

    def target_device(self, device: Any, like: Any, /) -> Any:
        if like is None:
            raise TypeError(
                "expected like= an array of the Array API library to convert to, got "
                "to='array_api': the Array API is a standard that many libraries implement. "
                "hint: convert(x, like=xp.asarray(0)) for the namespace xp you want"
            )
        import array_api_compat

        xp = array_api_compat.array_namespace(like)
        if device is None:
            return (xp, array_api_compat.device(like))
        return (xp, self._parse_device(xp, device))

    def _parse_device(self, xp: Any, device: Any) -> Any:
        devices = list(xp.__array_namespace_info__().devices())
        if isinstance(device, str):
            kind, _ = split_device(device)
            found = [d for d in devices if kind in str(d).lower()]
            if found:
                return found[0]
        elif device in devices:
            return device
        raise ValueError(
            f"expected a device of {xp.__name__}, got {device!r}. hint: use one of {devices}"
        )

    def device_of(self, x: Any, /) -> Any:
        import array_api_compat

        return (array_api_compat.array_namespace(x), array_api_compat.device(x))

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        dev = device[1]
        if is_cpu(dev):
            return (1, 0)
        # A device DLPack cannot name (array_api_strict's test devices, say): it only
        # ever equals itself, and plans show its own name.
        return unnamed_device(str(dev))

    def owns(self, x: Any, device: Any, /) -> bool:
        import array_api_compat

        return self.lookup(type(x)) is self and array_api_compat.array_namespace(x) is device[0]

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        xp, dev = device
        names = xp.__array_namespace_info__().dtypes(device=dev)
        if dtype.name not in names:
            raise ConversionError(
                f"expected a dtype {xp.__name__} supports, got {dtype} (it has: "
                f"{', '.join(names)}). hint: cast to one of those first"
            )
        return dtype

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        if device != (1, 0):
            return "the Array API target imports DLPack data from host memory only"
        return None

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        if not a.flags.writeable:
            return "the NumPy array is read-only, and Array API arrays are writable"
        return layout_problem(a, contiguous=False, aligned=False, positive=False)

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        xp, dev = device
        b = aligned_copy(a) if copy else a
        if self.dlpack_device(device) == (1, 0):
            return xp.from_dlpack(b)
        return xp.asarray(b, device=dev)

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        xp, dev = device
        out = xp.from_dlpack(x)
        if copy or self.device_of(out) != device:
            return xp.asarray(out, device=dev, copy=True)
        return out

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        xp, dev = device
        if copy or self.device_of(x) != device:
            return xp.asarray(x, device=dev, copy=True)
        return x

    def readonly_source(self, x: Any, /) -> bool:
        # Array API arrays support __setitem__; read-only memory shows in the view.
        return False

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        if not hasattr(x, "__dlpack__") or dtype.type.__module__ == "ml_dtypes":
            return None
        import array_api_compat

        if not is_cpu(array_api_compat.device(x)):
            # Data on another device (see is_cpu): moved by to_device, as to NumPy.
            return None
        # Pinned or managed host memory: through the NumPy view (see Backend.dlpack_export).
        if dlpack_device_of(x) != HOST:
            return None
        # Read-only memory of a library backed by NumPy (array-api-strict) is exported
        # only as a versioned capsule, which an importer of the legacy ones
        # (TensorFlow) cannot take: then none, and the conversion copies the view.
        # (Asked only for read-only or unaligned views: see host_route.)
        return x if np.from_dlpack(x).flags.writeable else None


def is_cpu(device: Any) -> bool:
    """Whether an Array API device is the host's CPU: the one decision of this backend.

    Array API devices have no common type; every CPU device names itself so. Any
    other device counts as one whose data must be moved to the host, whatever its
    DLPack export says: a namespace may keep it in host memory and export it as
    ``kDLCPU`` (array_api_strict's simulated ``Device('device1')``), and that data is
    then still a transfer to NumPy, and never a view for another framework.
    """
    return "cpu" in str(device).lower()


def _cpu_device(x: Any) -> Any:
    """The CPU device object of ``x``'s namespace, or ``"cpu"`` where it lists none.

    Array API devices are namespace-specific objects (``array_api_strict.Device``,
    ``torch.device``, ...); the inspection API lists them, and a CPU device names
    itself so.
    """
    info = getattr(x.__array_namespace__(), "__array_namespace_info__", None)
    if info is None:  # a namespace from before the inspection API (2023.12)
        return "cpu"
    devices = list(info().devices())
    return next((d for d in devices if is_cpu(d)), "cpu")
