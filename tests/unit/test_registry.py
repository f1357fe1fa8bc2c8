"""The backend registry: order, loaded flags, third-party backends and entry points."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop
from interop import _registry
from tests.conftest import Framework

ROOT = Path(__file__).resolve().parents[2]
GENERIC_ORDER = ["array_api", "dlpack", "array_protocol", "python"]


# -- A small third-party array library and its backend ---------------------------------


class TinyArray:
    """A third-party array: values in a NumPy buffer, either on the host or "remote".

    Remote data cannot be viewed, only downloaded (a copy), which is what a
    device-to-host transfer is. ``__array__`` is there so that, unregistered, the
    generic ``__array__`` protocol converts it: a registered backend must win.
    """

    def __init__(self, values: Any, device: str = "cpu") -> None:
        self._values = np.array(values, dtype=np.float32)
        self.device = device
        self.downloads = 0

    def host_view(self) -> np.ndarray:
        if self.device != "cpu":
            raise RuntimeError("remote data has no host view")
        return self._values

    def download(self) -> np.ndarray:
        self.downloads += 1
        return self._values.copy()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False and self.device != "cpu":
            raise ValueError("remote data cannot be viewed")
        values = self.host_view() if self.device == "cpu" else self.download()
        return np.array(values, dtype=dtype, copy=copy)


class TinyBackend(interop.Backend):
    """The backend a third-party library ships for :class:`TinyArray`."""

    name = "tiny"
    module = __name__  # this module defines TinyArray, so it is imported

    def __init__(self) -> None:
        super().__init__()
        self.log: list[str] = []
        self.steps.update(view=self._view, download=self._download)

    def load(self) -> None:
        self.log.append("load")

    def matches(self, cls: type) -> bool:
        return issubclass(cls, TinyArray)

    def plan(self, x: Any, options: Any, /) -> interop.Plan:
        dtype = np.dtype(np.float32)
        steps = ["view"] if x.device == "cpu" else ["download"]
        reason = None if x.device == "cpu" else f"the data is on {x.device}"
        if options.dtype is not None and options.dtype != dtype:
            steps.append("cast")
            reason = reason or f"casting {dtype} to {options.dtype} copies"
            dtype = options.dtype
        if options.copy is True and reason is None:
            steps.append("copy")
            reason = "copy=True"
        return interop.Plan(
            framework=self.name,
            device=x.device,
            zero_copy=reason is None,
            transfer=x.device != "cpu",
            steps=tuple(steps),
            dtype=dtype,
            copy_reason=reason,
        )

    def _view(self, x: TinyArray, plan: interop.Plan) -> np.ndarray:
        self.log.append("view")
        return x.host_view()

    def _download(self, x: TinyArray, plan: interop.Plan) -> np.ndarray:
        self.log.append("download")
        return x.download()


@pytest.fixture
def tiny() -> Iterator[TinyBackend]:
    backend = TinyBackend()
    interop.register_backend(backend)
    try:
        yield backend
    finally:
        _registry.unregister_backend("tiny")


# -- backends(): order and loaded flags ------------------------------------------------


def test_backends_order() -> None:
    infos = interop.backends()
    names = [b.name for b in infos]
    assert names[:4] == ["numpy", "torch", "tensorflow", "jax"]
    assert [b.name for b in infos if b.generic] == GENERIC_ORDER
    assert names[-4:] == GENERIC_ORDER
    # Every framework backend comes before every generic protocol.
    first_generic = names.index("array_api")
    assert all(not b.generic for b in infos[:first_generic])
    assert all(b.module is None for b in infos[first_generic:])
    assert [b.module for b in infos[:4]] == ["numpy", "torch", "tensorflow", "jax"]
    assert len(set(names)) == len(names)


def test_loaded_flag_follows_conversion(fw: Framework) -> None:
    interop.to_numpy(fw.make(np.ones((2, 2), dtype=np.float32)), copy=True)
    info = {b.name: b for b in interop.backends()}[fw.name]
    assert info.loaded
    assert repr(info) == f"BackendInfo(name={fw.name!r}, module={fw.name!r}, loaded)"


def test_backend_info_is_a_snapshot_of_the_backend() -> None:
    for info in interop.backends():
        assert info.backend.name == info.name
        assert info.loaded is info.backend.loaded
        assert isinstance(info.backend, interop.Backend)


# -- register_backend ------------------------------------------------------------------


def test_registered_backend_converts_and_comes_before_generic_protocols() -> None:
    x = TinyArray([1.0, 2.0, 3.0])
    # Unregistered, the generic __array__ protocol takes it.
    assert interop.framework_of(x) == "array_protocol"
    backend = TinyBackend()
    interop.register_backend(backend)
    try:
        assert interop.framework_of(x) == "tiny"  # registration cleared the cache
        names = [b.name for b in interop.backends()]
        assert names.index("tiny") < names.index("array_api")
        out = interop.to_numpy(x)
        assert np.shares_memory(out, x.host_view())
        assert backend.log == ["load", "view"]
        copied = interop.to_numpy(x, copy=True)
        copied[0] = 99
        assert x.host_view()[0] == 1.0
        assert interop.to_numpy(x, dtype=np.float64).dtype == np.float64
    finally:
        _registry.unregister_backend("tiny")
    assert interop.framework_of(x) == "array_protocol"
    assert "tiny" not in [b.name for b in interop.backends()]


def test_registered_backend_transfer_and_copy_checks_run_before_any_step(
    tiny: TinyBackend,
) -> None:
    remote = TinyArray([1.0, 2.0], device="remote:0")
    local = TinyArray([1.0, 2.0])
    with pytest.raises(interop.TransferError, match=r"remote:0.*allow_transfer=False"):
        interop.to_numpy(remote, allow_transfer=False)
    with pytest.raises(interop.CopyRequiredError, match="the data is on remote:0"):
        interop.to_numpy(remote, copy=False)
    with pytest.raises(interop.CopyRequiredError, match="casting float32 to int32"):
        interop.to_numpy(local, copy=False, dtype=np.int32)
    assert tiny.log == ["load"] and remote.downloads == 0  # no step ran
    out = interop.to_numpy(remote)
    np.testing.assert_array_equal(out, [1.0, 2.0])
    assert tiny.log == ["load", "download"] and remote.downloads == 1
    plan = interop.explain(remote)
    assert plan.transfer and plan.device == "remote:0" and remote.downloads == 1


def test_registered_backend_items_inside_lists(tiny: TinyBackend) -> None:
    out = interop.to_numpy([TinyArray([1.0, 2.0]), TinyArray([3.0, 4.0])])
    np.testing.assert_array_equal(out, [[1.0, 2.0], [3.0, 4.0]])
    remote = [TinyArray([1.0]), TinyArray([2.0], device="remote:1")]
    with pytest.raises(interop.TransferError, match="remote:1"):
        interop.to_numpy(remote, allow_transfer=False)
    assert remote[1].downloads == 0


class LateBackend(TinyBackend):
    """A backend whose framework module is not imported until the test imports it."""

    name = "late"
    module = "interop_late_framework"


def test_active_backends_follow_imports_and_registrations(monkeypatch: pytest.MonkeyPatch) -> None:
    first = _registry.active()
    assert _registry.active() is first  # unchanged: the same answer, the same object
    late = LateBackend()
    interop.register_backend(late)
    try:
        registered = _registry.active()
        assert late not in registered and registered is not first
        assert _registry.active() is registered
        # Its module imported: active (and loaded) from the next question on.
        monkeypatch.setitem(sys.modules, late.module, type(sys)(late.module))
        imported = _registry.active()
        assert late in imported and late.loaded and late.log == ["load"]
        assert _registry.active() is imported
        # A framework that leaves sys.modules is no longer active.
        monkeypatch.delitem(sys.modules, late.module)
        assert late not in _registry.active()
        assert [b.name for b in _registry.active()] == [b.name for b in registered]
    finally:
        _registry.unregister_backend("late")
    assert late not in _registry.active()


def test_duplicate_name_is_refused(tiny: TinyBackend) -> None:
    with pytest.raises(ValueError, match=r"expected a new backend name, got 'tiny'"):
        interop.register_backend(TinyBackend())

    class Impostor(TinyBackend):
        name = "torch"

    with pytest.raises(ValueError, match="'torch', which is already registered"):
        interop.register_backend(Impostor())


def test_register_backend_validates_its_argument() -> None:
    with pytest.raises(TypeError, match=r"expected an instance of interop.Backend, got `type`"):
        interop.register_backend(TinyBackend)  # type: ignore[arg-type]

    class Nameless(TinyBackend):
        name = ""

    with pytest.raises(ValueError, match="non-empty name"):
        interop.register_backend(Nameless())
    with pytest.raises(ValueError, match="expected a registered backend name"):
        _registry.unregister_backend("no-such-backend")


@pytest.mark.parametrize(
    ("name", "error", "got"),
    [
        (None, TypeError, "got None (`NoneType`)"),
        (5, TypeError, "got 5 (`int`)"),
        ("", ValueError, "got ''"),
        ("two words", ValueError, "got 'two words'"),
        ("1up", ValueError, "got '1up'"),
    ],
)
def test_a_backend_name_must_be_a_word(name: Any, error: type[Exception], got: str) -> None:
    # framework_of returns the name and convert's to= takes it: a string, one word.
    class Misnamed(TinyBackend):
        pass

    Misnamed.name = name
    with pytest.raises(error) as info:
        interop.register_backend(Misnamed())
    message = str(info.value)
    assert message.startswith("expected a backend ") and got in message
    assert message.endswith("hint: " + message.split("hint: ")[1]) and 'name = "gridlib"' in message
    assert all(b.name != name for b in interop.backends())


@pytest.mark.parametrize("name", ["gridlib", "custom-test", "my_lib.arrays", "F2"])
def test_backend_names_that_are_words_are_taken(name: str) -> None:
    class Named(TinyBackend):
        pass

    Named.name = name
    interop.register_backend(Named())
    _registry.unregister_backend(name)


# -- A broken third-party backend is reported once and skipped --------------------------


class Fragile(interop.Backend):
    """A third-party backend without a framework module (so always consulted) that fails.

    ``fail`` names the method that raises; every call is counted.
    """

    name = "fragile"

    def __init__(self, fail: str) -> None:
        super().__init__()
        self.fail = fail
        self.calls = {"load": 0, "matches": 0, "declines": 0}

    def _call(self, method: str) -> None:
        self.calls[method] += 1
        if method == self.fail:
            raise ImportError(f"{method} failed: libfragile.so not found")

    def load(self) -> None:
        self._call("load")

    def matches(self, cls: type) -> bool:
        self._call("matches")
        return False

    def declines(self, cls: type, /) -> str | None:
        self._call("declines")
        return None


@pytest.fixture
def registered() -> Iterator[list[interop.Backend]]:
    """Backends the test registers, removed afterwards whether or not they were skipped."""
    backends: list[interop.Backend] = []
    yield backends
    for backend in backends:
        if any(b.backend is backend for b in interop.backends()):
            _registry.unregister_backend(backend.name)
        _registry._skipped.pop(backend.name, None)


class _Fresh:
    """A type the registry has not met (its own __array__: a generic protocol's)."""

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.arange(2.0)


def _convert_everything() -> None:
    """Lists, scalars, buffers and a new type all convert, as if no plugin were there."""
    assert interop.to_numpy([1.0, 2.0]).tolist() == [1.0, 2.0]
    assert interop.to_numpy(3.0).tolist() == 3.0
    assert interop.to_numpy(memoryview(b"ab")).tolist() == [97, 98]
    assert interop.framework_of(_Fresh()) == "array_protocol"
    assert interop.to_numpy(type("Fresh", (_Fresh,), {})()).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("fail", ["load", "matches", "declines"])
def test_a_failing_third_party_backend_is_reported_once_and_skipped(
    fail: str, registered: list[interop.Backend]
) -> None:
    backend = Fragile(fail)
    registered.append(backend)
    interop.register_backend(backend)
    with pytest.warns(RuntimeWarning) as caught:
        _convert_everything()
    [warning] = caught
    assert str(warning.message) == (
        "interop: skipping backend 'fragile' (tests.unit.test_registry.Fragile) from now on, "
        f"since its {fail}() raised: ImportError('{fail} failed: libfragile.so not found')"
    )
    assert warning.filename == __file__  # the caller's line, not the registry's
    assert backend.calls[fail] == 1
    # Skipped from then on: never consulted again, never reported again.
    calls = dict(backend.calls)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _convert_everything()
        assert backend not in _registry.active()
    assert backend.calls == calls
    assert "fragile" not in [b.name for b in interop.backends()]
    with pytest.raises(ValueError) as info:
        _registry.by_name("fragile")
    assert f"got 'fragile', a third-party backend that is skipped: its {fail}() raised" in str(
        info.value
    )
    # Fixed, it can be registered again.
    fixed = Fragile("nothing")
    registered.append(fixed)
    interop.register_backend(fixed)
    assert "fragile" in [b.name for b in interop.backends()]


class _NosyArray:
    def __init__(self) -> None:
        self.values = np.arange(3.0)


class Nosy(interop.Backend):
    """A third-party backend whose questions (asked per type, tree or pass) fail.

    ``fail`` names the hook that raises: ``host_view_for``, ``is_node``,
    ``nodes_version``, ``accelerator_check`` or ``iterate``.
    """

    name = "nosy"

    def __init__(self, fail: str) -> None:
        super().__init__()
        self.fail = fail
        self.steps["values"] = lambda x, plan: x.values

    def _ask(self, hook: str) -> None:
        if hook == self.fail:
            raise RuntimeError(f"{hook} boom")

    def matches(self, cls: type) -> bool:
        return issubclass(cls, _NosyArray)

    def plan(self, x: Any, options: Any, /) -> interop.Plan:
        return interop.Plan("nosy", "cpu", True, False, ("values",), dtype=x.values.dtype)

    def host_view_for(self, cls: type, /) -> Any:
        self._ask("host_view_for")
        return None

    def is_node(self, x: Any, /) -> bool:
        self._ask("is_node")
        return False

    def nodes_version(self) -> Any:
        self._ask("nodes_version")
        return 0

    def accelerator_check(self) -> Any:
        self._ask("accelerator_check")
        return None

    def iterate(self, source: Any, /) -> Any:
        self._ask("iterate")
        return None


@pytest.mark.parametrize(
    "fail", ["host_view_for", "is_node", "nodes_version", "accelerator_check", "iterate"]
)
def test_a_third_party_backend_whose_question_fails_breaks_nothing_else(
    fail: str, registered: list[interop.Backend]
) -> None:
    # Every tree, pass or new type asks these questions of every backend: one that
    # raises is reported and skipped, as for load(), and everything else converts.
    backend = Nosy(fail)
    registered.append(backend)
    interop.register_backend(backend)

    @dataclasses.dataclass
    class Point:
        x: Any

    with pytest.warns(RuntimeWarning, match=rf"skipping backend 'nosy'.*its {fail}\(\) raised"):
        if fail == "host_view_for":  # its own arrays' question: they are no one's now
            with pytest.raises(interop.UnsupportedTypeError):
                interop.to_numpy(_NosyArray())
        else:
            assert interop.to_numpy(_NosyArray()).tolist() == [0.0, 1.0, 2.0]
        tree = interop.to_numpy_tree({"a": np.ones(2), "p": Point(np.zeros(1))})
        assert tree["a"].tolist() == [1.0, 1.0] and tree["p"].x.tolist() == [0.0]
        assert [b.tolist() for b in interop.iter_numpy([np.ones(1)])] == [[1.0]]
    assert "nosy" not in [b.name for b in interop.backends()]
    _convert_everything()


class Careful(Nosy):
    """A third-party backend whose per-array hooks answer wrongly (``wrong`` names one)."""

    name = "careful"

    def __init__(self, wrong: str) -> None:
        super().__init__("nothing")
        self.wrong = wrong

    def host_view_for(self, cls: type, /) -> Any:
        if self.wrong == "view-list":
            return lambda x: [1.0, 2.0]
        if self.wrong == "view-raises":
            return lambda x: {}["missing"]
        if self.wrong == "view-not-callable":
            return "values"
        return None

    def plan_key(self, x: Any, /) -> Any:
        if self.wrong == "key-raises":
            return x.device  # (a typo: the plugin's arrays have none)
        return [type(x)] if self.wrong == "key-list" else None

    def translate_error(self, x: Any, exc: Exception, /) -> Any:
        if self.wrong == "translate-raises":
            return exc.errno_text  # type: ignore[attr-defined]
        return "not an exception" if self.wrong == "translate-str" else None

    def plan(self, x: Any, options: Any, /) -> interop.Plan:
        if self.wrong in ("translate-str", "translate-raises"):
            raise ValueError("the real failure")
        return super().plan(x, options)


@pytest.mark.parametrize(
    ("wrong", "says"),
    [
        ("view-list", "host view of `.*_NosyArray` to give a NumPy array or None, got `list`"),
        ("view-raises", "host view of `.*_NosyArray` to give .* but it raised KeyError"),
        ("view-not-callable", "host_view_for\\(\\) to return a function or None, got `str`"),
        ("key-list", "plan_key\\(\\) to return a hashable key or None, got `list`"),
        ("translate-str", "translate_error\\(\\) to return an exception or None, got `str`"),
        ("key-raises", "plan_key\\(\\) to return a hashable key or None, but it raised Attr"),
        (
            "translate-raises",
            "translate_error\\(\\) to return an exception or None for ValueError\\('the real "
            "failure'\\), but it raised AttributeError",
        ),
    ],
)
def test_a_third_party_backends_wrong_answer_for_an_array_names_the_backend(
    wrong: str, says: str, registered: list[interop.Backend]
) -> None:
    backend = Careful(wrong)
    registered.append(backend)
    interop.register_backend(backend)
    options: dict[str, Any] = {"copy": False} if wrong.startswith("key-") else {}
    calls = {
        "to_numpy": lambda: interop.to_numpy(_NosyArray(), **options),
        "tree": lambda: interop.to_numpy_tree([_NosyArray()], **options),
        "iter_numpy": lambda: next(iter(interop.iter_numpy([_NosyArray()], **options))),
    }
    for call in calls.values():
        with pytest.raises(interop.ConversionError, match=rf"expected backend 'careful'.*{says}"):
            call()
    _convert_everything()


class Stacking(Nosy):
    """A third-party backend that stacks a list of its arrays in one step (``answer``)."""

    name = "stacking"

    def __init__(self, answer: str) -> None:
        super().__init__("nothing")
        self.answer = answer
        self.checked = self.stacked = 0

    def stack_for(self, cls: type, /) -> Any:
        def stacking(items: Any) -> Any:
            self.checked += 1
            if self.answer == "decline":
                return None
            if self.answer == "raises":
                return {}["missing"]
            if self.answer == "not-a-function":
                return np.zeros(3)
            return make

        def make() -> Any:
            self.stacked += 1
            if self.answer == "short":
                return np.zeros((1, 3))
            if self.answer == "make-raises":
                raise KeyError("missing")
            return np.stack([np.arange(3.0)] * 2)

        return "not a function" if self.answer == "not-callable" else stacking


@pytest.mark.parametrize("answer", ["stack", "decline"])
def test_a_third_party_backend_may_stack_a_list_of_its_arrays(
    answer: str, registered: list[interop.Backend]
) -> None:
    backend = Stacking(answer)
    registered.append(backend)
    interop.register_backend(backend)
    items = [_NosyArray(), _NosyArray()]
    assert interop.explain(items).steps == ("convert_items", "asarray")
    assert (backend.checked, backend.stacked) == (1, 0)  # (explain does no work)
    out = interop.to_numpy(items)
    assert out.tolist() == [[0.0, 1.0, 2.0]] * 2
    assert (backend.checked, backend.stacked) == (2, 1 if answer == "stack" else 0)
    # Under dtype= the items' views are cast in one copy, not stacked and cast again.
    cast = interop.to_numpy(items, dtype=np.float32)
    assert cast.dtype == np.float32 and cast.tolist() == [[0.0, 1.0, 2.0]] * 2
    assert backend.checked == 2


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("raises", "stacking function given a `list` to give .* but it raised KeyError"),
        ("not-a-function", "stacking function given a `list` to give a function or None, got "),
        ("make-raises", "stacking of a `list` of 2 to give .* but it raised KeyError"),
        (
            "short",
            "stacking of a `list` of 2 to give an array of shape \\(2, ...\\), got an "
            "array of shape \\(1, 3\\)",
        ),
        ("not-callable", "stack_for\\(\\) to return a function or None, got `str`"),
    ],
)
def test_a_third_party_backends_wrong_stack_names_the_backend(
    answer: str, says: str, registered: list[interop.Backend]
) -> None:
    backend = Stacking(answer)
    registered.append(backend)
    interop.register_backend(backend)
    with pytest.raises(interop.ConversionError, match=rf"expected backend 'stacking'.*{says}"):
        interop.to_numpy([_NosyArray(), _NosyArray()])
    _convert_everything()


def test_a_backend_that_fails_to_load_is_skipped_by_active_and_by_name(
    registered: list[interop.Backend],
) -> None:
    # The tree walk asks active(), convert's to= asks by_name(): each loads backends.
    backend = Fragile("load")
    registered.append(backend)
    interop.register_backend(backend)
    with pytest.warns(RuntimeWarning, match=r"since its load\(\) raised"):
        active = _registry.active()
    assert backend not in active and backend.calls["load"] == 1
    _registry._skipped.pop("fragile")

    backend = Fragile("load")
    registered.append(backend)
    interop.register_backend(backend)
    with (
        pytest.warns(RuntimeWarning, match=r"since its load\(\) raised"),
        pytest.raises(ValueError, match="a third-party backend that is skipped"),
    ):
        interop.convert(np.zeros(2), "fragile")
    assert backend not in _registry.active() and backend.calls["load"] == 1


class _EntryPoint:
    """What importlib.metadata.entry_points gives for an installed plugin."""

    name = "fragile"

    def load(self) -> type[interop.Backend]:
        class FromPlugin(Fragile):
            def __init__(self) -> None:
                super().__init__("load")

        return FromPlugin


def test_an_entry_point_backend_whose_load_fails_is_reported_once_and_skipped(
    monkeypatch: pytest.MonkeyPatch, registered: list[interop.Backend]
) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [_EntryPoint()])
    monkeypatch.setattr(_registry, "_entry_points_loaded", False)
    [plugin] = [b.backend for b in interop.backends() if b.name == "fragile"]
    registered.append(plugin)
    with pytest.warns(RuntimeWarning, match="skipping backend 'fragile'.*libfragile") as caught:
        _convert_everything()
    assert len(caught) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _convert_everything()
    assert isinstance(plugin, Fragile) and plugin.calls["load"] == 1


def test_a_built_in_backends_failure_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    # The library's own backends are not isolated: their failures are its bugs.
    array_api = _registry.by_name("array_api")

    def broken(cls: type) -> bool:
        raise RuntimeError("built-in bug")

    monkeypatch.setattr(array_api, "matches", broken)
    with pytest.raises(RuntimeError, match="built-in bug"):
        interop.to_numpy(type("Fresh", (_Fresh,), {})())
    monkeypatch.undo()
    assert "array_api" in [b.name for b in interop.backends()]
    assert interop.to_numpy(type("Fresh", (_Fresh,), {})()).tolist() == [0.0, 1.0]


# -- What a third-party backend hands the core is checked ------------------------------


class Careless(TinyBackend):
    """A third-party backend whose plan or steps give the wrong kind of thing."""

    name = "careless"

    def __init__(self, plan: Any = None, step: Any = None) -> None:
        super().__init__()
        self.bad_plan = plan
        if step is not None:
            self.steps["view"] = lambda x, plan: step

    def plan(self, x: Any, options: Any, /) -> interop.Plan:
        if self.bad_plan is not None:
            return self.bad_plan  # type: ignore[no-any-return]
        return super().plan(x, options)


@pytest.mark.parametrize(
    ("backend", "expected"),
    [
        (
            Careless(plan="view"),
            "expected backend 'careless' (tests.unit.test_registry.Careless) to return an "
            "interop.Plan from plan(), got `str`. hint: the error is in that backend, not in "
            "the data: build its plan with interop.Plan(...)",
        ),
        (
            Careless(plan=interop.Plan("careless", "cpu", True, False, ("view", "nope"))),
            "expected backend 'careless' (tests.unit.test_registry.Careless) to plan steps it "
            "has, got 'nope', not in its steps (",
        ),
        (
            Careless(step=[1.0, 2.0]),
            "expected backend 'careless' (tests.unit.test_registry.Careless) to give a NumPy "
            "array, got `list` from its steps (view). hint: the error is in that backend, not "
            "in the data: its last step must return a NumPy array (np.asarray(...))",
        ),
    ],
    ids=["plan-not-a-plan", "unknown-step", "step-gives-a-list"],
)
def test_what_a_third_party_backend_hands_over_is_checked(
    backend: Careless, expected: str, registered: list[interop.Backend]
) -> None:
    registered.append(backend)
    interop.register_backend(backend)
    x = TinyArray([1.0, 2.0])
    for convert in (interop.to_numpy, lambda x: interop.to_numpy_tree([x])[0]):
        with pytest.raises(interop.ConversionError) as info:
            convert(x)
        assert expected in str(info.value)
    if backend.bad_plan is not None:  # explain never runs the steps
        with pytest.raises(interop.ConversionError, match=r"to return an interop\.Plan|to plan"):
            interop.explain(x)


def test_by_name() -> None:
    assert _registry.by_name("numpy").name == "numpy"
    with pytest.raises(ValueError, match=r"expected a framework name \(numpy, torch"):
        _registry.by_name("no-such-framework")


# -- Entry points ----------------------------------------------------------------------

PLUGIN = """
import numpy as np
import interop


class PlugArray:
    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.float64)


class PlugBackend(interop.Backend):
    name = "plug"
    module = "interop_plug"

    def matches(self, cls):
        return issubclass(cls, PlugArray)

    def plan(self, x, options, /):
        return interop.Plan("plug", "cpu", True, False, ("values",), dtype=x.values.dtype)

    def __init__(self):
        super().__init__()
        self.steps["values"] = lambda x, plan: x.values


class Impostor(PlugBackend):
    name = "numpy"
"""


def _install_plugin(tmp_path: Path, entry_points: str) -> Path:
    """A distribution on ``tmp_path`` as pip would leave it: module + dist-info."""
    (tmp_path / "interop_plug.py").write_text(PLUGIN)
    info = tmp_path / "interop_plug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: interop-plug\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    return tmp_path


def _run(code: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{path}:{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-W", "always", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path,
        timeout=120,
        check=False,
    )


def test_entry_point_backend_is_discovered(tmp_path: Path) -> None:
    path = _install_plugin(tmp_path, "[interop.backends]\nplug = interop_plug:PlugBackend\n")
    result = _run(
        """
        import numpy as np, interop
        from interop_plug import PlugArray
        x = PlugArray([1, 2, 3])
        out = interop.to_numpy(x)
        assert np.shares_memory(out, x.values), "not zero-copy"
        assert interop.framework_of(x) == "plug"
        names = [b.name for b in interop.backends()]
        assert names.index("plug") < names.index("array_api"), names
        print("ok", names)
        """,
        path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_broken_entry_points_warn_and_do_not_break_conversion(tmp_path: Path) -> None:
    entry_points = (
        "[interop.backends]\n"
        "missing = interop_plug_missing:Backend\n"
        "impostor = interop_plug:Impostor\n"  # its name clashes with the built-in numpy
    )
    path = _install_plugin(tmp_path, entry_points)
    result = _run(
        """
        import warnings
        import numpy as np, interop
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = interop.to_numpy([1.0, 2.0])
        assert out.tolist() == [1.0, 2.0]
        messages = sorted(str(w.message) for w in caught)
        assert len(messages) == 2, messages
        assert all(w.category is RuntimeWarning for w in caught)
        print("\\n".join(messages))
        """,
        path,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "'missing'" in result.stdout and "No module named 'interop_plug_missing'" in result.stdout
    )
    assert "'impostor'" in result.stdout and "'numpy', which is already registered" in result.stdout


def test_a_decision_made_before_a_registration_is_never_recorded() -> None:
    # One thread asks the registry about a type met for the first time; another
    # registers a backend for it before the first records the answer. The old answer
    # (the generic __array__ protocol) must not outlive the registration in the tree,
    # host view or convert tables. Interleaved here by hand, as the threads may.
    from interop._convert import fast
    from interop._tree import containers

    x = TinyArray([1.0, 2.0])
    since = _registry.generation()
    old = _registry.lookup(TinyArray)
    assert old is not None and old.name != "tiny"
    backend = TinyBackend()
    interop.register_backend(backend)
    try:
        containers._unless_registered(containers.leaf_backends, TinyArray, old, since)
        _registry.record(fast.by_name, "numpy", {TinyArray: None}, since)
        assert TinyArray not in containers.leaf_backends and "numpy" not in fast.by_name
        interop.to_numpy_tree([x], copy=True)
        assert backend.log[-1] == "view"  # the registered backend converted the leaf
        assert containers.leaf_backend(TinyArray) is backend
        # (Recorded in the generation it was asked in.)
        now = _registry.generation()
        _registry.record(fast.by_like, "key", "value", now)
        assert fast.by_like.pop("key") == "value"
    finally:
        _registry.unregister_backend("tiny")


# -- a third-party backend on an accelerator: trees check what its copies give ----------


class _DevArray:
    """A toy array on a pretend accelerator (its ``data`` is the device memory)."""

    def __init__(self, data: Any) -> None:
        self.data = np.asarray(data)


class _Done:
    def synchronize(self) -> None:
        pass


class Device(interop.Backend):
    """A third-party device backend with batched copies; ``wrong`` names its mistake."""

    name = "devlib"
    module = "numpy"

    def __init__(self, wrong: str) -> None:
        super().__init__()
        self.wrong = wrong

    def load(self) -> None:
        self.steps.update(to_host=lambda x, plan: self._get(x))

    def _get(self, x: _DevArray) -> Any:
        if self.wrong == "reset":
            raise ValueError("device dev:0 was reset")
        if self.wrong == "list":
            return x.data.tolist()
        # A framework's device-to-host copy: a NumPy scalar for 0-d data, which the
        # docs allow a last step to give.
        return x.data[()] if x.data.ndim == 0 else np.array(x.data)

    def matches(self, cls: type) -> bool:
        return cls is _DevArray

    def plan(self, x: Any, options: Any, /) -> interop.Plan:
        return interop.Plan(
            self.name, "dev:0", False, True, ("to_host",), dtype=x.data.dtype, copy_reason="moved"
        )

    def accelerator_check(self) -> Any:
        return lambda x: True

    def start_copy(self, obj: Any, pinned_left: int, /) -> Any:
        if self.wrong == "no-async":
            return None
        return interop.Copy(self._get(obj), 1, _Done(), obj)

    def check_result(self, x: Any, out: Any, options: Any, /) -> None:
        if out.dtype.hasobject:
            raise interop.ConversionError("expected numbers from devlib, got Python objects")

    def translate_error(self, x: Any, exc: Exception, /) -> Any:
        if isinstance(exc, ValueError) and "was reset" in str(exc):
            return interop.ConversionError(f"expected devlib data still on its device: {exc}")
        return None


def _every_entry_point(x: Any) -> dict[str, Any]:
    return {
        "to_numpy": lambda: interop.to_numpy(x),
        "list": lambda: interop.to_numpy([x])[0, ...],
        "tree": lambda: interop.to_numpy_tree({"x": x})["x"],
        "iter_numpy": lambda: next(iter(interop.iter_numpy([x]))),
        "numpy_function": lambda: interop.numpy_function(lambda v: v)(x),
    }


@pytest.mark.parametrize("wrong", ["nothing", "no-async"])
def test_a_device_backends_0d_copy_is_a_0d_array_everywhere(
    wrong: str, registered: list[interop.Backend]
) -> None:
    backend = Device(wrong)
    registered.append(backend)
    interop.register_backend(backend)
    for entry, call in _every_entry_point(_DevArray(2.5)).items():
        out = call()
        assert type(out) is np.ndarray and out.shape == () and out == 2.5, entry


@pytest.mark.parametrize(
    ("wrong", "data", "says"),
    [
        ("list", [1.0, 2.0], r"expected backend 'devlib'.* to give a NumPy array, got `list`"),
        ("nothing", np.array([1, "a"], dtype=object), "expected numbers from devlib"),
        ("reset", [1.0], "expected devlib data still on its device: device dev:0 was reset"),
    ],
)
def test_a_device_backends_failures_are_its_own_everywhere(
    wrong: str, data: Any, says: str, registered: list[interop.Backend]
) -> None:
    # Its copy's result is checked, its check_result asked and its errors translated,
    # by trees and pipelines as by to_numpy, and by a list naming the item's backend.
    backend = Device(wrong)
    registered.append(backend)
    interop.register_backend(backend)
    for entry, call in _every_entry_point(_DevArray(data)).items():
        with pytest.raises(interop.ConversionError, match=says):
            call()
        assert entry


class Forgetful(Nosy):
    """A third-party backend whose own step forgets to return its array."""

    name = "forgetful"

    def __init__(self) -> None:
        super().__init__("nothing")
        self.steps["values"] = lambda x, plan: None

    def plan(self, x: Any, options: Any, /) -> interop.Plan:
        # The library's tail steps by name, as a plugin may add them (docs/backends.md).
        steps, reason, dtype = ["values"], None, x.values.dtype
        if options.dtype is not None:
            steps.append("cast")
            reason, dtype = "a cast copies", np.dtype(options.dtype)
        elif options.copy is True:
            steps.append("copy")
            reason = "copy=True"
        return interop.Plan(
            self.name, "cpu", reason is None, False, tuple(steps), dtype=dtype, copy_reason=reason
        )


@pytest.mark.parametrize(
    ("options", "tail"),
    [
        ({}, "values\\)"),
        ({"copy": True}, "values -> copy"),
        ({"dtype": np.float32}, "values -> cast"),
    ],
)
def test_a_steps_wrong_answer_is_refused_before_the_librarys_tail_steps(
    options: dict[str, Any], tail: str, registered: list[interop.Backend]
) -> None:
    # Handed to the library's copy or cast, None gave array(None, dtype=object), or an
    # AttributeError from inside the library.
    backend = Forgetful()
    registered.append(backend)
    interop.register_backend(backend)
    for call in (interop.to_numpy, lambda x, **kw: interop.to_numpy_tree([x], **kw)[0]):
        with pytest.raises(
            interop.ConversionError,
            match=rf"expected backend 'forgetful'.*got `NoneType` from its steps \({tail}",
        ):
            call(_NosyArray(), **options)
