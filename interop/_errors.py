"""The exception hierarchy of :mod:`interop`.

Every error the library raises on purpose derives from :class:`InteropError`, and
also from the built-in class a caller would naturally catch (``TypeError`` for an
unsupported type, ``ValueError`` for a refused copy, ...), so that code written
against NumPy's own errors keeps working.
"""

from __future__ import annotations

__all__ = [
    "ConversionError",
    "CopyRequiredError",
    "InteropError",
    "TransferError",
    "UnsupportedTypeError",
    "is_cast_error",
    "policy_error",
    "retell_policy",
    "text_format_error",
    "truth_cast_error",
    "values_failed",
]


class InteropError(Exception):
    """Base class of every error raised by :mod:`interop`."""


# Exception's own constructor, also for the subclasses that derive from ValueError,
# TypeError or RuntimeError (whose constructors take the same arguments): TensorFlow's
# AutoGraph re-raises an error that leaves a tf.function as its own type only where
# its constructor is Exception's (else as a StagingError, which no caller expects).
InteropError.__init__ = Exception.__init__  # type: ignore[method-assign]


class UnsupportedTypeError(InteropError, TypeError):
    """No registered backend knows how to convert this object."""


class CopyRequiredError(InteropError, ValueError):
    """``copy=False`` was requested, but the conversion cannot avoid a copy."""


class TransferError(InteropError, RuntimeError):
    """``allow_transfer=False`` was requested, but the data is not in host memory."""


class ConversionError(InteropError, ValueError):
    """The object is recognised, but it holds no data that can be converted."""

    #: The keyword of :func:`interop.to_numpy` (``"sparse"``, ``"ragged"``, ``"dtype"``)
    #: whose other value would convert the object, which the hint asks for; ``None``
    #: otherwise.
    keyword: str | None = None


def policy_error(message: str, keyword: str) -> ConversionError:
    """A :class:`ConversionError` whose hint asks for another value of ``keyword``."""
    exc = ConversionError(message)
    exc.keyword = keyword
    return exc


def retell_policy(exc: BaseException, entry: str) -> None:
    """Say in the hint of a :func:`policy_error` how ``entry`` gets the keyword's effect.

    The hint asks for a keyword that :func:`interop.convert`, its kin
    (``entry="convert"``: :func:`interop.convert_tree`, :func:`interop.iter_convert`),
    :func:`interop.numpy_function` (``"numpy_function"``) and the batches of
    :mod:`interop.ray` (``"ray"``) do not take.
    ``convert`` keeps the sparse and ragged policies at their default, so the way is
    the NumPy array :func:`interop.to_numpy` makes with the keyword;
    ``numpy_function`` follows an :func:`interop.options` block. The error is the
    library's own, made during the call: its message changes in place, once, and its
    class, traceback and cause stay. Any other exception is left as it is.
    """
    keyword = getattr(exc, "keyword", None)
    if not isinstance(exc, ConversionError) or keyword is None:
        return
    if entry == "numpy_function" and keyword == "dtype":
        return  # (the decorator takes dtype=: the hint holds as it is)
    exc.keyword = None
    if entry == "numpy_function":
        advice = (
            f"numpy_function takes no {keyword}=: call the function inside "
            f"`with interop.options({keyword}=...)`"
        )
    elif entry == "ray":
        advice = (
            f"interop.ray's batches take no {keyword}=: convert such a column in a function "
            "of your own that Ray gives pyarrow batches (ds.map_batches(fn, "
            "batch_format='pyarrow'), ds.iter_batches(batch_format='pyarrow')), with "
            f"interop.to_numpy(batch.column(name), {keyword}=...), or give its rows one "
            "shape and no nulls"
        )
    else:
        advice = (
            f"convert, convert_tree and iter_convert take no {keyword}=: pass it to "
            "interop.to_numpy (or to_numpy_tree, iter_numpy) and convert the NumPy result"
        )
    exc.args = (f"{exc}; {advice}",)


def values_failed(exc: Exception) -> Exception:
    """``exc``, NumPy's error for values a cast step of the library cannot take,
    marked to reach the caller as it is (see :func:`is_cast_error`)."""
    exc.__interop_cast__ = True  # type: ignore[attr-defined]
    return exc


def is_cast_error(exc: BaseException) -> bool:
    """Whether ``exc`` is NumPy's error from a cast step (:func:`values_failed`): not the
    source's failure, whatever object the values came from."""
    return getattr(exc, "__interop_cast__", False) is True


def truth_cast_error(got: str, hint: str) -> ConversionError:
    """The refusal of ``dtype=bool`` for text that the conversion turns into Python objects.

    NumPy casts objects to bool by their truth: the text ``'False'`` and ``'0'``
    would be ``True``. ``got`` describes the source (``"`T` of string"``), ``hint``
    says how its own library turns text into booleans.
    """
    return ConversionError(
        f"expected booleans, got {got}, whose values become Python objects that NumPy "
        f"casts to bool by their truth (the text 'False' and '0' would be True). hint: {hint}"
    )


def text_format_error(got: str, target: object) -> ConversionError:
    """The refusal of an ``ml_dtypes`` ``dtype=`` for text that becomes Python objects.

    ``ml_dtypes`` parses no text: the cast would fail midway for every value.
    """
    return ConversionError(
        f"expected a dtype= that text casts to, got dtype={target} for {got}, whose "
        "values become Python objects that no ml_dtypes format parses. hint: ask for "
        "dtype=np.float32 (or np.int32), then cast that array with .astype(...)"
    )


def type_name(obj: object) -> str:
    """The qualified name of ``type(obj)``, as used in every error message."""
    cls = type(obj)
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"
