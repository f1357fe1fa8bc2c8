"""The :class:`Plan` of a conversion: what :func:`interop.to_numpy` will do, step by step.

A backend describes a conversion as a plan before doing any work, and then carries
the plan out step by step. :func:`interop.explain` returns the same plan without
carrying it out, so the two can never disagree. The copy and transfer rules of the
contract are checked here, once, against the plan.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from interop._dtypes import cast_on_device, holds, is_raw_bytes, upcast_target
from interop._errors import (
    ConversionError,
    CopyRequiredError,
    TransferError,
    type_name,
    values_failed,
)
from interop._options import Options, Record, current, same_dtype
from interop._options import is_float as _is_float

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

__all__ = ["Plan"]

_set_field = object.__setattr__
_dtype = np.dtype


class Plan(Record):
    """What a conversion does, decided before any work.

    Immutable; equal plans compare and hash equal (``prepared`` aside). The dtypes
    are made NumPy dtypes (``np.float32`` becomes ``np.dtype("float32")``). A pickled
    plan leaves ``prepared`` out: it is the working state of one conversion in this
    process (a view of the data, the closures of a route), not part of the plan's
    value. A plan from :func:`interop.explain` holds none (``prepared`` is ``None``),
    so that keeping it keeps neither the data nor a buffer export of it.

    Attributes:
        framework: The backend that handles the input (``"torch"``, ``"numpy"``, ...).
        device: Where the data lives, as a string (``"cpu"``, ``"cuda:0"``, ...).
        zero_copy: Whether the result shares memory with the input.
        transfer: Whether data moves from an accelerator to host memory.
        steps: The short names of the steps, in the order they run.
        dtype: The dtype of the result, where it is known in advance.
        readonly: Whether the result is read-only: a view of immutable memory, or a
            copy in host memory that the source keeps and shares (the host copy
            JAX and TensorFlow cache inside an array on a GPU).
        copy_reason: Why a copy is needed, or ``None`` for a zero-copy plan.
        target: The target framework of :func:`interop.convert`, or ``None``.
    """

    __slots__ = _FIELDS = (
        "framework",
        "device",
        "zero_copy",
        "transfer",
        "steps",
        "dtype",
        "readonly",
        "copy_reason",
        "target",
        "prepared",
        "cast_to",
    )
    _SHOWN = 9  # not prepared, not cast_to

    framework: str
    device: str
    zero_copy: bool
    transfer: bool
    steps: tuple[str, ...]
    dtype: np.dtype[Any] | None
    readonly: bool
    copy_reason: str | None
    target: str | None
    # Work a backend did while planning without copying (for example asking an
    # object for a NumPy view) that the steps then reuse instead of repeating. Not
    # compared, hashed or shown.
    prepared: Any
    # Where ``dtype`` is not known in advance, the dtype the cast steps still apply:
    # the float_dtype= of cast_floats (data whose dtype is known only once it is built
    # or arrives), or a dtype= that names a kind only (str, np.datetime64), whose size
    # or unit NumPy takes from the values. Not shown; see cast_target.
    cast_to: np.dtype[Any] | None

    def __init__(
        self,
        framework: str,
        device: str,
        zero_copy: bool,
        transfer: bool,
        steps: tuple[str, ...],
        dtype: DTypeLike | None = None,
        readonly: bool = False,
        copy_reason: str | None = None,
        target: str | None = None,
        prepared: Any = None,
        cast_to: DTypeLike | None = None,
    ) -> None:
        init = _set_field
        init(self, "framework", framework)
        init(self, "device", device)
        init(self, "zero_copy", zero_copy)
        init(self, "transfer", transfer)
        # (A list given would leave the plan changeable and unhashable.)
        init(self, "steps", steps if type(steps) is tuple else tuple(steps))
        # Equal dtypes must hash equal: a backend may well spell one np.float32.
        if dtype is not None and not isinstance(dtype, _dtype):
            dtype = np.dtype(dtype)
        if cast_to is not None and not isinstance(cast_to, _dtype):
            cast_to = np.dtype(cast_to)
        init(self, "dtype", dtype)
        init(self, "readonly", readonly)
        init(self, "copy_reason", copy_reason)
        init(self, "target", target)
        init(self, "prepared", prepared)
        init(self, "cast_to", cast_to)

    def _compared(self) -> tuple[Any, ...]:
        return (
            self.framework,
            self.device,
            self.zero_copy,
            self.transfer,
            self.steps,
            self.readonly,
            self.copy_reason,
            self.target,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Plan) or other.__class__ is not self.__class__:
            return NotImplemented
        return (
            self._compared() == other._compared()
            and same_dtype(self.dtype, other.dtype)
            and same_dtype(self.cast_to, other.cast_to)
        )

    def __hash__(self) -> int:
        return hash((*self._compared(), self.dtype, self.cast_to))

    @property
    def cast_target(self) -> np.dtype[Any] | None:
        """The dtype the ``cast`` steps cast to: :attr:`dtype`, or where the result's is
        not known in advance, the dtype asked for (``str``: NumPy sizes it by the values)."""
        dtype = self.dtype
        if dtype is not None:
            return dtype
        # (A float_dtype= in cast_to applies to floating-point data only: not here.)
        cast_to = self.cast_to
        return cast_to if cast_to is not None and unsized(cast_to) else None

    def __reduce__(self) -> tuple[Any, ...]:
        # Without ``prepared``: see the class docstring.
        values = list(self._values())
        values[self._FIELDS.index("prepared")] = None
        return (type(self), tuple(values))

    def replace(self, **changes: Any) -> Plan:
        """A copy of this plan with the fields in ``changes`` replaced."""
        return Plan(**{**self._fields(), **changes})

    def __str__(self) -> str:
        kind = "zero-copy" if self.zero_copy else f"copy ({self.copy_reason})"
        where = f"{self.framework} on {self.device}"
        if self.target is not None:
            where += f" -> {self.target}"
        ro = ", read-only" if self.readonly else ""
        dtype = f", dtype {self.dtype}" if self.dtype is not None else ""
        transfer = ", device-to-host transfer" if self.transfer else ""
        return f"{where}: {kind}{transfer}{dtype}{ro}; steps: {' -> '.join(self.steps) or 'none'}"

    def check(self, options: Options) -> None:
        """Raise before any work if the plan breaks the copy or transfer options."""
        if type(options) is not Options and not isinstance(options, Options):
            raise TypeError(
                f"expected interop.Options, got `{type_name(options)}`. hint: "
                "interop.Options(copy=False), or interop.explain(x, copy=False)"
            )
        if self.transfer and not options.allow_transfer:
            raise TransferError(
                f"expected data in host memory, got {self.framework} data on {self.device}; "
                "allow_transfer=False forbids the device-to-host copy. "
                "hint: move it to the CPU first, or allow the transfer"
            )
        if options.copy is False and not self.zero_copy:
            if current().copy is False:
                # copy=None given to the call means "not given": the block's stays.
                hint = (
                    "copy=False is in force here (an interop.options(copy=False) block, or "
                    "the copy=False of the call that converts), and copy=None does not "
                    "lift it: pass copy=True for a copy, or convert outside that block"
                )
            else:
                hint = "use copy=None to allow a copy when needed"
            raise CopyRequiredError(
                f"copy=False, but converting {self.framework} data on {self.device} needs a "
                f"copy: {self.copy_reason}. hint: {hint}"
            )


def device_to_host(
    steps: list[str],
    device: str,
    source: np.dtype[Any],
    options: Options,
    *,
    kept_by: str | None = None,
    holds: Callable[[np.dtype[Any]], bool] | None = None,
) -> tuple[str, np.dtype[Any], bool]:
    """Add the steps that copy data on ``device`` into host memory, and say why they copy.

    The cast that ``dtype=`` (or ``upcast``) asks for runs on the device first where
    that moves fewer bytes over the bus and gives exactly the host cast's values
    (:func:`interop._dtypes.cast_on_device`), and where the framework holds the
    target dtype (``holds``; by default it does). ``kept_by`` says where a framework
    copies into a host copy of its own ("JAX keeps with the array"), which it hands
    out read-only (``kept`` in :func:`finish`); not after a cast on the device, which
    made new data.

    Returns:
        The copy reason, the dtype of the data that reaches the host, and ``kept``.
    """
    target = options.dtype
    if options.upcast and target is None:
        target = upcast_target(source)
    reason = f"the data is on {device} and must be copied to host memory"
    kept = False
    if target is not None and cast_on_device(source, target) and (holds is None or holds(target)):
        steps.append("cast_on_device")
        source = target
    elif kept_by is not None:
        kept = True
        reason += f" (into the host copy {kept_by}, read-only)"
    steps.append("to_host")
    return reason, source, kept


def finish(
    framework: str,
    device: str,
    steps: list[str],
    *,
    source_dtype: np.dtype[Any] | None,
    options: Options,
    copy_reason: str | None,
    transfer: bool = False,
    readonly: bool = False,
    source_readonly: bool = False,
    kept: bool = False,
    upcast_to: np.dtype[Any] | None = None,
    prepared: Any = None,
) -> Plan:
    """Complete a backend's steps with the NumPy-side tail shared by every backend.

    ``steps`` hold what the backend does to obtain a NumPy array of ``source_dtype``;
    ``copy_reason`` says why those steps already copy (``None``: they are a view).
    The tail adds the upcast of a nonstandard dtype, the cast to ``options.dtype``,
    the copy demanded by ``copy=True``, and the read-only flag of a view of
    immutable memory (``readonly``; ``source_readonly`` says the view is read-only
    already, so no step is needed). ``kept``: the steps copy, but into host memory the
    source keeps and shares (JAX's and TensorFlow's cached host copy of device data),
    which they hand out read-only; ``copy=True`` then copies again.
    """
    dtype = source_dtype
    # Whether the steps so far give an array that only the result holds.
    private = copy_reason is not None and not kept
    float_dtype = options.float_dtype
    if (
        options.upcast
        and upcast_to is not None
        and options.dtype is None
        and not (float_dtype is not None and dtype is not None and _is_float(dtype))
    ):
        steps.append("upcast")
        private = True
        dtype = upcast_to
        copy_reason = copy_reason or f"upcasting {source_dtype} to {upcast_to} copies"
    # ``dtype is None``: the source dtype is only known once the data arrives (a
    # transfer), so the cast is planned unconditionally. Never compare with None
    # through ``!=``: NumPy reads ``None`` as float64.
    if options.dtype is not None and dtype is not None:
        check_cast(options.dtype, dtype)
    target = options.dtype
    if float_dtype is not None:
        # Only floating-point data takes float_dtype; integers, booleans and complex
        # numbers keep their dtype. Data whose dtype is known only once it is built or
        # arrives (a list, a transfer) is cast then, by the cast_floats step.
        if dtype is None:
            steps.append("cast_floats")
            copy_reason = copy_reason or f"casting floating-point data to {float_dtype} copies"
        elif _is_float(dtype):
            target = float_dtype
    result = target
    cast_to = float_dtype
    if target is not None and unsized(target):
        # dtype=str (bytes, np.void, np.datetime64) names a kind, not a size or a
        # unit: data of that kind stays as it is, as np.asarray(a, dtype=str) gives
        # ``a`` itself; NumPy sizes other data by its dtype, or by its values.
        if dtype is not None and dtype.kind == target.kind:
            target = result = dtype
        else:
            result = None if dtype is None else _sized(dtype, target)
            cast_to = target
    if target is not None and (dtype is None or target != dtype):
        steps.append("cast")
        private = True
        source = "" if dtype is None else f"{dtype} "
        copy_reason = copy_reason or f"casting {source}to {target} copies"
        dtype = result
    if options.copy is True and not private:
        steps.append("copy")
        private = True
        copy_reason = copy_reason or "copy=True"
    zero_copy = copy_reason is None
    if zero_copy and readonly and not source_readonly:
        steps.append("readonly")
    return Plan(
        framework=framework,
        device=device,
        zero_copy=zero_copy,
        transfer=transfer,
        steps=tuple(steps),
        dtype=dtype,
        readonly=(zero_copy and (readonly or source_readonly)) or (kept and not private),
        copy_reason=copy_reason,
        prepared=prepared,
        cast_to=cast_to if dtype is None else None,
    )


def cast(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    """The ``upcast`` and ``cast`` steps: one copy into ``plan.cast_target``."""
    target = plan.cast_target
    if a.dtype.names == ("real", "imag"):
        # A complex number stored as a pair of fields (a complex32 without ml_dtypes'
        # own type): NumPy casts no record to a complex dtype, so the parts are set.
        out = np.empty(a.shape, dtype=target)
        out.real = a["real"]
        out.imag = a["imag"]
        return out
    return _astype(a, target)


def _astype(a: np.ndarray[Any, Any], dtype: Any) -> np.ndarray[Any, Any]:
    """``a.astype(dtype)``; for a masked array, its data and mask cast and copied.

    NumPy's own cast of a masked array casts its fill value too, and raises where the
    new dtype cannot hold it (a bfloat16 array's default b'???', a string array's
    'N/A'), but only once the fill value was read (any repr reads it): the fill
    value is kept where it casts within its kind, and is the new dtype's default
    otherwise.
    """
    try:
        if type(a) is np.ndarray or not is_masked_array(a) or a.dtype.names:
            return a.astype(dtype, copy=True)
        return _masked_astype(a, dtype)
    except (ValueError, TypeError) as exc:
        # NumPy's error for these values (text that spells no number): the caller's
        # to read as it is, whichever source's protocol handed over the values.
        values_failed(exc)
        raise


def _masked_astype(a: Any, dtype: Any) -> np.ndarray[Any, Any]:
    """:func:`_astype` of a masked array with no fields."""
    ma = sys.modules["numpy.ma"]
    masked: Any = a
    mask = ma.getmask(masked)
    out = ma.MaskedArray(
        masked.data.astype(dtype, copy=True),
        mask=mask if mask is ma.nomask else mask.copy(),
        hard_mask=masked.hardmask,
    )
    if type(a) is not ma.MaskedArray:
        out = out.view(type(a))  # (a subclass of MaskedArray stays one, as copy=True keeps it)
    fill = getattr(a, "_fill_value", None)  # (the public fill_value would set it on a)
    if isinstance(fill, np.ndarray) and np.can_cast(fill.dtype, dtype, casting="same_kind"):
        out.fill_value = fill.astype(dtype)
    return out  # type: ignore[no-any-return]


def unsized(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` names a kind only: text, bytes or raw bytes of no size, or a
    datetime or timedelta of no unit (NumPy picks them from the data)."""
    if dtype.kind in "SUV":
        return dtype.itemsize == 0 and dtype.fields is None
    return dtype.kind in "mM" and np.datetime_data(dtype)[0] == "generic"


def _sized(dtype: np.dtype[Any], target: np.dtype[Any]) -> np.dtype[Any] | None:
    """The dtype NumPy gives data of ``dtype`` cast to the unsized ``target``.

    ``None`` where the values decide it: Python objects (their text's length), and
    text to datetimes (the unit of the dates written).

    Example:
        >>> _sized(np.dtype("i8"), np.dtype(str)), _sized(np.dtype("M8[D]"), np.dtype("m8"))
        (dtype('<U21'), dtype('<m8[D]'))
    """
    if dtype.hasobject or (target.kind == "M" and holds(dtype, _is_text)):
        return None
    return np.empty(0, dtype).astype(target).dtype


def _is_text(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "SU"


def check_cast(target: np.dtype[Any], dtype: np.dtype[Any]) -> None:
    """Raise :class:`ConversionError` where a cast of ``dtype`` to ``target`` cannot be made.

    Where it drops imaginary parts (object targets keep complex values as Python
    numbers), and where NumPy casts no data of ``dtype`` to ``target`` whatever the
    values (see :func:`_uncastable`): refused by the plan, before any work, rather
    than by NumPy's own error in the middle of the conversion.
    """
    if is_complex(dtype) and _is_real_number(target):
        raise ConversionError(
            f"expected a dtype that keeps every value, got dtype={target} for "
            f"{dtype} data: the cast would discard the imaginary parts. hint: take the "
            "real part first (x.real, np.real), or ask for a complex dtype"
        )
    if _uncastable(dtype, target):
        if dtype.names:
            hint = "convert the fields one at a time (x['name'])"
        elif dtype.type is np.void:
            hint = "view the bytes as the dtype they hold first (x.view(...))"
        else:
            hint = "ask for a dtype NumPy casts it to, or cast it in two steps through one"
        raise ConversionError(
            f"expected a dtype= that {dtype} data casts to, got dtype={target}, which NumPy "
            f"casts no such data to. hint: {hint}"
        )


def _uncastable(dtype: np.dtype[Any], target: np.dtype[Any], nested: bool = False) -> bool:
    """Whether NumPy casts no data of ``dtype`` to ``target``, whatever the values.

    Where NumPy has no such cast (several fields to a dtype of other fields, or to
    none), and where it has one that fails for every value: an ``ml_dtypes`` format
    to raw bytes (``np.void`` without fields), raw bytes to text, datetimes or an
    ``ml_dtypes`` format, empty raw bytes (JAX's float0) to numbers, which NumPy
    reads from the bytes as text, datetimes to text of fewer than 3 characters (even
    ``NaT`` needs 3), and a datetime or timedelta of a unit to one of no unit of the
    same kind inside a field or subarray (NumPy keeps the unit only for a whole
    array, see :func:`unsized`). Fields are cast by position, a plain value into every
    field. Casts that fail for some values only (text, or bytes, that spell no number)
    are NumPy's to report, as documented.
    """
    if dtype == target or (target.kind == "O" and target.fields is None):
        return False  # (NumPy casts anything to objects)
    if not np.can_cast(dtype, target, "unsafe"):
        return True
    if dtype.fields is not None and target.fields is not None:
        pairs = zip(_field_dtypes(dtype), _field_dtypes(target), strict=False)
        return any(_uncastable(a, b, True) for a, b in pairs)
    if dtype.fields is not None:  # (one field: NumPy casts its values)
        return any(_uncastable(a, target, True) for a in _field_dtypes(dtype))
    if target.fields is not None:
        return any(_uncastable(dtype, b, True) for b in _field_dtypes(target))
    if dtype.subdtype is not None or target.subdtype is not None:
        nested = True
    dtype = dtype.subdtype[0] if dtype.subdtype is not None else dtype
    target = target.subdtype[0] if target.subdtype is not None else target
    if dtype.type.__module__ == "ml_dtypes":
        return is_raw_bytes(target)
    if is_raw_bytes(dtype):
        unreadable = target.kind in "USMm" or target.type.__module__ == "ml_dtypes"
        return unreadable or (dtype.itemsize == 0 and _is_number(target))
    if dtype.kind == "M" and target.kind in "SU" and target.itemsize:
        return target.itemsize // (4 if target.kind == "U" else 1) < 3
    if nested and dtype.kind == target.kind and dtype.kind in "mM":
        return unsized(target) and not unsized(dtype)
    return False


def _field_dtypes(dtype: np.dtype[Any]) -> list[np.dtype[Any]]:
    assert dtype.fields is not None
    return [field[0] for field in dtype.fields.values()]


def _is_real_number(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` holds real numbers only (a cast of complex data to it drops parts)."""
    if dtype.fields is not None or dtype.subdtype is not None or is_complex(dtype):
        return False
    return dtype.kind in "biuf" or dtype.type.__module__ == "ml_dtypes"


def _is_number(dtype: np.dtype[Any]) -> bool:
    return dtype.kind in "iufc" or dtype.type.__module__ == "ml_dtypes"


# The dtypes scipy.sparse holds: booleans, integers, complex numbers and these floats.
_SCIPY_KINDS = "biuc"
_SCIPY_FLOATS = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.longdouble))


def values_dtype(source: np.dtype[Any], options: Options) -> np.dtype[Any] | None:
    """The dtype ``dtype=``, ``float_dtype=`` or ``upcast`` ask of ``source`` values, or ``None``.

    For results whose values the tail's casts do not reach (a scipy.sparse array, the
    rows of an object array); a cast that would drop imaginary parts is refused.
    """
    dtype = options.dtype
    if dtype is not None:
        check_cast(dtype, source)
        return dtype
    if options.float_dtype is not None and _is_float(source):
        return options.float_dtype
    return upcast_target(source) if options.upcast else None


def scipy_dtype(source: np.dtype[Any], options: Options, what: str) -> np.dtype[Any]:
    """The dtype of the values of ``sparse="scipy"``'s result, or :class:`ConversionError`.

    Those of :func:`values_dtype`, which must be of a dtype scipy.sparse holds. ``what``
    names the sparse array in the error.
    """
    dtype = values_dtype(source, options) or source
    if not (dtype.kind in _SCIPY_KINDS or dtype in _SCIPY_FLOATS):
        # upcast=True turns only the ml_dtypes formats into standard ones.
        upcast = "upcast=True, " if upcast_target(dtype) is not None else ""
        raise ConversionError(
            f"expected values scipy.sparse can hold, got {dtype} values in {what}; "
            "scipy.sparse supports bool, integers, float32, float64 and complex. hint: "
            f"pass {upcast}dtype=np.float32 or float_dtype=np.float32, or sparse='dense'"
        )
    return dtype


def is_complex(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` holds complex numbers (NumPy's, ml_dtypes' or a real/imag pair)."""
    return dtype.kind == "c" or dtype.names == ("real", "imag") or "complex" in dtype.name


def copy(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    """The ``copy`` step: memory the result owns, in the source's memory order.

    A masked array stays one, its data and mask copied (its fill value and hard
    mask kept): as a plain array, its masked entries' values would become data.
    Other subclasses (``np.memmap``, ``np.matrix``, ...) become plain arrays of the
    same values, since the copy no longer has what their type describes (a file).
    """
    if type(a) is np.ndarray:
        return a.copy(order="K")  # (the method costs two thirds of np.array)
    if is_masked_array(a):
        ma = sys.modules["numpy.ma"]
        if isinstance(a, ma.core.MaskedConstant):
            # np.ma.masked, NumPy's one read-only masked scalar, copies as itself.
            return ma.MaskedArray(a.data.copy(), mask=ma.getmaskarray(a).copy())  # type: ignore[no-any-return]
        return a.copy(order="K")
    return np.array(a, copy=True, order="K")


def is_masked_array(a: object, /) -> bool:
    """Whether ``a`` is a NumPy masked array (``np.ma.MaskedArray``); never imports ``numpy.ma``.

    None can exist before ``numpy.ma`` is imported, and importing it costs more than
    ``import interop`` may.
    """
    ma = sys.modules.get("numpy.ma")
    return ma is not None and isinstance(a, ma.MaskedArray)


def framework_view(a: np.ndarray[Any, Any], /) -> np.ndarray[Any, Any]:
    """The plain ndarray that another framework reads from ``a`` (a subclass, say).

    A subclass's type means nothing to another framework, and some refuse a masked
    array outright (JAX, even with nothing masked). A masked array with an entry
    masked is refused (see :func:`mask_loss`).
    """
    if type(a) is np.ndarray:
        return a
    lost = mask_loss(a)
    if lost is not None:
        raise lost
    return a.view(np.ndarray)


def mask_loss(a: Any, /, *, item: bool = False) -> ConversionError | None:
    """The error for a masked array whose masked entries would become data, or ``None``.

    Asked where NumPy data goes to another framework (whose arrays carry no mask), or
    (``item=True``) into one array built from the items of a list or tuple, which
    NumPy builds without masks: the values under a mask (sentinels, fill values,
    stale data) would be read as data. ``None`` for any other array, and for a masked
    array with no entry masked, whose data converts as it is.
    """
    if not is_masked_array(a) or a.size == 0:
        return None
    ma = sys.modules["numpy.ma"]
    mask = ma.getmask(a)
    if mask is ma.nomask:
        return None
    if mask.dtype.names:
        # A structured dtype's mask has a flag per field: an entry is masked where any is.
        mask = ma.flatten_mask(mask).reshape(a.size, -1).any(axis=1)
    masked = int(np.count_nonzero(mask))
    if masked == 0:
        return None
    if item:
        where = "as an item of a list or tuple, which NumPy builds into one plain array"
        keep = "stack the items with np.ma.stack(...) to keep the masks"
    else:
        where = "to convert to another framework than NumPy"
        keep = "keep the mask with interop.to_numpy(x)"
    return ConversionError(
        f"expected an array without masked entries {where}, got `{type_name(a)}` with "
        f"{masked} of {a.size} entries masked: the values under the mask would become "
        "data. hint: fill them first with x.filled(value), keep only the others with "
        f"x.compressed(), or {keep}"
    )


def readonly(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    """The ``readonly`` step: a read-only view, leaving the framework's own array alone."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def cast_floats(a: np.ndarray[Any, Any], plan: Plan) -> np.ndarray[Any, Any]:
    """The ``cast_floats`` step: floating-point data into ``plan.cast_to``, the rest kept."""
    target = plan.cast_to
    if target is None or not _is_float(a.dtype) or a.dtype == target:
        return a
    return _astype(a, target)


TAIL_STEPS = {
    "upcast": cast,
    "cast": cast,
    "cast_floats": cast_floats,
    "copy": copy,
    "readonly": readonly,
}
