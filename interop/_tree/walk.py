"""The walks of :func:`interop.to_numpy_tree`: every array leaf through the one core path.

There are two walks. The recursive one (:func:`_walk_fast`) takes the common
case: no accelerator data and at most ``_FAST_DEPTH`` levels; it converts a
container's leaves in one tight loop, with no call per leaf besides the conversion
itself. Anything else goes to the iterative one (an explicit stack, no recursion),
which converts a tree 10,000 levels deep like any other, finds cycles, batches
device-to-host copies and has the path of every leaf at hand. Both name the path
of a failing leaf, as in ``tree['outputs'][2]``.

Each array leaf is converted by :mod:`interop._core`'s path: its backend's host
view under the default options, else the backend's cached plan, exactly as
:func:`interop.to_numpy` converts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from interop import _core, _registry
from interop._backend import Backend
from interop._options import DEFAULT, Options
from interop._transfer import Batch, Pending, device_checks
from interop._tree.containers import (
    classify,
    kinds,
    leaf_backend,
    leaf_backends,
    leaf_view,
    leaf_views,
    open_frame,
    python_backend,
    sync,
)
from interop._tree.frames import (
    _DELAYED,
    _DICT,
    _ITEMS,
    _KEY,
    _KIND,
    _LIST,
    _MISSING,
    _OTHER,
    _OUT,
    _ROOT,
    _SRC,
    _TUPLE,
    Frame,
)
from interop._tree.paths import (
    changed_meanwhile,
    check_cycles,
    container_error,
    failed_between,
    located,
    path_of,
)
from interop._tree.rebuild import build

__all__ = ["Started", "map_leaves", "start"]

_ndarray = np.ndarray


class _Placeholder:
    """A value of the result that exists only once the batch's copies are complete."""

    __slots__ = ("frame", "path", "value")

    def __init__(self, frame: Frame, path: str) -> None:
        self.frame = frame
        self.path = path
        self.value: Any = None


class Started:
    """A tree whose device-to-host copies are under way; :meth:`result` waits for them."""

    __slots__ = ("_batch", "_placeholders", "_value")

    def __init__(self, value: Any, batch: Batch | None, placeholders: list[_Placeholder]) -> None:
        self._value = value
        self._batch = batch
        self._placeholders = placeholders

    def result(self) -> Any:
        """The converted tree, once every copy is complete (waits at most once)."""
        batch = self._batch
        if batch is None:
            return self._value
        self._batch = None
        try:
            batch.synchronize()
            for pending in batch.pending:
                try:
                    pending.finish()
                except Exception as exc:
                    raise located(exc, pending.path) from exc
        except BaseException:
            batch.cancel()
            raise
        value = self._value
        for holder in self._placeholders:
            out = holder.frame[_OUT]
            keys = out.keys() if isinstance(out, dict) else range(len(out))
            for k in keys:
                item = out[k]
                if type(item) is Pending or type(item) is _Placeholder:
                    out[k] = item.value
            try:
                holder.value = build(holder.frame)
            except Exception as exc:
                raise located(exc, holder.path) from exc
        if type(value) is _Placeholder:
            value = value.value
        self._value = value
        self._placeholders = []
        return value

    def cancel(self) -> None:
        """Wait for the copies already started and drop them, without converting."""
        batch = self._batch
        self._batch = None
        self._value = None
        self._placeholders = []
        if batch is not None:
            batch.cancel()


def start(tree: Any, options: Options, *, keep: Backend | None = None) -> Any:
    """Convert the host leaves of ``tree`` and start the copies of its device leaves.

    ``keep``: a backend whose objects are leaves returned as they are, not converted.

    Returns the converted tree itself when nothing waits for a copy (every tree on
    a machine without an accelerator), else a :class:`Started` whose ``result()``
    waits for the copies; callers tell them apart with ``type(out) is Started``. A
    tree that is itself a :class:`Started` cannot occur: the class is private.
    """
    active = _registry.active()
    sync(active)
    checks = device_checks(active)
    # The recursive walk first; it leaves what it does not handle (accelerator data,
    # deep or cyclic trees) to the iterative one, which walks again from the start,
    # batches the copies and finds cycles.
    if checks:  # an accelerator is in use: its copies are batched by the iterative walk
        return _start_iterative(tree, options, checks, keep, [])
    done: list[Any] = []
    out = _walk_fast(tree, options, keep, done)
    if out is not _GIVE_UP:
        return out
    return _start_iterative(tree, options, checks, keep, done)


def _start_iterative(
    tree: Any,
    options: Options,
    checks: dict[Backend, Any],
    keep: Backend | None,
    done: list[Any],
) -> Any:
    """The iterative walk of :func:`start`: batched copies, paths, cycles, any depth.

    ``done``: ``(leaf, result)`` of the leaves the recursive walk converted through
    their plans before it gave up, in the order both walks meet them; they are not
    converted again (a Dask leaf is computed once), as long as the leaf met is the
    very object recorded.
    """
    reuse = iter(done)
    next_done = next(reuse, None)
    cache_get = leaf_backends.get
    lookup = leaf_backend
    kinds_get = kinds.get
    python = python_backend()
    ndarray = _ndarray
    as_is = options is DEFAULT  # host views apply, and a NumPy array stays the same object
    views_get = leaf_views.get
    view_of = leaf_view
    planned = _core.convert_planned
    batch: Batch | None = None
    placeholders: list[_Placeholder] = []

    root: Frame = [_ROOT, None, enumerate((tree,)), [None], _MISSING, False]
    stack = [root]
    frame = root
    k: Any = _MISSING
    try:
        while True:
            out = frame[_OUT]
            for k, v in frame[_ITEMS]:
                cls = type(v)
                if cls is ndarray and as_is:
                    out[k] = v
                    continue
                if as_is:
                    f = views_get(cls, _MISSING)
                    if f is _MISSING:
                        f = view_of(cls)
                    if f is not None:
                        r = f(v)
                        if r is not None:
                            out[k] = r
                            continue
                b = cache_get(cls, _MISSING)
                if b is _MISSING:
                    b = lookup(cls)
                if b is not None and b is not python:
                    if b is keep:
                        out[k] = v
                        continue
                    if checks and b in checks and checks[b](v):
                        if batch is None:
                            batch = Batch()
                        converted = batch.start(b, v, options, path_of(stack, k))
                        if type(converted) is Pending:
                            frame[_DELAYED] = True
                        out[k] = converted
                    elif next_done is not None and next_done[0] is v:
                        out[k] = next_done[1]
                        next_done = next(reuse, None)
                    else:
                        next_done = None  # the tree changed meanwhile: convert afresh
                        out[k] = planned(v, b, options)
                    continue
                kind = kinds_get(cls)
                if kind is None:
                    kind = classify(cls, v)
                if kind == _OTHER:
                    out[k] = v
                    continue
                # A container: walk it before the rest of this one.
                frame = _descend(stack, kind, v, k)
                # Until the new frame yields its first child, a failure is its own.
                k = _MISSING
                break
            else:
                # Every child of this frame is converted: build its container.
                k = _MISSING
                kind = frame[_KIND]
                if frame[_DELAYED]:
                    result: Any = _Placeholder(frame, path_of(stack, _MISSING))
                    placeholders.append(result)
                elif kind in (_DICT, _LIST):
                    result = frame[_OUT]
                elif kind == _TUPLE:
                    result = tuple(frame[_OUT])
                else:
                    result = build(frame)
                stack.pop()
                if not stack:
                    if batch is None:  # nothing waits for a copy: the tree itself (see start)
                        return result
                    return Started(result, batch, placeholders)
                frame = stack[-1]
                frame[_OUT][frame[_KEY]] = result
                if type(result) is _Placeholder:
                    frame[_DELAYED] = True
    except Exception as exc:
        if batch is not None:
            batch.cancel()
        if hasattr(exc, "__interop_path__"):
            raise
        changed = None
        if isinstance(exc, RuntimeError):  # a dict or mapping changed while iterated
            changed = changed_meanwhile(frame[_SRC], exc)
        if changed is not None:
            raise located(changed, path_of(stack, _MISSING)) from exc
        # The container's own iteration (a mapping's items()), or the child k.
        where = path_of(stack, _MISSING if failed_between(frame[_OUT], k) else k)
        raise located(exc, where) from exc
    except BaseException:
        # An interrupt (KeyboardInterrupt, ...): the copies in flight still land
        # before their buffers and sources are dropped.
        if batch is not None:
            batch.cancel()
        raise


# How deep the recursive walk goes before it gives up (cycles, very deep trees) and
# leaves the tree to the iterative walk; well below Python's recursion limit.
_FAST_DEPTH = 64
# What the recursive walk returns when it leaves the tree to the iterative walk:
# a tree too deep for it, or a leaf on an accelerator.
_GIVE_UP: Any = object()


def _descend(stack: list[Frame], kind: int, x: Any, key: Any) -> Frame:
    """Push and return the frame of the container ``x``, the child ``key`` of the top frame.

    For the iterative walks (:func:`start`'s and :func:`map_leaves`). A failure of
    the container's own code (see :func:`open_frame`) is named by its path.
    """
    stack[-1][_KEY] = key
    if kind == _DICT:
        frame: Frame = [kind, x, iter(x.items()), {}, _MISSING, False]
    elif kind in (_LIST, _TUPLE):
        out = list(x)  # a copy taken at once, as in the recursive walk
        frame = [kind, x, enumerate(out), out, _MISSING, False]
    else:
        try:
            frame = open_frame(kind, x)
        except Exception as exc:  # the container's own code: anything
            raise located(container_error(x, exc), path_of(stack, key)) from exc
    stack.append(frame)
    if not len(stack) & 1023:
        # A structure that contains itself makes the stack grow without end; looking
        # for a repeated container now and then finds it at no cost per container.
        check_cycles(stack)
    return frame


def _frame_at(frame: Frame | None, kind: int, x: Any, key: Any) -> Frame:
    """A frame of the recursive walk's container ``x`` whose child ``key`` is walked."""
    if frame is None:
        frame = [kind, x, None, None, key, False]
    frame[_KEY] = key
    return frame


class _Failed(Exception):
    """A leaf failed inside the recursive walk; carries the keys down to it, innermost first."""

    def __init__(self, error: Exception, frame: Frame | None = None) -> None:
        self.error = error
        # The frame of each container down to the failure, innermost first, each
        # with the key of its child on the way; none where the container itself
        # failed to be rebuilt.
        self.frames: list[Frame] = [] if frame is None else [frame]


def _walk_fast(tree: Any, options: Options, keep: Backend | None, done: list[Any]) -> Any:
    """Convert ``tree`` recursively, as long as nothing unusual turns up.

    Per container, a recursive call costs a third of a step of the iterative walk
    in :func:`start`, so this is the common path where no accelerator is in use. It
    returns ``_GIVE_UP`` for a tree deeper than ``_FAST_DEPTH`` (a cycle, say), and
    :func:`start` then walks the tree iteratively, reusing the leaves recorded in
    ``done``. A failing leaf raises its error, named by its path, as the iterative
    walk would.
    """
    # Making the walker (a closure over a dozen cells) costs as much as converting
    # a leaf; a pipeline converts many small batches under the same options, so the
    # last one made is kept, in one tuple that threads read and replace whole.
    global _walker
    made = _walker
    if made[0] is options and made[2] is keep:
        walk = made[1]
    else:
        walk = _make_walker(options, keep)
        _walker = (options, walk, keep)
    kind = kinds.get(type(tree))
    if kind is None or kind == _OTHER:
        kind, tree = _ROOT, [tree]  # a leaf: convert it as the root's only item
    try:
        return walk(tree, kind, 0, done)
    except _Failed as failed:
        # The frames of the containers down to the failure, outermost first, each
        # with the key of its child on the way; the path is read as the iterative
        # walk reads its stack.
        stack = failed.frames[::-1]
        if not stack or stack[0][_KIND] != _ROOT:
            stack.insert(0, [_ROOT, None, None, None, 0, False])
        where = path_of(stack, stack[-1][_KEY])
        if hasattr(failed.error, "__interop_path__"):
            raise failed.error from failed.error.__cause__
        raise located(failed.error, where) from failed.error


def _make_walker(options: Options, keep: Backend | None) -> Any:
    """The recursive walk of :func:`_walk_fast` for these options and kept backend."""
    cache_get = leaf_backends.get
    lookup = leaf_backend
    kinds_get = kinds.get
    views_get = leaf_views.get
    view_of = leaf_view
    planned = _core.convert_planned
    python = python_backend()
    as_is = options is DEFAULT
    give_up = _GIVE_UP

    def walk(x: Any, kind: int, depth: int, done: list[Any]) -> Any:
        if depth > _FAST_DEPTH:
            return give_up
        frame = None
        out: Any
        items: Any
        if kind == _DICT:
            items, out = x.items(), {}
        elif kind in (_LIST, _TUPLE, _ROOT):
            # A copy taken at once: another thread changing the list meanwhile
            # changes neither the length nor the items read.
            out = list(x)
            items = enumerate(out)
        else:
            try:
                frame = open_frame(kind, x)
            except Exception as exc:  # the container's own code: anything
                raise _Failed(container_error(x, exc)) from exc
            items, out = frame[_ITEMS], frame[_OUT]
        k: Any = _MISSING
        # (A try block costs nothing until something is raised.)
        try:
            for k, v in items:
                cls = type(v)
                if as_is:
                    # The backend's host view first: the common leaf.
                    f = views_get(cls, _MISSING)
                    if f is _MISSING:
                        f = view_of(cls)
                    # (A NumPy array's host view is the array itself.)
                    if f is not None:
                        r = f(v)
                        if r is not None:
                            out[k] = r
                            continue
                if cls is dict:
                    child = _DICT  # the common container, never an array in a tree
                else:
                    b = cache_get(cls, _MISSING)
                    if b is _MISSING:
                        b = lookup(cls)
                    if b is not None and b is not python:
                        if b is keep:
                            out[k] = v
                            continue
                        r = planned(v, b, options)
                        out[k] = r
                        done.append((v, r))
                        continue
                    found = kinds_get(cls)
                    child = classify(cls, v) if found is None else found
                    if child == _OTHER:
                        out[k] = v
                        continue
                try:
                    r = walk(v, child, depth + 1, done)
                except _Failed as failed:
                    failed.frames.append(_frame_at(frame, kind, x, k))
                    raise
                if r is give_up:
                    return give_up
                out[k] = r
        except _Failed:
            raise
        except Exception as exc:
            # A dict changed while iterated, or a mapping whose items() fails, is the
            # container's failure; anything else, that of the child being converted.
            changed = changed_meanwhile(x, exc) if isinstance(exc, RuntimeError) else None
            if changed is not None:
                raise _Failed(changed) from exc
            if failed_between(out, k):
                raise _Failed(exc) from exc
            raise _Failed(exc, _frame_at(frame, kind, x, k)) from exc
        if frame is None:
            if kind == _TUPLE:
                return tuple(out)
            return out[0] if kind == _ROOT else out
        try:
            return build(frame)
        except Exception as exc:  # the container's own constructor: anything
            raise _Failed(container_error(x, exc)) from exc

    return walk


# options, the walker _make_walker made for them and the kept backend (see _walk_fast).
_walker: tuple[Any, Any, Any] = (None, None, None)


def map_leaves(tree: Any, leaf: Callable[[Any], Any], /, *, keep: Any = _MISSING) -> Any:
    """``tree`` with every leaf ``x`` replaced by ``leaf(x)``, in new containers.

    ``keep``: an object left as it is wherever it is found, never taken apart (a
    method's receiver among its results).

    The containers and the leaves are those of :func:`to_numpy_tree`: an object any
    backend takes as an array is a leaf (an xarray Dataset too, though a mapping),
    unless its type is a registered container, and so is every object that is not a
    container. Iterative, like the walk of :func:`to_numpy_tree`: a tree thousands
    of levels deep is mapped like any other, and one that contains itself is a
    :class:`~interop.ConversionError` naming the path. A failure of a container's
    own code (its ``flatten``, its constructor) names the container's path, and an
    error ``leaf`` raises names the leaf's path, as in the walk of
    :func:`to_numpy_tree` (see :func:`~interop._tree.paths.located`: the same
    class for the library's own and built-in errors, the original as ``__cause__``);
    one that already carries a path (``leaf`` mapping a tree of its own) keeps it.
    """
    cache_get = leaf_backends.get
    python = python_backend()
    b = cache_get(type(tree))
    if b is not None and b is not python:  # an array (the commonest tree): no walk
        try:
            return leaf(tree)
        except Exception as exc:
            if hasattr(exc, "__interop_path__"):
                raise
            raise located(exc, "tree") from exc  # the root's path, as path_of names it
    sync(_registry.active())
    lookup = leaf_backend
    kinds_get = kinds.get
    root: Frame = [_ROOT, None, enumerate((tree,)), [None], _MISSING, False]
    stack = [root]
    frame = root
    k: Any = _MISSING
    try:
        while True:
            out = frame[_OUT]
            for k, v in frame[_ITEMS]:
                if v is keep:
                    out[k] = v
                    continue
                cls = type(v)
                b = cache_get(cls, _MISSING)
                if b is _MISSING:
                    b = lookup(cls)
                if b is not None and b is not python:
                    out[k] = leaf(v)
                    continue
                kind = kinds_get(cls)
                if kind is None:
                    kind = classify(cls, v)
                if kind == _OTHER:
                    out[k] = leaf(v)
                    continue
                frame = _descend(stack, kind, v, k)
                k = _MISSING
                break
            else:
                k = _MISSING
                kind = frame[_KIND]
                if kind in (_DICT, _LIST):
                    result = out
                elif kind == _TUPLE:
                    result = tuple(out)
                elif kind == _ROOT:
                    return out[0]
                else:
                    try:
                        result = build(frame)
                    except Exception as exc:  # the container's own constructor: anything
                        where = path_of(stack, _MISSING)
                        raise located(container_error(frame[_SRC], exc), where) from exc
                stack.pop()
                frame = stack[-1]
                frame[_OUT][frame[_KEY]] = result
    except Exception as exc:
        # A dict changed while it was iterated (by ``leaf``, or another thread), or
        # a mapping whose items() fails, is named by the container's path; an error
        # of ``leaf`` (or of the registry asked about the child) by the child's.
        if hasattr(exc, "__interop_path__"):
            raise
        changed = changed_meanwhile(frame[_SRC], exc) if isinstance(exc, RuntimeError) else None
        if changed is not None:
            raise located(changed, path_of(stack, _MISSING)) from exc
        where = path_of(stack, _MISSING if failed_between(frame[_OUT], k) else k)
        raise located(exc, where) from exc
