"""Data pipelines: :func:`iter_numpy` converts each batch of an iterable as it is consumed.

:func:`iter_numpy` returns a :class:`NumpyBatches`, an iterable rather than an
iterator, so that a source that can be iterated again (a ``DataLoader``, a
``tf.data.Dataset``, a list) can be iterated again through it too: each ``iter()``
asks the source for a fresh iterator. A one-shot source (a generator) stays
one-shot.

Prefetching is done on the calling thread and needs no thread of its own: before
a batch whose data is on an accelerator is handed out, the next ``prefetch``
batches are taken from the source and their device-to-host copies started (see
:mod:`interop._transfer`), so that they run while the consumer works on the
current batch. Handing a batch out waits for that batch's own copies only (each
on the event recorded right after it), never for a whole stream, which also
carries the copies of the batches prefetched behind it. Only copies into pinned
memory run ahead: the leaves of a batch beyond its pinned bound are staged into
pageable memory when that batch is handed out (see :mod:`interop._transfer`).
Host data has nothing to overlap: it is converted (zero-copy where possible) when
taken, and the source is not asked for the next batch before a host batch is
handed out, so that a source that refills one buffer (a ring buffer) cannot change
a batch before the consumer gets it. A batch the consumer keeps is still a view of
the source's memory, as :func:`interop.to_numpy`'s contract says, and such a
source changes it when it makes the next batch: ``copy=True`` keeps batches. The
library does not copy on its own, since it cannot tell a source that refills its
buffer from one that makes new tensors. Host leaves of a batch that also holds
device data are views taken when that batch was pulled.

The options are those in force where :func:`iter_numpy` is called, captured then:
a pipeline built inside ``with interop.options(...)`` keeps them when it is
consumed after the block, in another thread or in another task.
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from interop import _options, _registry
from interop._errors import retell_policy, type_name
from interop._options import Keywords, Options
from interop._tree import Started, start

if TYPE_CHECKING:
    from typing import Unpack

T_co = TypeVar("T_co", covariant=True)

__all__ = ["Batches", "NumpyBatchIterator", "NumpyBatches", "iter_numpy", "iterate_source"]


class _Failed:
    """An error met while prefetching, raised when its turn comes."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def cancel(self) -> None:
        self.error = None  # type: ignore[assignment]


class NumpyBatchIterator(Iterator[Any]):
    """One pass over the source: yields each batch converted by :func:`interop.to_numpy_tree`.

    (Or by ``convert``, where given: :func:`interop.iter_convert`'s conversion to
    another framework, which has no copies to start ahead.) A batch that fails to
    convert raises when its turn comes, and the pass goes on with the next one.
    Closing it (``close()``, leaving a ``with`` block, or dropping the last
    reference, as a ``for`` loop left with ``break`` does) waits for the copies
    already started, drops the prefetched batches, and closes the source iterator
    if it has a ``close()`` method. Threads may share one pass: each batch goes to
    one of them, in the source's order of taking.
    """

    __slots__ = (
        "_ahead",
        "_convert",
        "_entry",
        "_exhausted",
        "_lock",
        "_options",
        "_prefetch",
        "_source",
    )

    def __init__(
        self,
        source: Iterator[Any],
        prefetch: int,
        options: Options,
        entry: str | None = None,
        convert: Callable[[Any], Any] | None = None,
    ) -> None:
        self._source: Iterator[Any] | None = source
        self._prefetch = prefetch
        self._options = options
        # The public function whose errors these are, where it is not iter_numpy (see
        # retell_policy): iter_convert's.
        self._entry = entry
        self._convert = convert
        # Batches taken from the source, oldest first: converted (host data), their
        # copies under way (a Started), or the error met taking one (a _Failed).
        self._ahead: collections.deque[Any] = collections.deque()
        self._exhausted = False
        # One taker at a time: between taking a batch and handing it out, another
        # thread's __next__ would find the queue empty and end the pass early.
        self._lock = threading.RLock()

    def __iter__(self) -> NumpyBatchIterator:
        return self

    def __next__(self) -> Any:
        with self._lock:
            return self._next()

    def _next(self) -> Any:
        ahead = self._ahead
        if not ahead:
            self._take()
            if not ahead:
                self._close()
                raise StopIteration
        # Start the next batches before waiting for this one, but only behind batches
        # whose device-to-host copies are under way: pulling a batch from the source
        # may refill the memory that a batch converted zero-copy still shows (a ring
        # buffer), so a host batch is handed out before the source is asked again.
        while len(ahead) <= self._prefetch and not self._exhausted and type(ahead[-1]) is Started:
            self._take()
        item = ahead.popleft()
        cls = type(item)
        if cls is Started:
            return item.result()
        if cls is _Failed:
            error = item.error
            item.error = None
            if self._entry is not None:
                retell_policy(error, self._entry)
            raise error
        return item

    def _take(self) -> None:
        """Take one batch from the source and start its conversion."""
        source = self._source
        if source is None or self._exhausted:
            return
        try:
            batch = next(source)
        except StopIteration:
            self._exhausted = True
            return
        except Exception as exc:
            # Hand out the batches taken before this error first.
            self._ahead.append(_Failed(exc))
            return
        convert = self._convert
        try:
            self._ahead.append(start(batch, self._options) if convert is None else convert(batch))
        except Exception as exc:
            self._ahead.append(_Failed(exc))

    def close(self) -> None:
        """Release the source iterator and every prefetched batch (idempotent)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        ahead = self._ahead
        while ahead:
            item = ahead.popleft()
            if type(item) is Started or type(item) is _Failed:
                item.cancel()
        source = self._source
        self._source = None
        self._exhausted = True
        if source is not None:
            close = getattr(source, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> NumpyBatchIterator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if self._source is None and not self._ahead:
            return  # closed, or run to its end: nothing to release
        # Best effort: at interpreter exit the source (and the modules this one uses)
        # may already be torn down (contextlib.suppress would be a module global, which
        # may be gone then too); an error here could only be printed as ignored.
        try:  # noqa: SIM105
            self.close()
        except Exception:
            pass


@runtime_checkable
class Batches(Protocol[T_co]):
    """What :func:`interop.iter_numpy` and :func:`interop.iter_convert` return.

    An iterable of converted batches: each ``iter()`` is a new pass over the source
    (where the source can be iterated again), and ``len()`` is the source's length,
    where it has one (else ``TypeError``, as for the source). For annotations:
    ``batches: interop.Batches[dict[str, np.ndarray]] = interop.iter_numpy(loader)``.
    """

    def __iter__(self) -> Iterator[T_co]: ...

    def __len__(self) -> int: ...


class NumpyBatches(Iterable[Any]):
    """The batches of a source, converted to NumPy as they are consumed.

    Each ``iter()`` starts a new pass (a :class:`NumpyBatchIterator`) over a fresh
    iterator of the source. ``len()`` is the source's length, where it has one.
    """

    __slots__ = ("_entry", "_options", "_prefetch", "_source")

    def __init__(
        self, source: Iterable[Any], prefetch: int, options: Options, entry: str | None = None
    ) -> None:
        self._source = source
        self._prefetch = prefetch
        self._options = options
        self._entry = entry

    def __iter__(self) -> NumpyBatchIterator:
        return NumpyBatchIterator(
            iterate_source(self._source), self._prefetch, self._options, self._entry
        )

    def __len__(self) -> int:
        return source_length(self._source)

    def __repr__(self) -> str:
        return f"NumpyBatches({type_name(self._source)}, prefetch={self._prefetch})"


def source_length(source: Iterable[Any]) -> int:
    """``len(source)``, or the library's ``TypeError`` naming a source without a length."""
    try:
        length = len(source)  # type: ignore[arg-type]
    except TypeError as exc:
        raise TypeError(
            f"expected a source with a length, got `{type_name(source)}`: {exc}"
        ) from exc
    return length


def iterate_source(source: Iterable[Any]) -> Iterator[Any]:
    """A new iterator over ``source``: its framework's, where a backend knows it."""
    for backend in _registry.active():
        it: Iterator[Any] | None = _registry.consult(
            backend, "iterate()", functools.partial(backend.iterate, source)
        )
        if it is not None and it is not _registry.SKIPPED:
            return it
    return iter(source)


def iter_numpy(
    iterable: Iterable[Any], /, *, prefetch: int = 1, **options: Unpack[Keywords]
) -> Batches[Any]:
    """Wrap an iterable of batches so that each comes out converted to NumPy.

    Each batch (a tensor, or any structure of them: a tuple from a
    ``torch.utils.data.DataLoader``, a dict from a ``tf.data.Dataset``, a pytree of
    JAX arrays) is converted with :func:`interop.to_numpy_tree` and the keywords
    given here. ``prefetch=N`` takes up to ``N`` batches ahead of the one handed
    out and starts their device-to-host copies, so that they can run during the work
    done on the current batch (verified on the simulated device of the tests; on a
    real GPU see the Devices page of the documentation); ``prefetch=0`` converts one
    batch at a time, when asked for.

    The result can be iterated again when the source can (a ``DataLoader``, a
    ``Dataset``, a list), and has ``len()`` when the source has. Leaving a loop early
    releases the source iterator and the prefetched batches. The options in force
    here apply, even if the batches are consumed outside this ``options`` block.

    Host batches are zero-copy views of what the source yields: to keep batches from
    a source that refills one buffer for every batch, pass ``copy=True``.

    Args:
        iterable: The source of batches.
        prefetch: How many batches to take and start ahead of the one handed out.
        copy: The copy policy of :func:`interop.to_numpy`.
        dtype: Cast every array to this dtype.
        allow_transfer: Whether device-to-host copies are allowed.
        upcast: Turn nonstandard dtypes into the nearest standard one.
        sparse: The sparse policy, as in :func:`interop.to_numpy`.
        ragged: The ragged policy, as in :func:`interop.to_numpy`.

    Returns:
        An iterable of converted batches.

    Raises:
        TypeError: ``iterable`` is not iterable, or ``prefetch`` is not an integer.
        ValueError: ``prefetch`` is negative.

    Example:
        >>> import numpy as np, interop
        >>> batches = interop.iter_numpy([(np.arange(2), 0), (np.arange(2) + 2, 1)])
        >>> len(batches), [x.tolist() for x, _ in batches]
        (2, [[0, 1], [2, 3]])
    """
    check_batches(iterable, prefetch)
    opts = _options.from_keywords(options, "iter_numpy") if options else _options.current()
    return NumpyBatches(iterable, prefetch, opts)


def check_batches(iterable: Any, prefetch: Any) -> None:
    """Raise unless ``iterable`` can be iterated and ``prefetch`` is an int >= 0."""
    if not (hasattr(type(iterable), "__iter__") or hasattr(type(iterable), "__getitem__")):
        raise TypeError(
            f"expected an iterable of batches, got `{type_name(iterable)}`. "
            "hint: pass a DataLoader, a tf.data.Dataset, a generator or a list"
        )
    if isinstance(prefetch, bool) or not isinstance(prefetch, int):
        raise TypeError(f"expected prefetch to be an int >= 0, got `{type_name(prefetch)}`")
    if prefetch < 0:
        raise ValueError(f"expected prefetch to be an int >= 0, got {prefetch}")


iter_numpy.__signature__ = _options.signature(iter_numpy, positional=("iterable",))  # type: ignore[attr-defined]
