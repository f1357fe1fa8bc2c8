"""Python scalars, lists and tuples: converted like :func:`numpy.asarray`.

Framework tensors inside a list are converted by their own backends first (with
the item options), so that a list of tensors becomes one array without NumPy
reaching into each tensor by itself.
"""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _dtypes, _plan
from interop._backend import Backend, planned, raise_translated
from interop._errors import InteropError
from interop._options import DEFAULT, Options
from interop._plan import Plan
from interop.backends.generic.base import GenericBackend, Lookup

# A function the registry finds per type (Backend.reader_of, Backend.stacker_of).
ViewOf = Callable[[type], Callable[[Any], Any] | None]

__all__ = ["PythonBackend"]


class PythonBackend(GenericBackend):
    """Python scalars (``bool``, ``int``, ``float``, ``complex``), lists and tuples."""

    arrays = False
    name = "python"

    def __init__(self) -> None:
        super().__init__()
        self.steps.update(
            asarray=self._asarray,
            convert_items=self._convert_items,
            upcast_nonstandard=_upcast_nonstandard,
        )

    def matches(self, cls: type) -> bool:
        return issubclass(cls, (list, tuple)) or (
            issubclass(cls, numbers.Number) and not issubclass(cls, (str, bytes))
        )

    def plan(self, x: Any, options: Options, /) -> Plan:
        steps = ["asarray"]
        device = "cpu"
        transfer = False
        prepared: _Items | None = None
        if isinstance(x, (list, tuple)):
            if _contains_foreign_arrays(self.lookup, x, "numpy.ma" in sys.modules):
                steps.insert(0, "convert_items")
                # Items take every option but the copy and the dtype, which apply to
                # the array built from them. upcast=True upcasts each item, unless a
                # dtype is given: then, as for one array, the dtype wins and each item
                # keeps its exact values for that one cast.
                item_options = (
                    DEFAULT
                    if options is DEFAULT
                    else options.replace(
                        copy=None, dtype=None, upcast=options.upcast and options.dtype is None
                    )
                )
                if item_options == DEFAULT:
                    item_options = DEFAULT  # (items then take their host views)
                # Items on an accelerator make the whole list a transfer, so that
                # allow_transfer=False refuses it before any item is converted. Items
                # in host memory are viewed once, here, for the conversion to use.
                mapped: list[Any] | _Stacking | None = None
                if options.copy is not False:
                    transfers: list[Plan] = []
                    if item_options is DEFAULT:
                        # (Stacked, then cast to a dtype=, the values would be copied
                        # twice, where np.asarray casts the views in one copy.)
                        stacker_of = self.stacker_of if options.dtype is None else _no_stacker
                        mapped = _view_items(self.lookup, self.reader_of, stacker_of, x, transfers)
                    else:
                        found = _first_transfer(self.lookup, x, item_options)
                        transfers = [] if found is None else [found]
                    if transfers:
                        device, transfer = transfers[0].device, True
                prepared = _Items(item_options, mapped)
            reason = f"a {type(x).__name__} has no array memory to share; a new array is built"
        else:
            reason = f"a Python {type(x).__name__} has no array memory; a 0-d array is built"
        if options.upcast and options.dtype is None:
            # Items may be bfloat16 tensors: the dtype is only known once built.
            steps.append("upcast_nonstandard")
        # The dtype is what np.asarray infers; the explicit dtype is applied while
        # building, so no separate cast step is needed.
        plan = _plan.finish(
            self.name,
            device,
            steps,
            source_dtype=options.dtype,
            options=options,
            copy_reason=reason,
            transfer=transfer,
            prepared=prepared,
        )
        if options.dtype is not None and _plan.unsized(options.dtype):
            # (dtype=str: NumPy sizes the text by the items, once built.)
            plan = plan.replace(dtype=None, cast_to=options.dtype)
        return plan

    def _convert_items(self, x: Any, plan: Plan) -> Any:
        prepared: _Items = plan.prepared
        if type(prepared.mapped) is _Stacking:
            return prepared.mapped.make()
        if prepared.mapped is not None:
            x = prepared.mapped
        items = _map_foreign(self.lookup, self.reader_of, x, prepared.options)
        if "numpy.ma" in sys.modules:
            _check_masks(items)  # (a Dask array's masked chunks, computed only now)
        return items

    def _asarray(self, x: Any, plan: Plan) -> np.ndarray[Any, Any]:
        dtype = plan.cast_target
        if dtype is not None:
            # NumPy casts complex items (NumPy scalars, arrays: converted tensors) to
            # a real dtype with only a warning; the contract refuses that cast.
            found = _complex_item(x)
            if found is not None:
                _plan.check_cast(dtype, found)
        return np.asarray(x, dtype=dtype)


# Items np.asarray reads correctly by itself; any other item a backend converts
# (a framework tensor, a DLPack or Array API object) is converted first.
_NATIVE_ITEMS = ("numpy", "python")


# Items np.asarray reads as they are, found by type among a list's items at C speed.
_NUMBERS = frozenset({int, float, complex, bool})


def _check_masks(x: list[Any] | tuple[Any, ...]) -> None:
    """Refuse a masked array with a masked entry among the items (np.asarray drops masks)."""
    if set(map(type, x)) <= _NUMBERS:
        return
    for item in x:
        if isinstance(item, (list, tuple)):
            _check_masks(item)
        elif isinstance(item, np.ndarray):
            _check_mask(item)


def _check_mask(item: np.ndarray[Any, Any]) -> None:
    """Refuse one ndarray item that is a masked array with a masked entry."""
    if type(item) is not np.ndarray:
        lost = _plan.mask_loss(item, item=True)
        if lost is not None:
            raise lost


def _complex_item(x: Any) -> np.dtype[Any] | None:
    """The dtype of the first complex item of a (nested) list or tuple, or of a scalar."""
    if isinstance(x, (list, tuple)):
        for item in x:
            found = _complex_item(item)
            if found is not None:
                return found
        return None
    if isinstance(x, complex):
        return np.dtype(np.complex128)
    if isinstance(x, (np.ndarray, np.generic)) and _plan.is_complex(x.dtype):
        return x.dtype
    return None


def _upcast_nonstandard(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    target = _dtypes.upcast_target(a.dtype)
    return a if target is None else a.astype(target)


def _foreign_backend(lookup: Lookup, item: Any) -> Backend | None:
    if isinstance(item, (int, float, complex, bool, np.generic, np.ndarray)):
        return None
    backend = lookup(type(item))
    if backend is None or backend.name in _NATIVE_ITEMS:
        return None
    return backend


def _contains_foreign_arrays(lookup: Lookup, x: list[Any] | tuple[Any, ...], masks: bool) -> bool:
    """Whether a (nested) list or tuple holds arrays another backend converts first.

    ``masks``: numpy.ma was imported (no masked array exists before), and a masked
    array with a masked entry among the items is refused, since np.asarray drops its
    mask. A list of Python numbers alone is told by the types of its items.
    """
    if set(map(type, x)) <= _NUMBERS:
        return False
    foreign = False
    for item in x:
        if isinstance(item, (list, tuple)):
            foreign = _contains_foreign_arrays(lookup, item, masks) or foreign
        elif isinstance(item, np.ndarray):
            if masks:
                _check_mask(item)
        elif not foreign and _foreign_backend(lookup, item) is not None:
            if not masks:
                return True
            foreign = True
    return foreign


def _no_stacker(cls: type) -> None:
    return None


class _Items:
    """What a list's plan prepares for its ``convert_items`` step.

    ``options``: those its items are converted with. ``mapped``: the list with each
    item in host memory replaced by its host view (nested lists as lists), or by the
    :class:`_Stacking` of a list its items' backend stacks, where the items take
    their host views (``options`` is ``DEFAULT``); else ``None``.
    """

    __slots__ = ("mapped", "options")

    def __init__(self, options: Options, mapped: list[Any] | _Stacking | None) -> None:
        self.options = options
        self.mapped = mapped


class _Stacking:
    """A list whose items' backend stacks them (see ``Backend.stack_for``): ``make()``."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], np.ndarray[Any, Any]]) -> None:
        self.make = make


def _view_items(
    lookup: Lookup,
    reader_of: ViewOf,
    stacker_of: ViewOf,
    x: list[Any] | tuple[Any, ...],
    transfers: list[Plan],
) -> list[Any] | _Stacking:
    """``x`` with each foreign item that has a host view replaced by it, read (unchanged).

    Or, where the backend of its first item stacks them all in one operation (see
    :meth:`~interop._backend.Backend.stack_for`), that operation, to run when
    converting. The plans of the other foreign items are made, in order, until one
    of them is a transfer, which is appended to ``transfers``.
    """
    if x:
        stacker = stacker_of(type(x[0]))
        if stacker is not None:
            make: Callable[[], np.ndarray[Any, Any]] | None = stacker(x)
            if make is not None:
                return _Stacking(make)
    out = []
    for item in x:
        if isinstance(item, (list, tuple)):
            item = _view_items(lookup, reader_of, stacker_of, item, transfers)
        else:
            backend = _foreign_backend(lookup, item)
            if backend is not None:
                read = reader_of(type(item))
                viewed = None if read is None else read(item)
                if viewed is not None:
                    item = viewed
                elif not transfers:
                    plan = planned(item, backend, DEFAULT)
                    if plan.transfer:
                        transfers.append(plan)
        out.append(item)
    return out


def _first_transfer(
    lookup: Lookup, x: list[Any] | tuple[Any, ...], options: Options
) -> Plan | None:
    """The plan of the first foreign item that is a transfer; the items are planned in
    order until it (a failure told by the item's backend)."""
    for item in x:
        if isinstance(item, (list, tuple)):
            found = _first_transfer(lookup, item, options)
            if found is not None:
                return found
        else:
            backend = _foreign_backend(lookup, item)
            if backend is not None:
                plan = planned(item, backend, options)
                if plan.transfer:
                    return plan
    return None


def _map_foreign(lookup: Lookup, reader_of: ViewOf, x: Any, item_options: Options) -> Any:
    """``x`` with each foreign item converted: by its host view where it has one.

    Items are read, never changed (a PyTorch storage stays resizable): the list's
    array is built from copies of their values, and shares memory with none of them.
    """
    if type(x) is _Stacking:
        return x.make()
    if isinstance(x, (list, tuple)):
        return [_map_foreign(lookup, reader_of, item, item_options) for item in x]
    backend = _foreign_backend(lookup, x)
    if backend is None:
        return x
    if item_options is DEFAULT:
        read = reader_of(type(x))
        out = None if read is None else read(x)
        if out is not None:
            return out
    try:
        plan = backend.plan_for(x, item_options)
        plan.check(item_options)
        # (A zero-copy answer only read, as convert reads one: see Backend.transient_view.)
        out = backend.transient_view(x, plan) if plan.zero_copy else backend.run(x, plan)
        backend.check_result(x, out, item_options)
    except (InteropError, MemoryError):
        raise
    except Exception as exc:
        raise_translated(x, backend, exc)  # (the item's failure, told by its backend)
    return out
