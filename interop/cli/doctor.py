"""``interop doctor``: versions, devices, and a capability matrix measured live.

For every installed framework, every placement it sees (the CPU and each
accelerator) and a set of dtypes, the doctor builds a small tensor from known
values, converts it with :func:`interop.to_numpy`, and reports the path taken (the
plan's steps), whether the result is zero-copy (checked with ``np.shares_memory``
against the framework's own NumPy view, never taken from the plan), the time per
call, and whether the values came back right. Only a wrong value is a failure:
a dtype that a framework lacks, or that ``interop`` does not convert yet, is
reported as such.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

import interop
from interop import _dtypes, testing
from interop.cli.errors import quote

__all__ = ["DTYPES", "FRAMEWORKS", "MATRIX_FRAMEWORKS", "Cell", "main", "render", "report"]

#: Frameworks whose versions are reported, in order; the first four get a matrix.
FRAMEWORKS = ("numpy", "torch", "tensorflow", "jax", "cupy", "dask")
MATRIX_FRAMEWORKS = testing.FRAMEWORKS
#: The dtypes of the matrix (float8_e4m3fn stands for the float8 family).
DTYPES = ("float32", "float16", "bfloat16", "float8_e4m3fn", "int64", "bool", "complex64")
_DISTRIBUTIONS = {
    "numpy": ("numpy",),
    "torch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-macos"),
    "jax": ("jax",),
    "cupy": ("cupy", "cupy-cuda12x", "cupy-cuda11x"),
    "dask": ("dask",),
}


@dataclasses.dataclass
class Cell:
    """One framework x placement x dtype of the capability matrix.

    Attributes:
        framework: The framework's name.
        device: Where the tensor was placed (``"cpu"``, ``"cuda:0"``, ...).
        dtype: The requested dtype.
        status: ``"ok"``, ``"wrong"`` (the values or dtype that came back are not the
            ones put in: the only failure), ``"unsupported"`` (the framework has no
            such dtype or cannot place it there) or ``"not converted"`` (``interop``
            raised; the detail says why).
        steps: The plan's steps, as :func:`interop.explain` reports them.
        zero_copy: Whether the result shares memory with the framework's own NumPy
            view (``None`` where the framework has no host view to compare with).
        plan_zero_copy: What the plan claimed.
        seconds: The time of one :func:`interop.to_numpy` call.
        result_dtype: The dtype of the result.
        detail: A short explanation for a status other than ``"ok"``.
    """

    framework: str
    device: str
    dtype: str
    status: str
    steps: list[str] = dataclasses.field(default_factory=list)
    zero_copy: bool | None = None
    plan_zero_copy: bool | None = None
    seconds: float | None = None
    result_dtype: str | None = None
    detail: str | None = None


def _version(*distributions: str) -> str | None:
    """The version of the first of ``distributions`` that is installed."""
    for dist in distributions:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _source(dtype: str) -> np.ndarray[Any, Any]:
    """Known values of ``dtype``, each exactly representable (even in float8)."""
    values = np.array([[0, 1, 2], [-3, 4, 0.5]], dtype=np.float32)
    if dtype == "bool":
        return values > 0.75
    if dtype == "complex64":
        return (values + 1j * values[::-1]).astype(np.complex64)
    if dtype == "int64":
        return values.astype(np.int64)
    ml = _dtypes.ml_dtype(dtype) if dtype in ("bfloat16", "float8_e4m3fn") else None
    return values.astype(ml if ml is not None else np.dtype(dtype))


# -- per framework: devices, and tensors built on them -----------------------------------------


@dataclasses.dataclass(frozen=True)
class _Placement:
    name: str
    make: Callable[[np.ndarray[Any, Any]], Any]
    # The framework's own NumPy view of a tensor (None where there is none on host).
    native: Callable[[Any], np.ndarray[Any, Any]] | None
    # The dtype name the framework itself reports for a tensor.
    dtype_of: Callable[[Any], str]


def _numpy_placements() -> tuple[list[str], list[_Placement]]:
    fw = testing.framework("numpy")
    return ["cpu"], [_Placement("cpu", fw.make, fw.native, lambda a: a.dtype.name)]


def _torch_placements() -> tuple[list[str], list[_Placement]]:
    import torch

    fw = testing.framework("torch")

    def make(device: str) -> Callable[[np.ndarray[Any, Any]], Any]:
        return lambda a: fw.make(a).to(device)

    def dtype_of(t: Any) -> str:
        return str(t.dtype).removeprefix("torch.")

    devices = ["cpu"]
    placements = [_Placement("cpu", fw.make, fw.native, dtype_of)]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            devices.append(f"cuda:{i} ({torch.cuda.get_device_name(i)})")
            placements.append(_Placement(f"cuda:{i}", make(f"cuda:{i}"), None, dtype_of))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
        placements.append(_Placement("mps", make("mps"), None, dtype_of))
    return devices, placements


def _tensorflow_placements() -> tuple[list[str], list[_Placement]]:
    import tensorflow as tf

    fw = testing.framework("tensorflow")

    def make(device: str) -> Callable[[np.ndarray[Any, Any]], Any]:
        def build(a: np.ndarray[Any, Any]) -> Any:
            with tf.device(device):
                return tf.identity(fw.make(a))

        return build

    devices = []
    placements = []
    for d in tf.config.list_logical_devices():
        short = d.name.removeprefix("/device:")
        devices.append(short)
        native = fw.native if d.device_type == "CPU" else None
        placements.append(_Placement(short.lower(), make(d.name), native, lambda t: t.dtype.name))
    return devices, placements


def _jax_placements() -> tuple[list[str], list[_Placement]]:
    import jax

    fw = testing.framework("jax")

    def make(device: Any) -> Callable[[np.ndarray[Any, Any]], Any]:
        return lambda a: jax.device_put(fw.make(a), device)

    found = list(jax.devices())
    if not any(d.platform == "cpu" for d in found):
        found = list(jax.devices("cpu")) + found
    devices = []
    placements = []
    for d in found:
        name = "cpu" if d.platform == "cpu" else f"{d.platform}:{d.id}"
        devices.append(f"{name} ({d.device_kind})" if d.platform != "cpu" else name)
        native = fw.native if d.platform == "cpu" else None
        placements.append(_Placement(name, make(d), native, lambda x: np.dtype(x.dtype).name))
    return devices, placements


_PLACEMENTS = {
    "numpy": _numpy_placements,
    "torch": _torch_placements,
    "tensorflow": _tensorflow_placements,
    "jax": _jax_placements,
}


# -- measuring one cell --------------------------------------------------------------------------


def _time_per_call(x: Any, budget: float = 0.002) -> float:
    """The fastest of three timings of repeated conversions, about ``budget`` seconds each."""
    to_numpy = interop.to_numpy
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            to_numpy(x)
        elapsed = time.perf_counter() - start
        if elapsed >= budget / 4 or number >= 100_000:
            break
        number *= 8
    best = elapsed / number
    for _ in range(2):
        start = time.perf_counter()
        for _ in range(number):
            to_numpy(x)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _same_values(out: np.ndarray[Any, Any], source: np.ndarray[Any, Any]) -> bool:
    common = np.complex128 if source.dtype.kind == "c" else np.float64
    return out.shape == source.shape and bool(
        np.array_equal(out.astype(common), source.astype(common))
    )


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {quote(exc)}"[:160]


def _cell(framework: str, placement: _Placement, dtype: str) -> Cell:
    cell = Cell(framework, placement.name, dtype, "ok")
    source = _source(dtype)
    try:
        x = placement.make(source)
    except Exception as exc:  # the framework has no such dtype, or not on this device
        cell.status = "unsupported"
        cell.detail = f"{framework} cannot build it: {_describe(exc)}"
        return cell
    expected = placement.dtype_of(x)
    try:
        plan = interop.explain(x)
        out = interop.to_numpy(x)
    except Exception as exc:  # reported, not fatal: it names what is not converted yet
        cell.status = "not converted"
        cell.detail = _describe(exc)
        return cell
    cell.steps = list(plan.steps)
    cell.plan_zero_copy = plan.zero_copy
    cell.result_dtype = out.dtype.name
    if placement.native is not None:
        cell.zero_copy = bool(np.shares_memory(out, placement.native(x)))
    else:
        cell.zero_copy = False  # device memory: any host result is a copy
    if out.dtype.name != expected or not _same_values(out, source):
        cell.status = "wrong"
        cell.detail = (
            f"expected {expected} values {source.tolist()}, got {out.dtype.name} {out.tolist()}"
        )
        return cell
    if expected != dtype:
        cell.detail = f"{framework} stores {dtype} as {expected}"
    if cell.plan_zero_copy != cell.zero_copy:
        cell.detail = (
            f"the plan says zero_copy={cell.plan_zero_copy}, np.shares_memory says {cell.zero_copy}"
        )
    cell.seconds = _time_per_call(x)
    return cell


def _cells(frameworks: Sequence[str]) -> Iterator[tuple[str, list[str], list[Cell]]]:
    for name in frameworks:
        try:
            importlib.import_module(name)
            devices, placements = _PLACEMENTS[name]()
        except Exception as exc:  # installed but broken on import
            yield name, [f"import failed: {_describe(exc)}"], []
            continue
        yield name, devices, [_cell(name, p, d) for p in placements for d in DTYPES]


def report(frameworks: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything ``interop doctor`` shows, as a JSON-ready dict.

    Args:
        frameworks: Limit the matrix to these frameworks (default: every installed one).

    Example:
        >>> from interop.cli import doctor
        >>> r = doctor.report(["numpy"])
        >>> r["ok"], r["matrix"][0]["framework"], r["matrix"][0]["status"]
        (True, 'numpy', 'ok')
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    requested = frameworks or MATRIX_FRAMEWORKS
    wanted = [f for f in requested if f in MATRIX_FRAMEWORKS and testing.available(f)]
    versions: dict[str, dict[str, Any]] = {}
    for name in FRAMEWORKS:
        version = _version(*_DISTRIBUTIONS[name]) if _installed(name) else None
        versions[name] = {"installed": version is not None, "version": version, "devices": []}
    matrix: list[Cell] = []
    for name, devices, cells in _cells(wanted):
        versions[name]["devices"] = devices
        matrix.extend(cells)
    ml_version = _version("ml_dtypes")
    return {
        "interop": interop.__version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "ml_dtypes": ml_version,
        "frameworks": versions,
        "dtypes": list(DTYPES),
        "matrix": [dataclasses.asdict(c) for c in matrix],
        "ok": all(c.status != "wrong" for c in matrix),
    }


def _format_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e3:.2f} ms"


def render(data: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = [
        f"interop {data['interop']} on {data['implementation']} {data['python']} "
        f"({data['platform']})",
        f"numpy {data['numpy']}, ml_dtypes {data['ml_dtypes'] or 'not installed'}",
        "",
        f"{'framework':<11} {'version':<16} devices",
    ]
    for name, info in data["frameworks"].items():
        if name == "numpy":
            continue
        version = info["version"] or "not installed"
        devices = ", ".join(info["devices"]) if info["devices"] else "-"
        if info["installed"] and not info["devices"]:
            devices = "(not examined)" if name in MATRIX_FRAMEWORKS else "-"
        lines.append(f"{name:<11} {version:<16} {devices}")
    lines += [
        "",
        "to_numpy, measured now (zero-copy: np.shares_memory with the framework's own view)",
    ]
    rows = [("framework", "device", "dtype", "path", "zero-copy", "time/call", "result")]
    for c in data["matrix"]:
        path = " -> ".join(c["steps"]) if c["steps"] else "(the same array)"
        zc = {True: "yes", False: "no", None: "-"}[c["zero_copy"]]
        result = c["status"] + (f": {c['detail']}" if c["detail"] else "")
        rows.append(
            (c["framework"], c["device"], c["dtype"], path, zc, _format_time(c["seconds"]), result)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        lines.append(
            "  ".join(v.ljust(w) for v, w in zip(r[:6], widths, strict=True)) + "  " + r[6]
        )
    wrong = sum(c["status"] == "wrong" for c in data["matrix"])
    lines += [
        "",
        "all conversions correct" if data["ok"] else f"{wrong} conversions returned WRONG values",
    ]
    return "\n".join(lines)


def main(frameworks: Sequence[str] | None = None, *, as_json: bool = False) -> int:
    """Print the report (text or JSON); the exit status is 1 if any conversion was wrong."""
    data = report(frameworks)
    print(json.dumps(data, indent=2) if as_json else render(data))
    return 0 if data["ok"] else 1
