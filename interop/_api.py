"""The public conversion functions: :func:`to_numpy`, :func:`explain`, :func:`framework_of`."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict

import numpy as np

from interop import _options, _registry
from interop._errors import ConversionError, InteropError, type_name
from interop._options import DEFAULT, Options, RaggedPolicy, SparsePolicy
from interop._plan import Plan

if TYPE_CHECKING:
    from typing import Unpack

__all__ = ["explain", "framework_of", "to_numpy"]

_ndarray = np.ndarray
_cache = _registry._cache
_fast = _registry._fast
_current = _options.current
_resolve_options = _options.resolve


class _Keywords(TypedDict, total=False):
    """The keywords of :func:`to_numpy` (for type checkers)."""

    copy: bool | None
    dtype: Any
    allow_transfer: bool | None
    upcast: bool | None
    sparse: SparsePolicy | None
    ragged: RaggedPolicy | None


def to_numpy(x: Any, /, **options: Unpack[_Keywords]) -> np.ndarray[Any, Any]:
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

    Returns:
        A NumPy array.

    Raises:
        UnsupportedTypeError: No backend converts ``type(x)``.
        CopyRequiredError: ``copy=False``, but a copy is unavoidable.
        TransferError: ``allow_transfer=False``, but the data is on an accelerator.
        ConversionError: The object holds no data (a tracer, a meta tensor, ...), or
            its own array protocol (``__array__``, ``__dlpack__``, ...) failed.
        ValueError, TypeError: NumPy cannot cast the data to ``dtype`` (NumPy's own
            error, as from ``ndarray.astype``: text to numbers, for example).

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
    # fill and six to check, a tenth of the cost of the fastest native conversion.
    # The signature shown by help() and inspect is the full one, set below.
    cls = type(x)
    # Keywords that are all None (forwarded by a caller) resolve to the same options.
    opts = _keywords(options) if options else _current()
    if opts is DEFAULT:
        if cls is _ndarray:
            return x  # type: ignore[no-any-return]
        # The backend's fast path for this type, looked up once per type. It
        # returns what the planned path would, or raises to hand over to it.
        try:
            fast = _fast[cls]
        except KeyError:
            fast = _fill_fast(x)
        if fast is not None:
            try:
                return fast(x)  # type: ignore[no-any-return]
            except Exception:
                pass
    backend = _cache.get(cls) or _registry.get(x)
    if backend.module is not None:
        return backend.to_numpy(x, opts)
    try:
        out = backend.to_numpy(x, opts)
    except Exception as exc:
        raise_protocol_failure(x, backend, exc)
    if out.dtype.hasobject and opts.dtype is None:
        raise _object_error(x, out)
    return out


def _signature(
    x: Any,
    /,
    *,
    copy: bool | None = None,
    dtype: Any = None,
    allow_transfer: bool | None = None,
    upcast: bool | None = None,
    sparse: SparsePolicy | None = None,
    ragged: RaggedPolicy | None = None,
) -> np.ndarray[Any, Any]:
    raise NotImplementedError  # pragma: no cover - only its signature is used


to_numpy.__signature__ = inspect.signature(_signature)  # type: ignore[attr-defined]


_KEYWORDS = frozenset(_Keywords.__annotations__)


def _keywords(options: Mapping[str, Any]) -> Options:
    for key in options:
        if key not in _KEYWORDS:
            raise TypeError(f"to_numpy() got an unexpected keyword argument {key!r}")
    get = options.get
    return _resolve_options(
        get("copy"),
        get("dtype"),
        get("allow_transfer"),
        get("upcast"),
        get("sparse"),
        get("ragged"),
    )


def _fill_fast(x: Any) -> Callable[[Any], Any] | None:
    """Look up and cache the fast path of ``type(x)`` (raises for an unsupported type)."""
    cls = type(x)
    with _registry._lock:
        fast = _registry.get(x).fast_path(cls)
        _fast[cls] = fast
    return fast


def explain(
    x: Any,
    /,
    *,
    copy: bool | None = None,
    dtype: Any = None,
    allow_transfer: bool | None = None,
    upcast: bool | None = None,
    sparse: SparsePolicy | None = None,
    ragged: RaggedPolicy | None = None,
    to: str | None = None,
    like: Any = None,
    device: Any = None,
) -> Plan:
    """Describe what :func:`to_numpy` would do with the same arguments, without doing it.

    The plan is the one :func:`to_numpy` carries out, so the two never disagree. It
    does not check the copy and transfer options: a plan that ``copy=False`` would
    refuse is still returned, with ``zero_copy=False`` and the reason.

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
        if (dtype, allow_transfer, upcast, sparse, ragged) != (None,) * 5:
            raise TypeError(
                "expected only `copy` with to=/like=/device=, got to_numpy keywords too: "
                "convert keeps the dtype and takes no dtype, upcast, allow_transfer, "
                "sparse or ragged"
            )
        from interop._convert import plan_convert

        return plan_convert(x, to, like=like, device=device, copy=copy)
    opts = _resolve_options(copy, dtype, allow_transfer, upcast, sparse, ragged)
    backend = _registry.get(x)
    if backend.module is not None:
        return backend.plan(x, opts)
    try:
        return backend.plan(x, opts)
    except Exception as exc:
        raise_protocol_failure(x, backend, exc)


# What a generic backend asks of an object it does not know, for error messages.
_PROTOCOLS = {
    "array_api": "the Array API (`__array_namespace__`, `device`, `__dlpack__`)",
    "dlpack": "DLPack (`__dlpack__`)",
    "array_protocol": "`__array__`, `__array_interface__` or the buffer protocol",
}


def protocol_failure(x: Any, backend: _registry.Backend, exc: Exception) -> ConversionError | None:
    """The error to raise, from ``exc``, for ``backend`` failing on ``x``; ``None``: ``exc`` itself.

    A framework backend's errors, the library's own and :class:`MemoryError` pass
    through unchanged; any other error of a generic backend is the object's own
    protocol failing (see :func:`_protocol_error`). :func:`to_numpy`, :func:`explain`
    and the tree functions all report failures through this one rule.
    """
    if backend.module is not None or isinstance(exc, (InteropError, MemoryError)):
        return None
    return _protocol_error(x, backend, exc)


def raise_protocol_failure(x: Any, backend: _registry.Backend, exc: Exception) -> NoReturn:
    """Raise what :func:`protocol_failure` says for ``exc``: the wrapped error, or ``exc``."""
    wrapped = protocol_failure(x, backend, exc)
    if wrapped is None:
        raise exc
    raise wrapped from exc


def _protocol_error(x: Any, backend: _registry.Backend, exc: Exception) -> ConversionError:
    """The error for an object whose own array protocol failed (generic backends only).

    The generic backends call methods that third-party objects implement, which may
    raise anything; the caller gets one documented exception type instead, with the
    original error chained as its cause.
    """
    what = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, RecursionError):
        return ConversionError(
            f"expected a finitely nested sequence, got `{type_name(x)}` nested too deeply to "
            f"walk ({what}). hint: a list that contains itself has no array form; NumPy "
            "arrays have at most 64 dimensions"
        )
    if backend.name == "python":
        return ConversionError(
            f"expected a scalar or a rectangular nested sequence of numbers, got "
            f"`{type_name(x)}`, from which NumPy cannot build an array ({what}). "
            "hint: give nested sequences equal lengths, or convert the items one by one"
        )
    protocol = _PROTOCOLS.get(backend.name, f"the {backend.name} protocol")
    return ConversionError(
        f"expected `{type_name(x)}` to hand over its data through {protocol}, but it "
        f"failed with {what}. hint: the error comes from `{type_name(x)}` itself; convert "
        "it with its own library's API first"
    )


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


def _object_error(x: Any, out: np.ndarray[Any, Any]) -> ConversionError:
    """The error for an object a generic protocol could only turn into Python objects."""
    if isinstance(x, (list, tuple)):
        odd = next((v for v in out.flat if not _fits_numpy(v)), out.flat[0])
        what = f"`{type_name(x)}` holding `{type_name(odd)}` values"
    else:
        what = f"`{type_name(x)}`"
    return ConversionError(
        f"expected numbers, got {what}, which NumPy can only keep as Python objects. "
        "hint: replace None and other non-numbers first (for example with float('nan')), "
        "convert big or exact numbers with float(...), or pass dtype=object to keep the objects"
    )


def _fits_numpy(v: Any) -> bool:
    """Whether NumPy holds ``v`` as a number of its own (not as a Python object)."""
    if type(v) is int:
        return -(2**63) <= v < 2**64
    return isinstance(v, (bool, float, complex, np.generic))
