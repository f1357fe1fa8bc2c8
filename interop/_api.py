from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

from interop import _core, _options, _registry
from interop._convert import plan_convert
from interop._errors import ConversionError, retell_policy
from interop._options import DEFAULT, DenseKeywords, Keywords
from interop._plan import Plan

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["explain", "framework_of", "to_numpy"]

_ndarray = np.ndarray
_cache = _registry._cache
_views = _registry._views
_view_of = _registry.view_of
_current = _options.current
_from_keywords = _options.from_keywords
_convert = _core.convert


@overload
def to_numpy(x: Any, /, *, sparse: Literal["scipy"], **options: Unpack[DenseKeywords]) -> Any: ...


@overload
def to_numpy(x: Any, /, **options: Unpack[Keywords]) -> np.ndarray[Any, Any]: ...


def to_numpy(x: Any, /, **options: Unpack[Keywords]) -> Any:
    """Convert any array or tensor to a :class:`numpy.ndarray`.

    The contract, the same for every framework:

    * ``copy=None``: zero-copy whenever the data already sits in host memory in a
      NumPy-representable layout and dtype, otherwise one copy. A NumPy array comes
      back as the very same object.
    * ``copy=True``: the result owns its memory, is writable and shares nothing.
    * ``copy=False``: never copies; raises :class:`CopyRequiredError` (before any
      work) where a copy is unavoidable.
    * A zero-copy view of memory its framework treats as immutable (JAX arrays,
      TensorFlow tensors) is read-only; a view of mutable memory (a PyTorch CPU
      tensor) is writable, and writes show through, as with ``Tensor.numpy()``.
    * Tensors that require grad convert without touching their graph.
    * Data on an accelerator is copied to host; ``allow_transfer=False`` raises
      :class:`TransferError` instead.

    Keywords left as ``None`` take their value from the innermost
    :func:`interop.options` block, or the defaults above.

    Args:
        x: The array: a PyTorch, TensorFlow or JAX tensor, a NumPy array or scalar,
            any object with ``__dlpack__``, ``__array__``, ``__array_namespace__`` or
            the buffer protocol, a Python scalar, or a (nested) list or tuple.
        copy: The copy policy, see above.
        dtype: Cast the result to this NumPy dtype (a copy unless already equal).
        allow_transfer: Whether a device-to-host copy is allowed (default ``True``).
        upcast: Turn nonstandard dtypes (bfloat16, float8, int4, ...) into the
            nearest standard dtype that holds every value (default ``False``: the
            exact ``ml_dtypes`` dtype, zero-copy).
        sparse: ``"error"`` (default), ``"dense"`` or ``"scipy"`` for sparse tensors.
        ragged: ``"error"`` (default), ``"object"`` or ``"pad"`` for ragged tensors.
        float_dtype: Cast floating-point data (bfloat16 and float8 included) to this
            floating-point dtype and leave integers, booleans and complex numbers as
            they are (where ``dtype`` casts everything); not together with ``dtype``.

    Returns:
        A NumPy array; for a sparse tensor under ``sparse="scipy"`` (given here, or
        by an :func:`interop.options` block), a ``scipy.sparse`` array (typed ``Any``
        where the call says ``sparse="scipy"``).

    Raises:
        UnsupportedTypeError: No backend converts ``type(x)``.
        CopyRequiredError: ``copy=False``, but a copy is unavoidable.
        TransferError: ``allow_transfer=False``, but the data is on an accelerator.
        ConversionError: The object holds no data (a tracer, a meta tensor, ...), or
            its own array protocol (``__array__``, ``__dlpack__``, ...) failed.
        ValueError, TypeError: NumPy cannot cast these values to ``dtype`` (NumPy's own
            error, as from ``ndarray.astype``: text that spells no number, for
            example). A cast NumPy makes for no values of the source's dtype (several
            fields to numbers, raw bytes) is a :class:`ConversionError` of the plan.

    Example:
        >>> import numpy as np, interop
        >>> a = np.arange(4.0)
        >>> interop.to_numpy(a) is a
        True
        >>> interop.to_numpy([1, 2, 3], dtype=np.float32)
        array([1., 2., 3.], dtype=float32)
    """
    # The keywords arrive as one dict rather than six keyword-only parameters: with
    # none given (the common call), that is one test instead of six defaults to
    # fill and check. The signature help() and inspect show is the full one.
    opts = _from_keywords(options, "to_numpy") if options else _current()
    cls = type(x)
    if opts is DEFAULT:
        if cls is _ndarray:
            return x  # type: ignore[no-any-return]
        view: Callable[[Any], Any] | None = _views.get(cls)
        if view is None and cls not in _views:  # a type met for the first time
            view = _view_of(cls)
        if view is not None:
            out = view(x)
            if out is not None:
                return out  # type: ignore[no-any-return]
    return _convert(x, _cache.get(cls) or _registry.get(x), opts)


to_numpy.__signature__ = _options.signature(to_numpy)  # type: ignore[attr-defined]


@overload
def explain(x: Any, /, *, to: str, device: Any = None, copy: bool | None = None) -> Plan: ...


@overload
def explain(x: Any, /, *, like: Any, device: Any = None, copy: bool | None = None) -> Plan: ...


@overload
def explain(x: Any, /, **options: Unpack[Keywords]) -> Plan: ...


def explain(
    x: Any,
    /,
    *,
    to: str | None = None,
    like: Any = None,
    device: Any = None,
    **options: Unpack[Keywords],
) -> Plan:
    """Describe what :func:`to_numpy` would do with the same arguments, without doing it.

    The plan is the one :func:`to_numpy` carries out, so the two never disagree. It
    does not check the copy and transfer options: a plan that ``copy=False`` would
    refuse is still returned, with ``zero_copy=False`` and the reason. It holds no
    reference to ``x`` or its memory (its ``prepared`` is ``None``): keeping it
    neither keeps ``x`` alive nor holds its buffer exported. An object read through
    its own ``__array__`` is asked once: only its answer tells the dtype and whether
    it copies.

    Given ``to``, ``like`` or ``device``, it describes :func:`interop.convert` with
    those keywords and ``copy`` instead (the route, in ``steps``, and the target
    framework, in ``target``).

    Example:
        >>> import numpy as np, interop
        >>> plan = interop.explain(np.arange(3), copy=True)
        >>> plan.zero_copy, plan.steps
        (False, ('copy',))
    """
    if to is not None or like is not None or device is not None:
        if to is None and like is None:
            raise TypeError(
                f"expected to= or like= with device={device!r}, got neither: explain "
                "describes convert() where it is given a target. hint: explain(x, "
                "to='torch', device=...), or explain(x) for to_numpy"
            )
        if any(options.get(k) is not None for k in _options.KEYWORDS if k != "copy"):
            raise TypeError(
                "expected only `copy` with to=/like=/device=, got to_numpy keywords too: "
                "convert keeps the dtype and takes no dtype, float_dtype, upcast, "
                "allow_transfer, sparse or ragged"
            )
        try:
            plan = plan_convert(x, to, like=like, device=device, copy=options.get("copy"))
        except ConversionError as exc:
            retell_policy(exc, "convert")
            raise
        return _handed_out(plan)
    opts = _options.from_keywords(options, "explain") if options else _current()
    return _handed_out(_core.plan(x, _registry.get(x), opts))


def _handed_out(plan: Plan) -> Plan:
    """``plan`` without its working state, for the caller to keep.

    ``prepared`` may hold a view of ``x`` (or a route's closures over one): a plan
    kept for a log or a report would hold ``x``'s buffer exported, so that a
    ``bytearray`` could not be resized nor an ``mmap`` closed while it lives.
    """
    return plan if plan.prepared is None else plan.replace(prepared=None)


explain.__signature__ = _options.signature(explain)  # type: ignore[attr-defined]


def framework_of(x: Any, /) -> str | None:
    """The name of the backend that converts ``x`` (``"torch"``, ``"numpy"``, ...), or ``None``.

    Never imports a framework.

    Example:
        >>> import numpy as np, interop
        >>> interop.framework_of(np.zeros(2)), interop.framework_of("text")
        ('numpy', None)
    """
    backend = _cache.get(type(x)) or _registry.lookup(type(x))
    return None if backend is None else backend.name
