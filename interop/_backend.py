"""The :class:`Backend` base class: the hooks every framework backend implements.

A backend holds everything the library knows about one framework (or one generic
array protocol): how to recognise its arrays, its host view, how to plan and run a
conversion to NumPy, which of its arrays sit on an accelerator and how to start
their copies, and, as a target, how to create its arrays. Nothing here holds
registry state: :mod:`interop._registry` creates, orders and looks up backends.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple, NoReturn, TypeVar

import numpy as np

from interop._copies import Copy
from interop._devices import ANY_LAYOUT, LayoutNeeds, split_device
from interop._errors import ConversionError, InteropError, is_cast_error, type_name
from interop._options import Options
from interop._plan import TAIL_STEPS, Plan, framework_view

__all__ = [
    "Backend",
    "HostTarget",
    "Node",
    "Step",
    "backend_error",
    "class_attr",
    "describe",
    "answer_of",
    "is_builtin",
    "is_target",
    "planned",
    "protocol_error",
    "raise_translated",
]

Step = Callable[[Any, Plan], Any]
_T = TypeVar("_T")
# How many plans a backend keeps before it starts afresh.
_MAX_PLANS = 512
_ndarray = np.ndarray
# The package of the library's own backends (see Backend.__init_subclass__).
_BUILTIN_PACKAGE = "interop.backends."


# The descriptors ``type`` itself uses for a class's MRO and namespace: reading them
# through these runs no code of the class or of its metaclass.
_mro_of = type.__dict__["__mro__"].__get__
_namespace_of = type.__dict__["__dict__"].__get__


def class_attr(cls: type, name: str, /) -> Any:
    """The attribute ``name`` that objects of ``cls`` find on their class, or ``None``.

    Looked up in the namespace of each class of the MRO, as Python looks up a
    special method, and without running any code of ``cls``: the generic protocols
    inspect classes they know nothing about, whose metaclass ``__getattr__`` or
    ``__getattribute__`` may raise anything (``hasattr`` would run them). An
    attribute set to ``None`` counts as absent, as Python's own protocols read it
    (``__hash__ = None``).

    Example:
        >>> import numpy as np
        >>> class_attr(np.ndarray, "__array__") is not None, class_attr(int, "__array__")
        (True, None)
    """
    for klass in _mro_of(cls):
        namespace = _namespace_of(klass)
        if name in namespace:
            return namespace[name]
    return None


class Node(NamedTuple):
    """A container of a framework's own registry (a JAX pytree node), taken apart one level.

    Attributes:
        children: Its children, in order.
        rebuild: Builds a container of the same kind from new children, in order.
        key: The path segment of the child at an index (``".params"``, ``"[0]"``).
    """

    children: list[Any]
    rebuild: Callable[[list[Any]], Any]
    key: Callable[[int], str]


def mapping_key(x: Any, children: list[Any], /) -> Callable[[int], str] | None:
    """The path segments of a registry node's children where they are a mapping's values.

    A registration need not say how to name its children (a pytree node without a
    key function is named by flat index). Where ``x`` is a mapping whose values are
    the children, in order, each is named by its key, as a mapping's child is.

    Example:
        >>> d = {"a": 1, "b": 2}
        >>> mapping_key(d, list(d.values()))(1), mapping_key(d, [2, 1])
        ("['b']", None)
    """
    if not isinstance(x, Mapping) or len(x) != len(children):
        return None
    items = list(x.items())
    if any(v is not c for (_, v), c in zip(items, children, strict=True)):
        return None
    return lambda index: f"[{items[index][0]!r}]"


class Reading(NamedTuple):
    """A host view read to decide a conversion and to copy from, and what an alias needs.

    Attributes:
        view: Gives what the host view gives (or ``None`` where it does), but
            reading leaves the object as it was: PyTorch's ``Tensor.numpy()`` marks
            the storage never to be resized again, right for a view handed out and
            wrong for one only read (a copy of a tensor must leave it resizable).
        keep: Called with the object where a result aliases the memory ``view``
            showed (:meth:`Backend.keep_alias`); ``None``: nothing to do.
    """

    view: Callable[[Any], np.ndarray[Any, Any] | None]
    keep: Callable[[Any], None] | None


class Backend:
    """Base class of a backend: one framework, or one generic array protocol.

    A subclass names its framework's top-level module in :attr:`module` (``None``
    for a generic protocol, which is always consulted) and answers one question in
    :meth:`matches`. It imports its framework only in :meth:`load`, which runs once,
    after the module was found in ``sys.modules``.

    A conversion is the backend's host view (:meth:`host_view_for`) where there is
    one, else a :class:`~interop.Plan` made by :meth:`plan` (cached by
    :meth:`plan_for`), checked against the copy and transfer options, then carried
    out by running each named step from :attr:`steps` (plus the shared
    ``upcast``/``cast``/``copy``/``readonly`` tail).
    """

    #: The short name reported by :func:`interop.framework_of` and in plans.
    name: ClassVar[str] = ""
    #: The top-level module that must already be imported, or ``None``.
    module: ClassVar[str | None] = None
    #: Whether this backend's objects are arrays in their own right. ``False`` for
    #: Python values (a list is a container to walk) and for objects that only offer
    #: ``__array__`` (a DataFrame, say), which ``numpy_function`` hands over as they are.
    arrays: ClassVar[bool] = True

    #: The lookup of the registry that loaded this backend (``type -> Backend`` or
    #: ``None``), for backends whose inputs hold other backends' arrays (a list of
    #: tensors); set by the registry before :meth:`load`.
    lookup: Callable[[type], Backend | None]

    #: The registry's host view function of a type (see :meth:`host_view_for`): found
    #: once per type, and for a third-party backend checked (its failures and wrong
    #: answers name it); set by the registry before :meth:`load`.
    view_of: Callable[[type], Callable[[Any], Any] | None]

    #: The registry's reading of the host view of a type (the ``view`` of
    #: :meth:`reading_for`), found and checked as :attr:`view_of` is; set by the
    #: registry before :meth:`load`.
    reader_of: Callable[[type], Callable[[Any], Any] | None]

    #: The registry's stacking function of a type (see :meth:`stack_for`), found and
    #: checked as :attr:`view_of` is; set by the registry before :meth:`load`.
    stacker_of: Callable[[type], Callable[[Any], Any] | None]

    # Whether the class is one of the library's own backends (see is_builtin).
    _builtin: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Set after the class body, so that a third-party class cannot claim it.
        cls._builtin = cls.__module__.startswith(_BUILTIN_PACKAGE)

    def __init__(self) -> None:
        self.loaded = False
        self.steps: dict[str, Step] = dict(TAIL_STEPS)
        # (plan_key(x), options) -> Plan; see plan_for.
        self._plans: dict[Any, Plan] = {}

    def load(self) -> None:
        """Import the framework and prepare what :meth:`matches` needs (runs once)."""

    def matches(self, cls: type) -> bool:
        """Whether objects of exactly this type are this backend's to convert."""
        raise NotImplementedError

    def declines(self, cls: type, /) -> str | None:
        """Why objects of this type, which this backend does not match, are no arrays at all.

        For a framework's containers that also offer an array protocol (an Arrow
        table has ``__array__``): a reason (with a hint) keeps the generic protocols
        from converting them, so that :func:`interop.to_numpy` refuses them with it
        and the tree walk takes them apart with :meth:`node`. ``None`` (the default):
        the backends after this one are asked.
        """
        return None

    # -- conversion to NumPy -------------------------------------------------------

    def host_view_for(self, cls: type, /) -> Callable[[Any], np.ndarray[Any, Any] | None] | None:
        """The host view of objects of type ``cls``: this backend's one fast answer.

        The returned function gives, for an object of exactly type ``cls``, what the
        planned path gives under the default options where that is a zero-copy view
        of host memory (the same array object kind, dtype, flags and memory), and
        ``None`` after cheap checks wherever it is not certain (data on a device,
        grad-mode subtleties, sharding, a dtype that needs unpacking, ...). It never
        raises for an input the planned path converts, and never signals through an
        exception. Every entry point (``to_numpy``, trees, pipelines, ``convert``,
        ``numpy_function``) calls it first, through the registry's per-type table.
        ``None`` (the default): no host view for this type; always correct.
        """
        return None

    def stack_for(
        self, cls: type, /
    ) -> Callable[[Any], Callable[[], np.ndarray[Any, Any]] | None] | None:
        """How a list or tuple of objects of type ``cls`` becomes one array, in one copy.

        The returned function, given a non-empty list or tuple of objects, checks
        them and returns the operation (a function of no arguments) that makes the
        array :func:`numpy.asarray` builds of their host views (of one shape and
        dtype, one more axis in front; new memory, writable) in one step of the
        framework rather than a view per item; or ``None`` after cheap checks
        wherever that is not certain (an item of another type or with no host view,
        a mix of shapes or dtypes, ...), and then each item is viewed by itself. The
        check runs when the list is planned (``explain`` too), the operation only when
        it is converted. Like a host view, neither raises for items the planned path
        converts, nor signals through an exception. ``None`` (the default): no such
        function.
        """
        return None

    def keep_alias(self, x: Any, /) -> None:
        """Make the memory of ``x`` safe for a result that aliases it, as its host view would.

        Called where a conversion's result shares the memory without the host view
        (a view read by :meth:`reading_for`, or this backend's DLPack export).
        PyTorch marks the storage never to be resized, as ``Tensor.numpy()`` does.
        Default: nothing to do.
        """

    def reading_for(self, cls: type, /) -> Reading | None:
        """How ``convert``'s fast path reads objects of ``cls``: see :class:`Reading`.

        Default: the host view (:attr:`view_of`), for backends whose views change
        nothing, with nothing to keep; ``None`` where there is no host view.
        """
        view = self.view_of(cls)
        return None if view is None else Reading(view, None)

    def plan(self, x: Any, options: Options, /) -> Plan:
        """Describe the conversion of ``x`` under ``options`` without doing any work."""
        raise NotImplementedError

    def plan_key(self, x: Any, /) -> Hashable | None:
        """What decides the plan of ``x``, for :meth:`plan_for`'s cache; ``None``: no caching.

        Two objects with equal keys must get equal plans under every option (so the
        key holds the type, dtype, device, layout, grad and such flags). A plan that
        holds per-object work in ``prepared`` must not be cached.
        """
        return None

    def plan_for(self, x: Any, options: Options, /) -> Plan:
        """:meth:`plan`, cached per :meth:`plan_key` and options."""
        key = self.plan_key(x) if self._builtin else _key_of(self, x)
        if key is None:
            made = self.plan(x, options)
            if not self._builtin:
                _check_plan(self, made)
            return made
        plans = self._plans
        k = (key, options)
        if not self._builtin:
            _check_key(self, key)
        plan = plans.get(k)
        if plan is None:
            plan = self.plan(x, options)
            if not self._builtin:
                _check_plan(self, plan)
            if (self.plan_key(x) if self._builtin else _key_of(self, x)) != key:
                # ``x`` changed while it was planned (another thread set requires_grad
                # or swapped a tensor's data): the plan may describe either state, and
                # cached under the first it would serve every later array of that key.
                return plan
            if len(plans) >= _MAX_PLANS:  # keys made on the fly must not pile up
                plans.clear()
            plans[k] = plan
        return plan

    def to_numpy(self, x: Any, options: Options, /) -> np.ndarray[Any, Any]:
        """Convert ``x`` by its plan (for a backend converting parts of its own arrays)."""
        plan = self.plan_for(x, options)
        plan.check(options)
        out = self.run(x, plan)
        self.check_result(x, out, options)
        return out

    def run(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        """Carry out ``plan`` on ``x`` step by step.

        A third-party backend's steps hand the library's own tail steps (``copy``,
        ``cast``, ``readonly``, ...) a NumPy array, checked as its last step's result
        is: a NumPy scalar becomes a 0-d array, anything else is refused naming it.
        """
        obj = x
        steps = self.steps
        if self._builtin:
            for step in plan.steps:
                obj = steps[step](obj, plan)
        else:
            for step in plan.steps:
                function = steps[step]
                if type(obj) is not _ndarray and TAIL_STEPS.get(step) is function:
                    obj = self._other_result(obj, plan)
                obj = function(obj, plan)
        if type(obj) is _ndarray:
            return obj
        return self._other_result(obj, plan)

    def transient_view(self, x: Any, plan: Plan, /) -> np.ndarray[Any, Any]:
        """What :meth:`run` gives for a zero-copy ``plan``, to read only now, never to hand out.

        :func:`interop.convert` reads it to decide a route and to copy from. A
        backend whose views change the array (``Tensor.numpy()`` marks a storage as
        never to be resized) reads it without doing so; such a view then lives only
        until the array is next resized. Default: :meth:`run`, as the plain ndarray
        another framework reads (a masked array with an entry masked is refused:
        see :func:`interop._plan.framework_view`).
        """
        return framework_view(self.run(x, plan))

    def _other_result(self, obj: Any, plan: Plan) -> np.ndarray[Any, Any]:
        """:meth:`run`'s answer where the last step gave anything but a plain ndarray."""
        if isinstance(obj, np.generic):  # a 0-d ``.numpy()`` gives a NumPy scalar
            return np.asarray(obj)
        # A built-in backend's steps may end in a scipy.sparse array (sparse="scipy").
        if isinstance(obj, np.ndarray) or self._builtin:
            return obj  # type: ignore[no-any-return]
        raise backend_error(
            self,
            " to give a NumPy array",
            f"`{type_name(obj)}` from its steps ({' -> '.join(plan.steps) or 'none'})",
            "its last step must return a NumPy array (np.asarray(...))",
        )

    def check_result(self, x: Any, out: np.ndarray[Any, Any], options: Options, /) -> None:
        """Raise if ``out``, the result of running a plan for ``x``, breaks the contract.

        The generic protocols refuse arrays of Python objects that an object's
        ``__array__`` (or a list's items) produced, unless ``dtype=object`` was asked.
        """

    def numpy_dtype_of(self, x: Any, /) -> np.dtype[Any] | None:
        """The NumPy dtype of ``x``'s values, known without converting them; ``None``: unknown.

        What an array kept in its own framework by :func:`interop.convert` reports.
        Default: the dtype of the host view, where there is one (a backend whose
        host view changes the array, as ``Tensor.numpy()`` does, answers without it).
        """
        view = self.view_of(type(x))
        out = None if view is None else view(x)
        return out.dtype if isinstance(out, np.ndarray) else None

    def missing_data(self, x: Any, /) -> Exception | None:
        """The error for an array of this backend that holds no values, or ``None``.

        A tracer, a meta or fake tensor, a deleted array, a symbolic tensor: what
        :meth:`plan` refuses with :class:`~interop.ConversionError` because there are
        no values to read. Asked where no plan of this backend runs: an array kept in
        its own framework by :func:`interop.convert`, and ``like=``. Default: ``None``.
        """
        return None

    def translate_error(self, x: Any, exc: Exception, /) -> Exception | None:
        """The library's error for ``exc``, raised by this backend's work on ``x``.

        ``None``: ``exc`` propagates as it is; the default for a framework backend,
        whose errors are its framework's documented ones. A generic protocol
        (``module`` is ``None``) calls methods of arbitrary objects, which may raise
        anything: by default such a failure becomes a
        :class:`~interop.ConversionError` naming the object and the protocol, with
        the original as its cause. The library's own errors and
        :class:`MemoryError` never reach this hook.
        """
        if self.module is not None:
            return None
        return protocol_error(x, self.name, exc)

    # -- containers ----------------------------------------------------------------------

    def is_node(self, x: Any, /) -> bool:
        """Whether this framework's own registry knows ``x`` as a container (asked once per type).

        Mappings, sequences and dataclasses are the tree walk's own; this hook is for
        containers a framework registers (JAX pytree nodes, Flax structs). A
        registered flatten function that fails still makes ``x`` a node, so that the
        failure is reported with its path when the node is walked.
        """
        return False

    def node(self, x: Any, /) -> Node:
        """``x``, a container for which :meth:`is_node` holds, taken apart one level."""
        raise NotImplementedError

    def nodes_version(self) -> Hashable | None:
        """A value that changes whenever the framework's registry of containers does.

        Asked once per tree walk: when it changes (a type registered with the
        framework after a walk met it), the kinds of types decided so far are
        decided again. ``None``: nothing to watch (the default).
        """
        return None

    # -- accelerators ------------------------------------------------------------------

    def accelerator_check(self) -> Callable[[Any], bool] | None:
        """A test of whether one of this backend's arrays is on an accelerator now.

        ``None`` where none of them can be (the framework has no accelerator in use
        in this process): the tree walk then pays nothing per leaf. Asked once per
        tree; must not initialise a device.
        """
        return None

    def start_copy(self, obj: Any, pinned_left: int, /) -> Copy | None:
        """Start an asynchronous device-to-host copy of ``obj`` (the input of ``to_host``).

        ``pinned_left``: how many bytes of pinned (page-locked) host memory the batch
        may still hand out in results (see :data:`PINNED_BATCH_BYTES`); a larger copy
        goes through a :class:`Staged` copy into pageable memory instead.

        Returns a :class:`Copy`, whose ``done`` waits for this copy alone, or ``None``:
        no asynchronous copy for this array (a layout or dtype the copy cannot take,
        say); the leaf is then converted at once, blocking, by its plan.
        """
        return None

    # -- data pipelines ------------------------------------------------------------

    def iterate(self, source: Any, /) -> Iterator[Any] | None:
        """A new iterator over ``source`` where it is a data pipeline of this framework.

        :func:`interop.iter_numpy` asks each active backend before it falls back on
        ``iter(source)``. ``None`` (the default): ``source`` is not this
        framework's. A backend raises :class:`~interop.ConversionError` with a hint
        for a pipeline of its framework that cannot be iterated here.
        """
        return None

    # -- conversion into this framework ------------------------------------------
    # The hooks below serve interop.convert (interop/_convert/), which plans a
    # conversion between two backends from them. A backend that cannot create
    # arrays (a generic protocol, say) keeps these defaults and is refused as a
    # target with a clear error.

    #: Whether arrays of this framework can be written in place. A zero-copy result
    #: of a mutable framework never aliases memory that its source treats as immutable.
    mutable: ClassVar[bool] = True
    #: Whether this backend's arrays are NumPy's own: converting to it is
    #: :func:`interop.to_numpy`, and one of its arrays is its own NumPy view.
    is_numpy: ClassVar[bool] = False
    #: The fewest dimensions an array of this framework has (an Arrow array is a
    #: column of rows: 1). Data with fewer is refused by :meth:`ndim_error`.
    min_ndim: ClassVar[int] = 0

    def ndim_error(self, ndim: int, /) -> ConversionError:
        """The refusal of ``ndim``-dimensional data, below :attr:`min_ndim`."""
        return ConversionError(
            f"expected an array with at least {self.min_ndim} dimension(s) to convert to "
            f"{self.name}, got a {ndim}-d array. hint: reshape it first"
        )

    def target_device(self, device: Any, like: Any, /) -> Any:
        """This framework's own device for ``device``, else ``like``'s, else the default."""
        if device is not None:
            return self.parse_device(device)
        if like is not None:
            # (A meta tensor's device would make a result without values.)
            missing = self.missing_data(like)
            if missing is not None:
                raise missing
            return self.device_of(like)
        return self.default_device()

    def parse_device(self, device: Any, /) -> Any:
        """The framework's device object for a string (``"cpu"``, ``"cuda:1"``, ...) or its own."""
        raise self._not_a_target()

    def default_device(self) -> Any:
        """Where the framework places a new array when no device is asked for."""
        raise self._not_a_target()

    def device_of(self, x: Any, /) -> Any:
        """The framework's device object that holds the array ``x`` of this framework."""
        raise self._not_a_target()

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        """The DLPack ``(device_type, device_id)`` of one of this framework's devices."""
        raise self._not_a_target()

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        """The NumPy dtype a result on ``device`` has for data of ``dtype``.

        Raises :class:`~interop.ConversionError` for a dtype the framework cannot hold.
        """
        raise self._not_a_target()

    def cast_reason(self, dtype: np.dtype[Any], result_dtype: np.dtype[Any], /) -> str:
        """Why a result holds data of ``dtype`` as ``result_dtype`` (see :meth:`target_dtype`)."""
        return f"{self.name} holds {dtype} as {result_dtype}; casting copies"

    def dlpack_problem(
        self, dtype: np.dtype[Any], view: np.ndarray[Any, Any] | None, device: tuple[int, int], /
    ) -> str | None:
        """Why :meth:`from_dlpack` cannot alias this data, or ``None`` if it can.

        ``view`` is the source's zero-copy NumPy view for data in host memory (its
        layout and alignment decide), ``None`` for data on ``device``.
        """
        return f"{self.name} does not import DLPack"

    def dlpack_layout(self) -> LayoutNeeds:
        """What :meth:`from_dlpack` needs of accelerator memory to use it as it is.

        Data on an accelerator laid out otherwise is first copied into a compact
        array on its device (see :func:`interop._devices.layout_problem`). Default:
        any layout.
        """
        return ANY_LAYOUT

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        """Why :meth:`from_numpy` cannot alias the NumPy array ``a``, or ``None`` if it can."""
        return f"{self.name} cannot alias NumPy memory"

    def from_numpy(self, a: np.ndarray[Any, Any], /, *, device: Any, copy: bool) -> Any:
        """An array of this framework on ``device`` holding ``a``'s values.

        ``copy=False`` aliases ``a`` (only asked for when :meth:`numpy_problem` found
        none); ``copy=True`` returns memory the result owns, in one copy.
        """
        raise self._not_a_target()

    def numpy_importer(self) -> Callable[[np.ndarray[Any, Any], bool], Any] | None:
        """:meth:`from_numpy` onto the default device, cut down to what convert's fast path needs.

        The returned function ``f(a, copy)`` gives exactly what
        ``from_numpy(a, device=self.default_device(), copy=copy)`` gives, wherever the
        default device is in host memory, :meth:`target_dtype` keeps ``a.dtype``, and,
        for ``copy=False``, :meth:`numpy_problem` finds no problem with ``a``. Anywhere
        else it returns ``None`` after checks cheap enough for every call (the caller
        then takes the general route). ``copy=False`` is asked only for a writable
        ``a``. Asked once per pair of source type and target. ``None`` (the default):
        no such function; conversions to this backend take the general route.
        """
        return None

    def from_dlpack(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        """An array of this framework on ``device`` from the DLPack producer ``x``.

        The import aliases ``x`` where it lives; then a move to another ``device``
        or ``copy=True`` makes the one copy.
        """
        raise self._not_a_target()

    def adopt(self, x: Any, /, *, device: Any, copy: bool) -> Any:
        """``x``, an array of this very framework, on ``device`` (a copy if asked or moved)."""
        raise self._not_a_target()

    def owns(self, x: Any, device: Any, /) -> bool:
        """Whether ``x`` is already an array of this target (so :meth:`adopt` applies)."""
        return self.lookup(type(x)) is self

    # Source side: what the conversion needs to know about an array of this backend.

    def readonly_source(self, x: Any, /) -> bool:
        """Whether this backend treats the memory of ``x`` as immutable (unknown: yes)."""
        return True

    def dlpack_export(self, x: Any, dtype: np.dtype[Any], /) -> Any:
        """An object whose ``__dlpack__`` exports ``x``'s data, or ``None`` if it cannot.

        Data in host memory is exported only where the export reports it as plain CPU
        memory (``kDLCPU``): pinned (``kDLCUDAHost``) or managed memory is taken by a
        framework's DLPack import for its GPU's, so such data goes through its NumPy
        view instead (``None`` here).
        """
        return None

    def _not_a_target(self) -> TypeError:
        return TypeError(
            f"expected a framework that creates arrays as the target, got {self.name!r}, "
            "which only reads them. hint: convert to a framework such as 'numpy', 'torch', "
            "'tensorflow' or 'jax'"
        )


class HostTarget(Backend):
    """A target whose arrays are in host memory only (NumPy, Dask, Arrow).

    Its one device is ``"cpu"``. A subclass names its framework in :attr:`title` and
    says in :attr:`host_only` why no other device will do; it holds any NumPy dtype
    unless it says otherwise (:meth:`target_dtype`, :meth:`numpy_problem`).
    """

    #: The framework's name in the error for another device (``"NumPy"``).
    title: ClassVar[str] = ""
    #: That error's reason and hint, after the device asked for.
    host_only: ClassVar[str] = ""

    def parse_device(self, device: Any, /) -> Any:
        if isinstance(device, str) and split_device(device)[0] == "cpu":
            return "cpu"
        raise ValueError(
            f"expected device None or 'cpu' for {self.title}, got {device!r}: {self.host_only}"
        )

    def default_device(self) -> Any:
        return "cpu"

    def device_of(self, x: Any, /) -> Any:
        return "cpu"

    def dlpack_device(self, device: Any, /) -> tuple[int, int]:
        return (1, 0)

    def target_dtype(self, dtype: np.dtype[Any], device: Any, /) -> np.dtype[Any]:
        return dtype

    def numpy_problem(self, a: np.ndarray[Any, Any], /) -> str | None:
        return None


def _key_of(backend: Backend, x: Any) -> Hashable | None:
    """A third-party backend's :meth:`Backend.plan_key` of ``x``; its failure names it."""
    return answer_of(
        backend, "plan_key() to return a hashable key or None", lambda: backend.plan_key(x)
    )


def answer_of(backend: Backend, expected: str, call: Callable[[], _T]) -> _T:
    """``call()``, a question to a third-party ``backend``'s hook, whose failure names it.

    ``expected``: what the hook was expected to do, as the error says it ("plan_key()
    to return a hashable key or None"). The library's own errors and
    :class:`MemoryError` pass as they are.
    """
    try:
        return call()
    except (InteropError, MemoryError):
        raise
    except Exception as exc:
        raise backend_error(backend, f"'s {expected}, but it raised {exc!r}", "") from exc


def planned(x: Any, backend: Backend, options: Options, /) -> Plan:
    """``backend``'s plan of ``x`` under ``options``; a failure is told by the backend.

    (See :func:`raise_translated`.)
    """
    try:
        return backend.plan_for(x, options)
    except (InteropError, MemoryError):
        raise
    except Exception as exc:
        raise_translated(x, backend, exc)


def is_builtin(backend: Backend, /) -> bool:
    """Whether ``backend`` is one of the library's own (defined under ``interop.backends``).

    A built-in backend's failure is the library's bug and propagates as it is. A
    third-party backend is checked where its results enter the core (its plans in
    :meth:`Backend.plan_for`, its results in :meth:`Backend.run`), and the registry
    skips one whose ``load()``, ``matches()`` or ``declines()`` fails.
    """
    return type(backend)._builtin


def is_target(backend: Backend, /) -> bool:
    """Whether ``backend`` creates arrays (``convert`` can target it), where it only reads some.

    A target implements the target hooks, :meth:`Backend.from_numpy` (which makes its
    results) among them; the protocols that only read (lists, ``__array__`` objects,
    DLPack capsules) do not.
    """
    return type(backend).from_numpy is not Backend.from_numpy


def describe(backend: Backend, /) -> str:
    """``backend`` in an error message: its name and class, as ``'grid' (gridlib.GridBackend)``."""
    return f"{backend.name!r} ({type_name(backend)})"


def backend_error(backend: Backend, expected: str, got: str, advice: str = "") -> ConversionError:
    """The error for a wrong answer of a third-party ``backend``'s own code.

    It names the backend and says the data is not at fault: ``expected backend
    'name' (Class){expected}[, got {got}]. hint: the error is in that backend, not in
    the data[: {advice}]``.
    """
    found = f", got {got}" if got else ""
    more = f": {advice}" if advice else ""
    return ConversionError(
        f"expected backend {describe(backend)}{expected}{found}. hint: the error is in "
        f"that backend, not in the data{more}"
    )


def _check_key(backend: Backend, key: Any) -> None:
    """Raise :class:`ConversionError` unless a third-party ``plan_key`` answer can key a dict."""
    try:
        hash(key)
    except TypeError as exc:
        raise backend_error(
            backend,
            "'s plan_key() to return a hashable key or None",
            f"`{type_name(key)}`",
            "make it a tuple, not a list",
        ) from exc


def _check_plan(backend: Backend, plan: Any) -> None:
    """Raise :class:`ConversionError` where a third-party ``plan()`` gave no runnable plan.

    Asked once per plan made, never for a plan taken from the cache.
    """
    if not isinstance(plan, Plan):
        raise backend_error(
            backend,
            " to return an interop.Plan from plan()",
            f"`{type_name(plan)}`",
            "build its plan with interop.Plan(...)",
        )
    # A backend that runs its plans itself may name steps its own way.
    if type(backend).run is not Backend.run:
        return
    steps = backend.steps
    unknown = [step for step in plan.steps if step not in steps]
    if unknown:
        raise backend_error(
            backend,
            " to plan steps it has",
            f"{', '.join(map(repr, unknown))}, not in its steps ({', '.join(steps)})",
            "add the step to self.steps (in __init__ or load()), or fix its name in the plan",
        )


# What a generic backend asks of an object it does not know, for error messages.
_PROTOCOLS = {
    "array_api": "the Array API (`__array_namespace__`, `device`, `__dlpack__`)",
    "dlpack": "DLPack (`__dlpack__`)",
    "array_protocol": "`__array__`, `__array_interface__` or the buffer protocol",
}


def protocol_error(x: Any, protocol: str, exc: Exception) -> ConversionError:
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
    if protocol == "python" and isinstance(exc, OverflowError):
        return ConversionError(
            f"expected numbers that fit the dtype asked for, got `{type_name(x)}` holding "
            f"one that does not ({what}). hint: ask for a wider dtype, or leave dtype= out "
            "to let NumPy choose one"
        )
    if protocol == "python":
        return ConversionError(
            f"expected a scalar or a rectangular nested sequence of numbers, got "
            f"`{type_name(x)}`, from which NumPy cannot build an array ({what}). "
            "hint: give nested sequences equal lengths, or convert the items one by one"
        )
    protocol = _PROTOCOLS.get(protocol, f"the {protocol} protocol")
    return ConversionError(
        f"expected `{type_name(x)}` to hand over its data through {protocol}, but it "
        f"failed with {what}. hint: the error comes from `{type_name(x)}` itself; convert "
        "it with its own library's API first"
    )


def raise_translated(x: Any, backend: Backend, exc: Exception, /) -> NoReturn:
    """Raise the backend's own error for ``exc`` (its translation), or ``exc`` itself.

    For an exception raised by ``backend``'s work on ``x`` (its plan, its steps, its
    hooks); the library's own errors, and casts NumPy refused for the values, pass as
    they are.
    """
    if not isinstance(exc, (InteropError, MemoryError)) and not is_cast_error(exc):
        try:
            translated = backend.translate_error(x, exc)
        except Exception as failed:
            if is_builtin(backend):
                raise
            raise backend_error(
                backend,
                f"'s translate_error() to return an exception or None for {exc!r}, but it "
                f"raised {failed!r}",
                "",
            ) from exc
        if translated is not None:
            if not isinstance(translated, BaseException):
                # A third-party hook's mistake: the original failure, named, stays.
                raise backend_error(
                    backend,
                    "'s translate_error() to return an exception or None",
                    f"`{type_name(translated)}` for {exc!r}",
                ) from exc
            raise translated from exc
    raise exc
