"""Conversion options and the :func:`options` context manager.

The options of a call are resolved from three layers: the library defaults, the
innermost active :func:`options` block (held in a :class:`contextvars.ContextVar`,
so it is private to a thread or an asyncio task and nests properly), and the
keywords of the call itself, which always win.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypedDict

import numpy as np

if TYPE_CHECKING:
    from typing import Unpack

    from numpy.typing import DTypeLike

__all__ = ["DenseKeywords", "Keywords", "Options", "Record", "options"]

SparsePolicy = Literal["error", "dense", "scipy"]
RaggedPolicy = Literal["error", "object", "pad"]


class DenseKeywords(TypedDict, total=False):
    """The option keywords but ``sparse``: see :class:`Keywords`.

    (For the overload of ``to_numpy`` whose ``sparse="scipy"`` may give a scipy array.)
    """

    copy: bool | None
    dtype: Any
    allow_transfer: bool | None
    upcast: bool | None
    ragged: RaggedPolicy | None
    float_dtype: Any


class Keywords(DenseKeywords, total=False):
    """The option keywords every conversion function takes; ``None`` means "not given".

    Written once here; each public function takes them as ``**Unpack[Keywords]``,
    and :func:`signature` spells them out for ``help()`` and ``inspect``.
    """

    sparse: SparsePolicy | None


#: The option keywords, in the order signatures list them.
KEYWORDS = ("copy", "dtype", "allow_transfer", "upcast", "sparse", "ragged", "float_dtype")
_KEYWORD_SET = frozenset(KEYWORDS)

_set_field = object.__setattr__

_SPARSE = ("error", "dense", "scipy")
# The types a yes-or-no option may have (NumPy's bool; 0 and 1 compare equal to them).
_FLAG_TYPES = frozenset({type(None), bool, int, np.bool_})
_RAGGED = ("error", "object", "pad")


class Record:
    """An immutable value with named fields (``_FIELDS``): what Options and Plan share.

    A class written out rather than a dataclass: generating a dataclass's methods
    costs milliseconds at import, which `import interop` does not pay. Subclasses
    declare ``__slots__ = _FIELDS``, set the fields in their ``__init__`` with
    ``object.__setattr__``, and define their own equality and hash.
    """

    __slots__ = ()
    _FIELDS: ClassVar[tuple[str, ...]] = ()
    #: How many of the first fields ``repr`` shows (``None``: all).
    _SHOWN: ClassVar[int | None] = None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(
            f"cannot assign to field {name!r}: {type(self).__name__} objects are immutable"
        )

    def __delattr__(self, name: str) -> None:
        raise AttributeError(
            f"cannot delete field {name!r}: {type(self).__name__} objects are immutable"
        )

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._FIELDS)

    def _fields(self) -> dict[str, Any]:
        return dict(zip(self._FIELDS, self._values(), strict=True))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._FIELDS[: self._SHOWN])
        return f"{type(self).__name__}({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._values())


class Options(Record):
    """The resolved options of one conversion.

    Attributes:
        copy: ``None`` copies only when needed, ``True`` always returns memory the
            result owns, ``False`` never copies and raises ``CopyRequiredError``
            where a copy is unavoidable.
        dtype: A NumPy dtype to cast the result to, or ``None`` to keep the source's.
        allow_transfer: Whether data on an accelerator may be copied to host memory.
        upcast: Whether nonstandard dtypes (bfloat16, float8, int4, ...) become the
            nearest standard NumPy dtype instead of the exact ``ml_dtypes`` dtype.
        sparse: What to do with sparse tensors: ``"error"``, ``"dense"`` or ``"scipy"``.
        ragged: What to do with ragged/nested tensors: ``"error"``, ``"object"`` or ``"pad"``.
        float_dtype: A NumPy floating-point dtype to cast floating-point data to
            (bfloat16, float8 and the other ml_dtypes floats included), leaving
            integers, booleans and complex numbers alone; ``None`` to keep them all.

    The constructor checks its arguments as the keywords of a conversion are checked
    (``TypeError`` or ``ValueError``, with the same messages) and makes the dtypes
    NumPy dtypes, so that options that compare equal hash equal.
    """

    # The fields are the option keywords, in their order; the hash is made once,
    # since every cached plan is found by it.
    _FIELDS = KEYWORDS
    __slots__ = (*KEYWORDS, "_hash")

    copy: bool | None
    dtype: np.dtype[Any] | None
    allow_transfer: bool
    upcast: bool
    sparse: SparsePolicy
    ragged: RaggedPolicy
    float_dtype: np.dtype[Any] | None
    _hash: int

    def __init__(
        self,
        copy: bool | None = None,
        dtype: DTypeLike | None = None,
        allow_transfer: bool = True,
        upcast: bool = False,
        sparse: SparsePolicy = "error",
        ragged: RaggedPolicy = "error",
        float_dtype: DTypeLike | None = None,
    ) -> None:
        # Checked as the keywords of a call are (they arrive here too), and the dtypes
        # made NumPy dtypes: ``np.float32`` and ``np.dtype("float32")`` compare equal,
        # so they must hash equal.
        # (The types first: `in` would compare an array element by element.)
        if type(copy) not in _FLAG_TYPES or copy not in (None, True, False):
            raise TypeError(f"expected copy to be None, True or False, got {copy!r}")
        if type(allow_transfer) not in _FLAG_TYPES or allow_transfer not in (True, False):
            raise TypeError(f"expected allow_transfer to be True or False, got {allow_transfer!r}")
        if type(upcast) not in _FLAG_TYPES or upcast not in (True, False):
            raise TypeError(f"expected upcast to be True or False, got {upcast!r}")
        if type(sparse) is not str or sparse not in _SPARSE:
            raise ValueError(f"expected sparse to be one of {_SPARSE}, got {sparse!r}")
        if type(ragged) is not str or ragged not in _RAGGED:
            raise ValueError(f"expected ragged to be one of {_RAGGED}, got {ragged!r}")
        dtype = _as_dtype(dtype, "dtype")
        float_dtype = _as_dtype(float_dtype, "float_dtype")
        if float_dtype is not None:
            if not is_float(float_dtype):
                raise TypeError(
                    f"expected float_dtype to be a floating-point dtype, got {float_dtype}. "
                    "hint: use dtype= to cast every array, whatever its kind"
                )
            if dtype is not None:
                raise TypeError(
                    f"expected one of dtype and float_dtype, got both ({dtype} and "
                    f"{float_dtype}): dtype= casts every array, float_dtype= only "
                    "floating-point ones. hint: keep the one you mean"
                )
        init = _set_field
        # bool(): 1, 0 and np.bool_ pass the checks above, and the rest of the library
        # tests ``copy is True`` / ``copy is False``.
        init(self, "copy", None if copy is None else bool(copy))
        init(self, "dtype", dtype)
        init(self, "allow_transfer", bool(allow_transfer))
        init(self, "upcast", bool(upcast))
        init(self, "sparse", sparse)
        init(self, "ragged", ragged)
        init(self, "float_dtype", float_dtype)
        init(self, "_hash", hash(self._values()))

    def __eq__(self, other: object) -> bool:
        # NumPy compares np.dtype("float64") == None as True (None means the default
        # dtype to NumPy), which would make a cast to float64 equal to no cast at all.
        if not isinstance(other, Options):
            return NotImplemented
        return (
            self.copy is other.copy
            and same_dtype(self.dtype, other.dtype)
            and self.allow_transfer is other.allow_transfer
            and self.upcast is other.upcast
            and self.sparse == other.sparse
            and self.ragged == other.ragged
            and same_dtype(self.float_dtype, other.float_dtype)
        )

    def __hash__(self) -> int:
        return self._hash

    def replace(self, **changes: Any) -> Options:
        """A copy of these options with ``changes`` applied and validated."""
        return _validated(**{**self._fields(), **changes})


def same_dtype(a: np.dtype[Any] | None, b: np.dtype[Any] | None) -> bool:
    """Whether two dtypes, either of them possibly ``None`` (no dtype), are the same."""
    if a is None or b is None:
        return a is b
    return a == b


def _validated(
    *,
    copy: Any,
    dtype: Any,
    allow_transfer: Any,
    upcast: Any,
    sparse: Any,
    ragged: Any,
    float_dtype: Any = None,
) -> Options:
    """Checked options (the :class:`Options` constructor checks), :data:`DEFAULT` where equal."""
    options = Options(copy, dtype, allow_transfer, upcast, sparse, ragged, float_dtype)
    # Compare the dtypes by identity first: NumPy reads ``None`` as float64, so
    # ``np.dtype('float64') == None`` is True and ``==`` alone would drop the cast.
    if options.dtype is None and options.float_dtype is None and options == DEFAULT:
        return DEFAULT
    return options


def _as_dtype(dtype: Any, name: str) -> np.dtype[Any] | None:
    if dtype is None:
        return None
    try:
        found: np.dtype[Any] = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"expected {name} to be a NumPy dtype or None, got {dtype!r}; "
            "hint: pass a NumPy dtype such as np.float32 or ml_dtypes.bfloat16"
        ) from exc
    if found.subdtype is not None:
        # NumPy spreads a subarray dtype into the shape: the result would have more
        # axes than the input, and the dtype of its elements instead.
        raise TypeError(
            f"expected {name} to be a dtype of one element, got the subarray dtype {found}; "
            f"hint: pass its element dtype ({found.subdtype[0]}), and reshape the result"
        )
    return found


def is_float(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` holds real floating-point numbers (NumPy's or ml_dtypes' formats)."""
    if dtype.kind == "f":
        return True
    # ml_dtypes' floats have kind "V"; their names say what they are.
    return dtype.type.__module__ == "ml_dtypes" and dtype.name.startswith(("float", "bfloat"))


DEFAULT = Options()
_current: ContextVar[Options] = ContextVar("interop_options", default=DEFAULT)
current = _current.get


def for_convert(copy: bool | None) -> Options:
    """The options :func:`interop.convert` follows: ``copy``, and the block's ``allow_transfer``.

    ``copy`` given here wins over the block's. Nothing else of a block applies:
    convert keeps the dtype, to every target alike.
    """
    base = _current.get()
    if base is DEFAULT and copy is None:
        return DEFAULT
    return DEFAULT.replace(
        copy=base.copy if copy is None else copy, allow_transfer=base.allow_transfer
    )


@contextlib.contextmanager
def in_force(options: Options, /) -> Iterator[None]:
    """Run the ``with`` block with exactly ``options`` in force, whatever the block around it."""
    token = _current.set(options)
    try:
        yield
    finally:
        _current.reset(token)


def resolve(
    copy: bool | None,
    dtype: Any,
    allow_transfer: bool | None,
    upcast: bool | None,
    sparse: str | None,
    ragged: str | None,
    float_dtype: Any = None,
) -> Options:
    """Merge the keywords of one call (``None`` meaning "not given") over the active options."""
    base = _current.get()
    if (
        dtype is None
        and allow_transfer is None
        and upcast is None
        and sparse is None
        and ragged is None
        and float_dtype is None
        and (copy is None or copy is base.copy)
    ):
        return base
    # A dtype given here replaces a float_dtype of the block, and the reverse.
    if dtype is not None and float_dtype is None:
        float_dtype = None
        base_float = None
    else:
        base_float = base.float_dtype
    base_dtype = None if float_dtype is not None else base.dtype
    return _validated(
        copy=base.copy if copy is None else copy,
        dtype=base_dtype if dtype is None else dtype,
        float_dtype=base_float if float_dtype is None else float_dtype,
        allow_transfer=base.allow_transfer if allow_transfer is None else allow_transfer,
        upcast=base.upcast if upcast is None else upcast,
        sparse=base.sparse if sparse is None else sparse,
        ragged=base.ragged if ragged is None else ragged,
    )


# Keyword dicts already resolved, with the options in force: (options, keywords,
# their values' types) -> the options of the call. Only values that always mean the
# same are keys: None, booleans, strings, NumPy's scalar types and Python's, and
# NumPy dtypes without metadata (dtypes compare equal whatever their metadata; any
# other class is read through its ``dtype`` attribute, which may change). They hash
# cheaply and never raise, and with their types in the key, values that compare
# equal across types (NumPy says ``np.dtype("float64") == None``) cannot be taken
# for each other.
_resolved: dict[Any, Options] = {}
_MAX_RESOLVED = 256
_PLAIN = frozenset({type(None), bool, str})
_SCALAR_TYPES = frozenset({bool, int, float, complex, str, bytes, object})
_dtype_class = np.dtype
_generic = np.generic


def _fixed(value: Any) -> bool:
    """Whether ``value`` as an option always means the same (see ``_resolved``)."""
    if type(value) is type:
        return value in _SCALAR_TYPES or issubclass(value, _generic)
    return isinstance(value, _dtype_class) and value.metadata is None


def from_keywords(keywords: Mapping[str, Any], caller: str, /) -> Options:
    """The options of a call given ``keywords`` (a :class:`Keywords` dict) by name."""
    key: Any = None
    for value in keywords.values():
        if type(value) not in _PLAIN and not _fixed(value):
            break
    else:
        key = (_current.get(), tuple(keywords.items()), tuple(map(type, keywords.values())))
        found = _resolved.get(key)
        if found is not None:
            return found
    for name in keywords:
        if name not in _KEYWORD_SET:
            raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}")
    get = keywords.get
    options = resolve(
        get("copy"),
        get("dtype"),
        get("allow_transfer"),
        get("upcast"),
        get("sparse"),
        get("ragged"),
        get("float_dtype"),
    )
    if key is not None:
        if len(_resolved) >= _MAX_RESOLVED:
            _resolved.clear()
        _resolved[key] = options
    return options


def signature(
    func: Callable[..., Any], /, *, positional: tuple[str, ...] = ("x",)
) -> inspect.Signature:
    """``func``'s signature with the :class:`Keywords` spelled out as keyword-only parameters.

    ``positional``: the names of its positional-only parameters. Other keyword-only
    parameters of ``func`` (``to=``, ``prefetch=``, ...) come first, as declared.
    """
    own = inspect.signature(func)
    params = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_ONLY) for name in positional]
    params += [p for p in own.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    params += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in KEYWORDS
    ]
    return own.replace(parameters=params)


@contextlib.contextmanager
def options(**keywords: Unpack[Keywords]) -> Iterator[Options]:
    """Set the defaults of every conversion inside the ``with`` block.

    The block applies to :func:`interop.to_numpy`, :func:`interop.to_numpy_tree`,
    :func:`interop.explain` and :func:`interop.iter_numpy`; of it,
    :func:`interop.convert` follows ``copy`` and ``allow_transfer`` only (it keeps
    the dtype, whatever the target). Keywords left out
    (``None``) keep the value of the enclosing block. Explicit keywords of a call
    inside the block still win.

    The block is private to the current thread or asyncio task: other threads and
    tasks keep their own options, and a thread started inside the block does not
    inherit it (run it with ``contextvars.copy_context().run`` for that). An
    :func:`interop.iter_numpy` pipeline takes the options in force when it is
    created, and keeps them wherever its batches are consumed.

    The block is a :class:`contextvars.ContextVar` setting: its end restores the
    options in force when it began, and it must end in the context it began in.
    A block around a ``yield`` (in a generator or an async generator) stays in
    force in the code that consumes the generator, for as long as the generator is
    suspended inside it. Blocks that end out of order (enter A, enter B, end A,
    end B, as two such generators may) leave A's options in force after both have
    ended. A block ended in another context (its generator closed inside
    ``contextvars.Context.run``, say) raises the ``ValueError`` of
    :meth:`contextvars.ContextVar.reset` and stays in force where it began. Keep
    ``yield`` out of the block, or pass the keywords to the calls instead.

    Note that ``copy=None`` cannot be set here, since ``None`` means "keep": an
    inner block cannot turn an outer ``copy=True`` back to the default.

    Args:
        copy: Default ``copy`` for the block.
        dtype: Default ``dtype`` for the block.
        allow_transfer: Default ``allow_transfer``; ``False`` proves a block never
            moves data from an accelerator.
        upcast: Default ``upcast``.
        sparse: Default sparse policy.
        ragged: Default ragged policy.
        float_dtype: Default ``float_dtype``: cast floating-point data only.

    Yields:
        The options now in force.

    Example:
        >>> import numpy as np, interop
        >>> with interop.options(copy=True):
        ...     a = np.arange(3)
        ...     interop.to_numpy(a) is a
        False
    """
    new = from_keywords(keywords, "options")
    token = _current.set(new)
    try:
        yield new
    finally:
        _current.reset(token)


# help() and inspect show the keywords themselves.
options.__wrapped__.__signature__ = signature(options.__wrapped__, positional=())  # type: ignore[attr-defined]
