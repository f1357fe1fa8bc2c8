"""The backend registry: order, loaded flags, third-party backends and entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
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
