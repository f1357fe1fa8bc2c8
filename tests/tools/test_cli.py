"""The ``interop`` command line, run as users run it: ``python -m interop`` in a subprocess."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import interop
from interop.cli import files, main

# Every test here runs the command line or the benchmark suite in fresh processes
# (seconds each): the slow tier.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STATUSES = {"ok", "wrong", "unsupported", "not converted"}


def environment() -> dict[str, str]:
    """The environment of a child ``python`` with this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def run(
    *args: str, cwd: Path | None = None, code: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``python -m interop ARGS`` (or ``python -c CODE``) with this checkout importable."""
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "interop"]
    return subprocess.run(
        [*command, *args],
        cwd=cwd or ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def failed(out: subprocess.CompletedProcess[str]) -> str:
    """The error of a failed ``convert``, checked to be one clean line with exit status 2."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert out.stderr.startswith("interop convert: error: "), out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.endswith("\n"), out.stderr
    assert "Traceback" not in out.stderr and "\x1b" not in out.stderr, out.stderr
    return out.stderr


def leftovers(directory: Path) -> list[str]:
    """Temporary files a failed write could have left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# -- doctor -------------------------------------------------------------------------------------


def test_bare_command_runs_doctor_and_reports_every_installed_framework() -> None:
    out = run()
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert f"numpy {np.__version__}" in text
    assert "ml_dtypes" in text
    assert "all conversions correct" in text
    for name in ("torch", "tensorflow", "jax"):
        assert name in text
    # Every installed framework converts float32 on its CPU zero-copy, measured.
    rows = [line.split() for line in text.splitlines()]
    float32 = {r[0]: r for r in rows if len(r) > 4 and r[2] == "float32"}
    for name in ("numpy", "torch", "tensorflow", "jax"):
        assert "yes" in float32[name] and float32[name][-1] == "ok", float32[name]


def test_doctor_json_schema() -> None:
    out = run("doctor", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {
        "interop",
        "python",
        "implementation",
        "platform",
        "numpy",
        "ml_dtypes",
        "frameworks",
        "dtypes",
        "matrix",
        "ok",
    } <= set(data)
    assert data["ok"] is True
    assert data["numpy"] == np.__version__
    assert set(data["dtypes"]) >= {"float32", "float16", "bfloat16", "int64", "bool", "complex64"}
    assert any(d.startswith("float8") for d in data["dtypes"])
    for name, info in data["frameworks"].items():
        assert set(info) == {"installed", "version", "devices"}
        assert (info["version"] is not None) is info["installed"], name
    examined = {c["framework"] for c in data["matrix"]}
    assert examined == {
        f for f in ("numpy", "torch", "tensorflow", "jax") if data["frameworks"][f]["installed"]
    }
    for name in examined - {"numpy"}:
        assert data["frameworks"][name]["devices"], name
    for cell in data["matrix"]:
        assert set(cell) == {
            "framework",
            "device",
            "dtype",
            "status",
            "steps",
            "zero_copy",
            "plan_zero_copy",
            "seconds",
            "result_dtype",
            "detail",
        }
        assert cell["status"] in STATUSES
        assert cell["dtype"] in data["dtypes"]
        if cell["status"] == "ok":
            assert cell["seconds"] > 0
            assert isinstance(cell["zero_copy"], bool)
    # Every framework x dtype is there for the CPU, and the common dtypes convert
    # zero-copy (checked by the doctor with np.shares_memory).
    cpu = {(c["framework"], c["dtype"]): c for c in data["matrix"] if c["device"].startswith("cpu")}
    assert len(cpu) == len(examined) * len(data["dtypes"])
    for name in examined:
        cell = cpu[(name, "float32")]
        assert cell["status"] == "ok" and cell["zero_copy"] is True, cell


def test_doctor_limited_to_one_framework() -> None:
    out = run("doctor", "--json", "--framework", "numpy")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {c["framework"] for c in data["matrix"]} == {"numpy"}
    assert all(c["status"] == "ok" and c["zero_copy"] for c in data["matrix"])


def test_doctor_exits_nonzero_when_a_conversion_is_wrong() -> None:
    # A deliberately broken fast path (off by one) in the real library, in a child
    # process: the doctor must notice from the values alone.
    pytest.importorskip("torch")
    code = (
        "import sys, interop, interop.cli.doctor as doctor\n"
        "from interop.backends.torch import TorchBackend\n"
        "TorchBackend.host_view_for = lambda self, cls: (lambda x: x.numpy() + 1)\n"
        "sys.exit(doctor.main(['torch'], as_json=False))\n"
    )
    out = run(code=code)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "wrong" in out.stdout and "returned WRONG values" in out.stdout


def run_into_closed_pipe(
    *args: str, cwd: Path | None = None, closed: str = "stdout"
) -> subprocess.CompletedProcess[str]:
    """``python -m interop ARGS`` with stdout (or stderr, or both) a pipe no one reads.

    What ``interop | head -1`` makes once ``head`` has exited; deterministic, since
    the pipe's reading end is closed before the command starts.
    """
    read, write = os.pipe()
    os.close(read)
    streams: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    for name in ("stdout", "stderr") if closed == "both" else (closed,):
        streams[name] = write
    try:
        return subprocess.run(
            [sys.executable, "-m", "interop", *args],
            cwd=cwd or ROOT,
            env=environment(),
            text=True,
            timeout=300,
            **streams,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "args",
    [(), ("doctor", "--framework", "numpy"), ("doctor", "--json", "--framework", "numpy")],
    ids=["bare", "doctor", "json"],
)
def test_a_report_to_a_closed_pipe_ends_quietly_with_status_141(args: tuple[str, ...]) -> None:
    # `python -m interop | head -1`: no traceback, and 128 + SIGPIPE, as a shell
    # reports for a command that SIGPIPE ended (1 means "wrong values").
    out = run_into_closed_pipe(*args)
    assert out.returncode == 141, out.stderr
    # (TensorFlow's native logging may write to stderr as it loads: not a line of ours.)
    assert "Traceback" not in out.stderr and "Error" not in out.stderr, out.stderr


def test_a_convert_whose_summary_goes_to_a_closed_pipe_succeeds(tmp_path: Path) -> None:
    values = np.array([1.5, -0.0, np.nan, 3e38], dtype=np.float32)
    np.savez(tmp_path / "in.npz", w=values, b=np.arange(3))
    # The file is written in full: a success, though its summary went nowhere.
    out = run_into_closed_pipe("convert", "in.npz", "out.safetensors", cwd=tmp_path)
    assert (out.returncode, out.stderr) == (0, "")
    back = files.convert(tmp_path / "out.safetensors", tmp_path / "back.npz")
    assert back.arrays == 2
    with np.load(tmp_path / "back.npz") as z:
        assert z["w"].view(np.uint32).tolist() == values.view(np.uint32).tolist()
        assert z["b"].tolist() == [0, 1, 2]
    # Both streams closed: the same.
    out = run_into_closed_pipe("convert", "in.npz", "o2.npz", cwd=tmp_path, closed="both")
    assert out.returncode == 0
    assert (tmp_path / "o2.npz").exists()
    # A failure whose error line cannot be written still fails, with status 2.
    out = run_into_closed_pipe("convert", "in.npz", "o3.npy", cwd=tmp_path, closed="stderr")
    assert out.returncode == 2 and out.stdout == ""
    assert not (tmp_path / "o3.npy").exists() and leftovers(tmp_path) == []
    # So does a usage error.
    assert run_into_closed_pipe("convert", cwd=tmp_path, closed="stderr").returncode == 2


def run_with_closed(*args: str, cwd: Path, closed: str) -> subprocess.CompletedProcess[str]:
    """``python -m interop ARGS`` started with stdout or stderr closed (``>&-``, ``2>&-``).

    Python then has no such stream (``sys.stdout`` is ``None``), or one whose
    descriptor is closed, where a file it opened took its number and closed it.
    """
    redirect = {"stdout": ">&-", "stderr": "2>&-"}[closed]
    shell = shutil.which("sh")
    assert shell is not None
    return subprocess.run(
        [shell, "-c", f'exec "$0" "$@" {redirect}', sys.executable, "-m", "interop", *args],
        cwd=cwd,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_commands_with_stdout_closed_end_quietly_with_their_own_status(tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", w=np.arange(3.0), b=np.arange(2))
    # Python writes nothing where it has no stdout: the file is the result.
    out = run_with_closed("convert", "in.npz", "out.npz", cwd=tmp_path, closed="stdout")
    assert (out.returncode, out.stderr) == (0, "")
    with np.load(tmp_path / "out.npz") as z:
        assert z["w"].tolist() == [0.0, 1.0, 2.0]
    for args in (("doctor", "--framework", "numpy"), ("doctor", "--json", "--framework", "numpy")):
        out = run_with_closed(*args, cwd=tmp_path, closed="stdout")
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr and "Error" not in out.stderr, out.stderr
    # A failure still fails with its one line (two arrays cannot go to one .npy).
    out = run_with_closed("convert", "in.npz", "o.npy", cwd=tmp_path, closed="stdout")
    assert failed(out).startswith("interop convert: error: expected one array for a .npy")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_output_to_a_full_disk_is_one_line_on_stderr(tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", w=np.arange(3.0))

    def into_full_disk(*args: str) -> subprocess.CompletedProcess[str]:
        with open("/dev/full", "w") as full:  # every write: ENOSPC
            return subprocess.run(
                [sys.executable, "-m", "interop", *args],
                cwd=tmp_path,
                env=environment(),
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=300,
            )

    out = into_full_disk("convert", "in.npz", "out.npz")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert out.stderr.startswith("interop convert: error: wrote out.npz, but not its summary")
    with np.load(tmp_path / "out.npz") as z:
        assert z["w"].tolist() == [0.0, 1.0, 2.0]
    out = into_full_disk("doctor", "--framework", "numpy")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("interop: error: cannot write the report")


def test_a_failed_convert_with_stderr_closed_still_exits_2(tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", w=np.arange(3.0), b=np.arange(2))
    # Two arrays cannot go to one .npy: its error line has nowhere to go.
    out = run_with_closed("convert", "in.npz", "o.npy", cwd=tmp_path, closed="stderr")
    assert (out.returncode, out.stdout) == (2, "")
    assert not (tmp_path / "o.npy").exists() and leftovers(tmp_path) == []
    # So does a usage error; a success is one, its summary on stdout.
    assert run_with_closed("convert", cwd=tmp_path, closed="stderr").returncode == 2
    out = run_with_closed("convert", "in.npz", "o.npz", cwd=tmp_path, closed="stderr")
    assert out.returncode == 0 and out.stdout.startswith("wrote 2 arrays")
    out = run_with_closed("convert", "in.npz", "p.npz", "--progress", cwd=tmp_path, closed="stderr")
    assert out.returncode == 0 and (tmp_path / "p.npz").exists()


# -- convert: round trips -----------------------------------------------------------------------


def torch_checkpoint(path: Path) -> dict[str, Any]:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    optim = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(2, 4)).sum().backward()
    optim.step()
    checkpoint = {
        "model": model.state_dict(),
        "optim": optim.state_dict(),
        "epoch": 7,
        "extra": {"note": "text", "nested": [torch.arange(3), torch.ones(2, 2)]},
    }
    torch.save(checkpoint, path)
    return checkpoint


def test_convert_pytorch_nested_state_dict_and_optimizer(tmp_path: Path) -> None:
    ckpt = torch_checkpoint(tmp_path / "ckpt.pt")
    out = run("convert", "ckpt.pt", "ckpt.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "skipped" in out.stdout and "extra.note (str)" in out.stdout
    with np.load(tmp_path / "ckpt.npz") as z:
        for key, tensor in ckpt["model"].items():
            np.testing.assert_array_equal(z[f"model.{key}"], tensor.numpy())
            assert z[f"model.{key}"].dtype == np.float32
        for index, state in ckpt["optim"]["state"].items():
            for name, value in state.items():
                np.testing.assert_array_equal(z[f"optim.state.{index}.{name}"], value.numpy())
        group = ckpt["optim"]["param_groups"][0]
        np.testing.assert_array_equal(z["optim.param_groups.0.params"], group["params"])
        np.testing.assert_array_equal(z["optim.param_groups.0.betas"], group["betas"])
        assert z["optim.param_groups.0.lr"] == group["lr"]
        assert z["epoch"] == 7
        np.testing.assert_array_equal(z["extra.nested.0"], [0, 1, 2])
        np.testing.assert_array_equal(z["extra.nested.1"], np.ones((2, 2)))


def test_convert_pytorch_key_filters_and_npy_output(tmp_path: Path) -> None:
    ckpt = torch_checkpoint(tmp_path / "ckpt.pth")
    out = run("convert", "ckpt.pth", "w.npz", "--keys", "model.*.weight", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "w.npz") as z:
        assert sorted(z.files) == ["model.0.weight", "model.2.weight"]
    out = run("convert", "ckpt.pth", "s.npz", "--keys-regex", r"^optim\.state\.0\.", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "s.npz") as z:
        assert sorted(z.files) == [f"optim.state.0.{k}" for k in ("exp_avg", "exp_avg_sq", "step")]
    out = run("convert", "ckpt.pth", "bias.npy", "--keys", "model.2.bias", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "bias.npy"), ckpt["model"]["2.bias"].numpy())


def test_convert_bfloat16_needs_upcast_and_is_exact_with_it(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    values = torch.tensor([[0.5, -3.0, 1024.0], [1 / 3, 7.25, -0.0]])
    torch.save({"w": values.to(torch.bfloat16), "i": torch.arange(4)}, tmp_path / "bf.pt")
    error = failed(run("convert", "bf.pt", "bf.npz", cwd=tmp_path))
    assert "bfloat16" in error and "--upcast" in error
    assert not (tmp_path / "bf.npz").exists() and leftovers(tmp_path) == []
    out = run("convert", "bf.pt", "bf.npz", "--upcast", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "bf.npz") as z:
        assert z["w"].dtype == np.float32
        np.testing.assert_array_equal(z["w"], values.to(torch.bfloat16).float().numpy())
        assert z["i"].dtype == np.int64


def test_convert_safetensors_with_bfloat16_and_float8(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    tensors = {
        "emb.weight": torch.linspace(-2, 2, 12).reshape(3, 4).to(torch.bfloat16),
        "fp8": torch.tensor([0.5, -1.0, 448.0]).to(torch.float8_e4m3fn),
        "f16": torch.tensor([1.5, 2.5], dtype=torch.float16),
        "ids": torch.arange(5, dtype=torch.int32),
        "mask": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
    }
    safetensors_torch.save_file(tensors, tmp_path / "m.safetensors")
    out = run("convert", "m.safetensors", "m.npz", "--upcast", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "m.npz") as z:
        assert sorted(z.files) == sorted(tensors)
        for key, t in tensors.items():
            expected = (
                t.float().numpy() if t.dtype in (torch.bfloat16, torch.float8_e4m3fn) else t.numpy()
            )
            assert z[key].dtype == expected.dtype, key
            np.testing.assert_array_equal(z[key], expected)
    # --dtype casts floating-point arrays only.
    out = run("convert", "m.safetensors", "h.npz", "--upcast", "--dtype", "float16", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "h.npz") as z:
        assert z["emb.weight"].dtype == np.float16 and z["f16"].dtype == np.float16
        assert z["ids"].dtype == np.int32 and z["mask"].dtype == np.bool_


def _bf16_with_nan_payloads() -> Any:
    torch = pytest.importorskip("torch")
    bits = np.array([0x7FC1, 0xFFC3, 0x7F81, 0x0001, 0x3F80, 0xC2F7], dtype=np.uint16)
    return torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16).reshape(2, 3)


@pytest.mark.parametrize("out", ["m.safetensors", "m.parquet", "m.arrow"])
def test_convert_writes_exact_dtypes_to_formats_that_keep_them(tmp_path: Path, out: str) -> None:
    torch = pytest.importorskip("torch")
    if not out.endswith(".safetensors"):
        pytest.importorskip("pyarrow")
    checkpoint = {
        "model": {"w": _bf16_with_nan_payloads(), "b": torch.zeros(3)},
        "fp8": torch.tensor([0.5, -1.0, 448.0]).to(torch.float8_e4m3fn),
        "step": 7,
    }
    torch.save(checkpoint, tmp_path / "m.pt")
    result = run("convert", "m.pt", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 4 arrays" in result.stdout
    # Back through the command line to safetensors, read with the safetensors library.
    back = run("convert", out, "back.safetensors", cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    safetensors_torch = pytest.importorskip("safetensors.torch")
    loaded = safetensors_torch.load_file(tmp_path / "back.safetensors")
    w = checkpoint["model"]["w"]
    assert loaded["model.w"].dtype == torch.bfloat16
    assert torch.equal(loaded["model.w"].view(torch.int16), w.view(torch.int16))
    assert loaded["fp8"].dtype == torch.float8_e4m3fn
    assert torch.equal(loaded["fp8"].view(torch.uint8), checkpoint["fp8"].view(torch.uint8))
    assert loaded["step"].item() == 7 and loaded["step"].shape == ()
    # The readers of other tools see the file's own types.
    if out.endswith(".parquet"):
        pq = pytest.importorskip("pyarrow.parquet")
        field = pq.read_schema(tmp_path / out).field("model.w")
        assert field.type.extension_name == "interop.dtype"


def test_convert_refuses_dtypes_a_format_cannot_store(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": _bf16_with_nan_payloads()}, tmp_path / "bf.pt")
    error = failed(run("convert", "bf.pt", "bf.npz", cwd=tmp_path))
    assert ".safetensors, .parquet and .arrow" in error
    np.save(tmp_path / "c.npy", np.array([1 + 2j], np.complex128))
    error = failed(run("convert", "c.npy", "c.safetensors", cwd=tmp_path))
    assert "complex128" in error and ".parquet" in error
    assert leftovers(tmp_path) == [] and not (tmp_path / "c.safetensors").exists()


# A child in which importing pyarrow fails as where the optional extra is not
# installed: a finder of the import system that raises ModuleNotFoundError for it.
# (Not sys.modules["pyarrow"] = None, which makes pyarrow look imported.)
BLOCK_IMPORT = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == BLOCKED or name.startswith(BLOCKED + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Missing())
"""
NO_PYARROW = BLOCK_IMPORT.replace("BLOCKED", "'pyarrow'")
NO_PARQUET = BLOCK_IMPORT.replace("BLOCKED", "'pyarrow.parquet'")
MAIN = "from interop.cli import main\nsys.exit(main(sys.argv[1:]))\n"


@pytest.mark.parametrize("name", ["o.parquet", "o.arrow", "o.feather"])
def test_arrow_outputs_without_pyarrow_are_one_line_errors(tmp_path: Path, name: str) -> None:
    np.savez(tmp_path / "in.npz", w=np.arange(3.0))
    error = failed(run("convert", "in.npz", name, cwd=tmp_path, code=NO_PYARROW + MAIN))
    assert error == (
        f"interop convert: error: expected pyarrow to read or write '{name}', got no pyarrow "
        "module. hint: pip install pyarrow\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]
    # interop.save checks the same, before converting any array of the tree.
    code = NO_PYARROW + (
        "import numpy as np, interop\n"
        "try:\n"
        "    interop.save({'w': np.ones(2)}, sys.argv[1])\n"
        "except interop.InteropError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = run(name, cwd=tmp_path, code=code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ConvertError expected pyarrow to read or write")
    assert out.stdout.endswith("hint: pip install pyarrow\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz"]


def test_parquet_without_its_pyarrow_module_is_a_one_line_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", w=np.arange(3.0))
    error = failed(run("convert", "in.npz", "o.parquet", cwd=tmp_path, code=NO_PARQUET + MAIN))
    assert "expected pyarrow with Parquet support to read or write 'o.parquet'" in error
    assert error.endswith(". hint: pip install pyarrow\n")
    (tmp_path / "in.parquet").write_bytes(b"PAR1")
    error = failed(run("convert", "in.parquet", "o.npz", cwd=tmp_path, code=NO_PYARROW + MAIN))
    assert "got no pyarrow module. hint: pip install pyarrow" in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npz", "in.parquet"]


def test_convert_reads_tables_of_rows(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    feather = pytest.importorskip("pyarrow.feather")
    images = np.arange(4 * 2 * 3, dtype=np.uint8).reshape(4, 2, 3)
    table = pa.table(
        {
            "label": pa.array([1, 0, 1, 1]),
            "image": pa.FixedShapeTensorArray.from_numpy_ndarray(images),
            "name": pa.array(["a", "b", "c", "d"]),
        }
    )
    pq.write_table(table, tmp_path / "rows.parquet")
    feather.write_feather(table, tmp_path / "rows.arrow")
    for name in ("rows.parquet", "rows.arrow"):
        out = run("convert", name, "rows.npz", "--force", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "skipped 1 entries" in out.stdout and "name (string)" in out.stdout
        with np.load(tmp_path / "rows.npz") as z:
            np.testing.assert_array_equal(z["image"], images)
            assert z["label"].tolist() == [1, 0, 1, 1]
    with_nulls = pa.table({"x": pa.array([1.0, None])})
    pq.write_table(with_nulls, tmp_path / "nulls.parquet")
    assert "1 null" in failed(run("convert", "nulls.parquet", "n.npz", cwd=tmp_path))


def test_convert_damaged_arrow_files_fail_cleanly(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    feather = pytest.importorskip("pyarrow.feather")
    table = pa.table({"w": np.arange(1000.0)})
    pq.write_table(table, tmp_path / "full.parquet")
    feather.write_feather(table, tmp_path / "full.arrow")
    for name in ("full.parquet", "full.arrow"):
        data = (tmp_path / name).read_bytes()
        cut = "cut" + name[4:]
        (tmp_path / cut).write_bytes(data[: len(data) // 2])
        assert "cannot read" in failed(run("convert", cut, "o.npz", cwd=tmp_path))
        (tmp_path / cut).write_bytes(b"\x00" * 64)
        assert "cannot read" in failed(run("convert", cut, "o.npz", cwd=tmp_path))
    # A tensor column whose metadata names a dtype that does not exist.
    bad = pa.field(
        "w",
        pa.uint16(),
        metadata={
            b"ARROW:extension:name": b"interop.dtype",
            b"ARROW:extension:metadata": b'{"dtype": "object"}',
        },
    )
    pq.write_table(
        pa.table([pa.array([1], pa.uint16())], schema=pa.schema([bad])), tmp_path / "b.parquet"
    )
    assert "interop.dtype" in failed(run("convert", "b.parquet", "o.npz", cwd=tmp_path))
    assert leftovers(tmp_path) == [] and not (tmp_path / "o.npz").exists()


def test_convert_checks_the_size_of_arrow_outputs(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    np.save(tmp_path / "a.npy", np.zeros(100_000))
    error = failed(run("convert", "a.npy", "a.parquet", "--max-bytes", "100K", cwd=tmp_path))
    assert "at most 102400 bytes" in error
    out = run("convert", "a.npy", "a.parquet", "--max-bytes", "1M", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.parquet").stat().st_size <= 1 << 20


def test_convert_npy_and_npz_round_trips(tmp_path: Path) -> None:
    a = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2]  # not contiguous
    np.save(tmp_path / "a.npy", a)
    out = run("convert", "a.npy", "a.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "a.npz") as z:
        assert z.files == ["a"]
        np.testing.assert_array_equal(z["a"], a)
    out = run("convert", "a.npz", "back.npy", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "back.npy"), a)
    np.savez(tmp_path / "many.npz", x=np.ones(3, np.float32), y=np.arange(4), z=np.eye(2) + 0j)
    out = run("convert", "many.npz", "f16.npz", "--dtype", "float16", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "f16.npz") as z:
        assert z["x"].dtype == np.float16 and z["y"].dtype == np.int64
        assert z["z"].dtype == np.complex128


def test_convert_progress_bar(tmp_path: Path) -> None:
    np.savez(tmp_path / "in.npz", **{f"k{i}": np.full(1000, i) for i in range(5)})
    out = run("convert", "in.npz", "out.npz", "--progress", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "100.0%" in out.stderr or "100%" in out.stderr
    quiet = run("convert", "in.npz", "out2.npz", "--no-progress", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_convert_force_replaces_existing_output(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(3))
    (tmp_path / "out.npz").write_bytes(b"old")
    assert "--force" in failed(run("convert", "a.npy", "out.npz", cwd=tmp_path))
    assert (tmp_path / "out.npz").read_bytes() == b"old"
    out = run("convert", "a.npy", "out.npz", "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_array_equal(z["a"], np.arange(3))


# -- convert: errors, and nothing written after one ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("missing.pt", "o.npz"), "no such file"),
        (("a.txt", "o.npz"), "expected an input file ending in"),
        (("a.npy", "o.csv"), "expected an output file ending in one of .npz, .npy"),
        (("two.npz", "o.npy"), "expected one array for a .npy output"),
        (("two.npz", "o.npz", "--keys", "nothing*"), "expected --keys to select arrays"),
        (("a.npy", "o.npz", "--dtype", "int8"), "floating-point dtype"),
        (("a.npy", "o.npz", "--dtype", "notadtype"), "NumPy dtype name"),
        # np.dtype's own grammar: unbalanced brackets (SyntaxError), a shape too
        # large (ValueError).
        (("a.npy", "o.npz", "--dtype", "(f4,3)"), "got '(f4,3)'. hint: name one such as"),
        (("a.npy", "o.npz", "--dtype", "10000000000000000000000f4"), "NumPy dtype name"),
        (("a.npy", "o.npz", "--dtype", "(9999999999,99999999999)f4"), "NumPy dtype name"),
        (("a.npy", "o.npz", "--keys-regex", "("), "regular expression"),
        (("objects.npy", "o.npz"), "refused to load"),
        (("objects.npz", "o.npz"), "refused to load"),
        (("garbage.npz", "o.npz"), "cannot read"),
        (("garbage.safetensors", "o.npz"), "safetensors"),
        (("dir.npy", "o.npz"), "a directory"),
        (("a.npy", "nodir/o.npz"), "existing output directory"),
        (("a.npy", "dir.npy"), "which is a directory"),
        (("a.npy", "dir.npy", "--force"), "which is a directory"),
        (("a.npy", "o.npz", "--max-bytes", "lots"), "expected a number of bytes"),
        (("a.npy", "o.npz", "--max-arrays", "0"), "expected a positive whole number"),
        (("a.npy", "o.npz", "--bogus"), "unrecognized arguments: --bogus. hint: interop convert"),
    ],
)
def test_convert_errors(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    np.save(tmp_path / "a.npy", np.arange(3))
    (tmp_path / "a.txt").write_text("1 2 3")
    np.savez(tmp_path / "two.npz", x=np.ones(2), y=np.zeros(2))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "objects.npz", x=np.ones(2), o=np.array([None], dtype=object))
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 64)
    (tmp_path / "dir.npy").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert message in failed(run("convert", *args, cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    assert not any((tmp_path / "dir.npy").iterdir())


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["doctor", "--frmework", "torch"], "interop doctor: error: unrecognized arguments: "),
        (["--bogus"], "interop: error: unrecognized arguments: --bogus. hint: interop --help"),
    ],
)
def test_unknown_words_are_the_error_of_the_command_they_follow(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(says)


def test_truncated_inputs_fail_and_leave_no_output(tmp_path: Path) -> None:
    torch_checkpoint(tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    safetensors_numpy.save_file(
        {"w": np.arange(1000, dtype=np.float32)}, tmp_path / "full.safetensors"
    )
    st = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(st[:-100])
    np.savez(tmp_path / "full.npz", w=np.arange(1000.0))
    npz = (tmp_path / "full.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(npz[: len(npz) // 2])
    np.save(tmp_path / "full.npy", np.arange(1000.0))
    npy = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(npy[: len(npy) // 2])
    for name in ("cut.pt", "cut.safetensors", "cut.npz", "cut.npy"):
        # An existing output must survive a failed --force run untouched.
        (tmp_path / "out.npz").write_bytes(b"previous")
        failed(run("convert", name, "out.npz", "--force", cwd=tmp_path))
        assert (tmp_path / "out.npz").read_bytes() == b"previous", name
        assert leftovers(tmp_path) == [], name


def test_failure_after_some_arrays_were_written_leaves_nothing(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    # "a" converts and is written to the temporary file, then "b" (bfloat16, no
    # --upcast) fails: the temporary file must go, and no output appear.
    torch.save({"a": torch.ones(1000), "b": torch.ones(3, dtype=torch.bfloat16)}, tmp_path / "m.pt")
    failed(run("convert", "m.pt", "m.npz", cwd=tmp_path))
    assert not (tmp_path / "m.npz").exists()
    assert leftovers(tmp_path) == []


class Payload:
    """An object whose unpickling creates a file: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_malicious_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    torch.save({"weight": torch.ones(2), "payload": Payload(marker)}, tmp_path / "evil.pt")
    # The file is genuinely malicious: a full unpickle runs the payload.
    loaded = torch.load(tmp_path / "evil.pt", weights_only=False)
    loaded["payload"].close()  # the payload opened a file
    assert marker.exists()
    marker.unlink()

    error = failed(run("convert", "evil.pt", "evil.npz", cwd=tmp_path))
    assert "refused to load" in error and "weights_only=True" in error
    assert not marker.exists()
    assert not (tmp_path / "evil.npz").exists()
    assert leftovers(tmp_path) == []


# -- convert: hostile inputs, limits, names and signals -----------------------------------------
# Every hostile file is made here, in tmp_path; none is kept in the repository.


def safetensors_file(path: Path, header: bytes | dict[str, Any], data: bytes = b"") -> None:
    """A safetensors file with this exact header (a dict is written as JSON) and data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def npz_bomb(path: Path, nbytes: int, chunk: int = 1 << 20) -> None:
    """A valid .npz of one all-zero uint8 array of ``nbytes``, about ``nbytes / 1000`` on disk.

    The member is deflated by hand: after a full flush zlib starts afresh, so every
    chunk of zeros compresses to the same bytes, and the stream is one compressed
    chunk repeated. Only the CRC reads all the zeros, a chunk at a time.
    """
    head = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        head, {"descr": "|u1", "fortran_order": False, "shape": (nbytes,)}
    )
    header = head.getvalue()
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(bytes(chunk)) + deflate.flush(zlib.Z_FULL_FLUSH)
    data = start + block * (nbytes // chunk) + deflate.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(nbytes // chunk):
        crc = zlib.crc32(bytes(chunk), crc)
    name = b"x.npy"
    # version 2.0, no flags, deflate, 1980-01-01, crc, sizes
    fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(data), len(header) + nbytes)
    local = b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name
    central = b"PK\x01\x02" + struct.pack("<H", 20) + fields
    central += struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, 0) + name
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), len(local + data), 0)
    path.write_bytes(local + data + central + end)


def test_shared_references_are_flattened_once_under_their_first_path(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    d: dict[str, Any] = {"x": torch.zeros(1)}
    for _ in range(40):
        d = {"a": d, "b": d}  # 2**40 paths to one tensor, in a file of 2 KB
    torch.save(d, tmp_path / "dag.pt")
    out = run("convert", "dag.pt", "dag.npz", cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "skipped 40 references to an array or container already written" in out.stdout
    with np.load(tmp_path / "dag.npz") as z:
        assert z.files == [".".join(["a"] * 40 + ["x"])]
    # A tensor saved under two keys is written once too, the second key reported.
    t = torch.arange(3.0)
    torch.save({"w": t, "tied": t, "betas": (0.9, 0.99), "again": (0.9, 0.99)}, tmp_path / "t.pt")
    out = run("convert", "t.pt", "t.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "tied (= w)" in out.stdout
    with np.load(tmp_path / "t.npz") as z:
        assert sorted(z.files) == ["again", "betas", "w"]  # numbers are values, not references


def test_nesting_depth_and_array_count_are_limited(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    deep: Any = torch.ones(1)
    for _ in range(100):
        deep = {"k": deep}
    torch.save(deep, tmp_path / "deep.pt")
    assert "nested at most 64 deep" in failed(run("convert", "deep.pt", "o.npz", cwd=tmp_path))
    np.savez(tmp_path / "many.npz", **{f"k{i}": np.zeros(1) for i in range(5)})
    error = failed(run("convert", "many.npz", "o.npz", "--max-arrays", "4", cwd=tmp_path))
    assert "at most 4 arrays" in error and "--max-arrays" in error
    assert run("convert", "many.npz", "o.npz", "--max-arrays", "5", cwd=tmp_path).returncode == 0


def test_zip_bomb_is_refused_by_the_byte_limit_before_writing(tmp_path: Path) -> None:
    npz_bomb(tmp_path / "small.npz", 4 << 20)
    with np.load(tmp_path / "small.npz") as z:  # the generator makes real .npz files
        assert z["x"].shape == (4 << 20,) and not z["x"].any()
    npz_bomb(tmp_path / "bomb.npz", 2 << 30)
    assert (tmp_path / "bomb.npz").stat().st_size < 3 << 20
    error = failed(run("convert", "bomb.npz", "out.npz", "--max-bytes", "64M", cwd=tmp_path))
    assert "expected an output of at most 67108864 bytes, got about 2147" in error
    assert not (tmp_path / "out.npz").exists() and leftovers(tmp_path) == []
    out = run("convert", "small.npz", "out.npz", "--max-bytes", "64M", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


def test_default_byte_limit_is_the_free_space_at_the_destination(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    np.save(tmp_path / "a.npy", np.zeros(1000))
    usage = shutil.disk_usage(tmp_path)._replace(free=4000)
    monkeypatch.setattr(files.limits.shutil, "disk_usage", lambda path: usage)
    with pytest.raises(interop.InteropError, match=r"at most 4000 bytes.*free space"):
        files.convert(tmp_path / "a.npy", tmp_path / "o.npy")
    assert not (tmp_path / "o.npy").exists()
    assert files.convert(tmp_path / "a.npy", tmp_path / "o.npy", max_bytes=10_000).arrays == 1


def test_sparse_tensors_are_written_densely(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    dense = torch.tensor([[0.0, 2.0, 0.0], [1.5, 0.0, 0.0]])
    torch.save({"coo": dense.to_sparse(), "plain": dense}, tmp_path / "s.pt")
    out = run("convert", "s.pt", "s.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "s.npz") as z:
        np.testing.assert_array_equal(z["coo"], dense.numpy())
        np.testing.assert_array_equal(z["plain"], dense.numpy())
    # Its dense size is what counts against --max-bytes.
    torch.save({"coo": torch.zeros(4096, 4096).to_sparse()}, tmp_path / "big.pt")
    assert "got about 6710" in failed(
        run("convert", "big.pt", "b.npz", "--max-bytes", "1M", cwd=tmp_path)
    )


def invalid_sparse_checkpoints(directory: Path) -> list[str]:
    """PyTorch files whose sparse tensors have indices outside their shape.

    Densifying them reads and writes out of bounds (a segmentation fault, or a
    value that silently vanishes); torch.load(weights_only=True) checks them only
    under torch.sparse.check_sparse_tensor_invariants.
    """
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # CSR support is in beta
        crow, col = torch.tensor([0, 5, 2]), torch.tensor([0, 1000])
        values = torch.tensor([1.0, 2.0])
        csr = torch.sparse_csr_tensor(crow, col, values, (2, 3), check_invariants=False)
        torch.save({"c": csr}, directory / "csr.pt")
    index = torch.tensor([[0, 100_000_000]])
    coo = torch.sparse_coo_tensor(index, torch.tensor([1.0, 2.0]), (4,), check_invariants=False)
    torch.save({"w": torch.ones(2), "s": coo}, directory / "coo.pt")
    torch.save({"s": coo}, directory / "legacy.pt", _use_new_zipfile_serialization=False)
    return ["csr.pt", "coo.pt", "legacy.pt"]


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_sparse_tensors_with_indices_outside_their_shape_are_refused(
    tmp_path: Path, suffix: str
) -> None:
    reasons = {
        "csr.pt": "`0 <= col_indices < ncols` is not satisfied.",
        "coo.pt": "size is inconsistent with indices",
        "legacy.pt": "size is inconsistent with indices",
    }
    for name in invalid_sparse_checkpoints(tmp_path):
        before = sorted(p.name for p in tmp_path.iterdir())
        error = failed(run("convert", name, f"o{suffix}", cwd=tmp_path))
        assert reasons[name] in error, error
        assert "sparse tensor whose indices lie outside its shape" in error.split(". hint: ")[1]
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name  # no .tmp either
    # interop.load reads with the same reader: the same error, in a process of its own
    # (a regression would crash it).
    code = (
        "import sys, interop\n"
        "try:\n"
        "    interop.load(sys.argv[1])\n"
        "except interop.InteropError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = run("csr.pt", cwd=tmp_path, code=code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ConvertError expected a PyTorch file written by torch.save")
    assert "(RuntimeError: `0 <= col_indices < ncols` is not satisfied.). hint: " in out.stdout


def test_self_containing_list_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    loop: list[Any] = [torch.ones(2)]
    loop.append(loop)
    torch.save({"loop": loop}, tmp_path / "loop.pt")
    assert "contains itself at 'loop.1'" in failed(run("convert", "loop.pt", "o.npz", cwd=tmp_path))
    assert not (tmp_path / "o.npz").exists()


def test_warnings_of_torch_load_add_no_line_to_an_error(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    # Loading it makes torch warn (quantized constructors and TypedStorage are
    # deprecated), in a fresh process, where each warning is new.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # making it warns here too
        q = torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.quint8)
    torch.save({"q": q}, tmp_path / "quant.pt")
    assert "quantized" in failed(run("convert", "quant.pt", "o.npz", cwd=tmp_path))


def test_framework_messages_are_quoted_clean_and_whole(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a whole module, not weights
    error = failed(run("convert", "module.pt", "o.npz", cwd=tmp_path))
    assert "refused to load" in error
    quoted = error.split("rejected it: ")[1].split(" hint: ")[0]
    assert quoted.endswith(".") and "Linear" in quoted, quoted


VALID = {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}


MALFORMED_HEADERS = {
    "dtype-list": ({"w": {**VALID, "dtype": ["U8"]}}, "safetensors dtype"),
    "offset-string": ({"w": {**VALID, "data_offsets": ["0", 4]}}, "data_offsets [begin, end]"),
    "shape-string": ({"w": {**VALID, "shape": "ab"}}, "shape of 'w'"),
    "shape-huge": ({"w": {**VALID, "shape": [10**30]}}, "no NumPy array is that large"),
    "shape-bool": ({"w": {**VALID, "shape": [True]}}, "shape of 'w'"),
    "shape-negative": ({"w": {**VALID, "shape": [-1], "data_offsets": [1, 0]}}, "shape of 'w'"),
    "offsets-reversed": ({"w": {**VALID, "data_offsets": [1, 0]}}, "expected 4 bytes for 'w'"),
    "offsets-too-long": ({"w": {**VALID, "data_offsets": [0, 8]}}, "expected 4 bytes for 'w'"),
    "gap": ({"w": {**VALID, "shape": [2], "data_offsets": [2, 4]}}, "a gap before it"),
    "overlap": ({"w": VALID, "v": {**VALID, "shape": [2], "data_offsets": [2, 4]}}, "overlaps"),
    "data-left-over": ({"w": {**VALID, "shape": [2], "data_offsets": [0, 2]}}, "2 bytes of data"),
    "info-number": ({"w": 5}, "dtype, shape and data_offsets"),
    "info-incomplete": ({"w": {"dtype": "U8"}}, "dtype, shape and data_offsets"),
    "deep-lists": (b"[" * 100_000 + b"]" * 100_000, "nested at most 64 deep"),
    "deep-metadata": (
        b'{"__metadata__": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001,
        "nested at most 64 deep",
    ),
    "duplicate-name": (b'{"w": ' + json.dumps(VALID).encode() + b', "w": {}}', "got 'w' twice"),
    "duplicate-field": (b'{"w": {"dtype": "U8", "dtype": "F32"}}', "got 'dtype' twice"),
    "huge-number": (b'{"w": {"shape": [' + b"9" * 5000 + b"]}}", "JSON header"),
    "not-an-object": (b"[1, 2]", "JSON object"),
}


@pytest.mark.parametrize(
    ("header", "message"), MALFORMED_HEADERS.values(), ids=MALFORMED_HEADERS.keys()
)
def test_malformed_safetensors_headers_are_one_line_errors(
    tmp_path: Path, header: bytes | dict[str, Any], message: str
) -> None:
    safetensors_file(tmp_path / "bad.safetensors", header, b"\x01\x02\x03\x04")
    assert message in failed(run("convert", "bad.safetensors", "o.npz", cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.safetensors"]


def test_unsafe_keys_are_escaped_kept_unique_and_reported(tmp_path: Path) -> None:
    u8 = {"dtype": "U8", "shape": [1]}
    keys = ["../../evil", "/abs", "a\x00b", "a%00b", "dense/kernel:0", "x\\y", "\x1b[2Jred"]
    header = {k: {**u8, "data_offsets": [i, i + 1]} for i, k in enumerate(keys)}
    safetensors_file(tmp_path / "names.safetensors", header, bytes(range(len(keys))))
    out = run("convert", "names.safetensors", "o.npz", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout
    assert "renamed 5 keys that are unsafe" in out.stdout and "'../../evil' as" in out.stdout
    with zipfile.ZipFile(tmp_path / "o.npz") as zf:
        members = zf.namelist()
    assert len(set(members)) == len(keys)
    for member in members:
        parts = member.split("/")
        assert not member.startswith("/") and ".." not in parts[:-1] and "" not in parts[:-1]
        assert "\\" not in member and not any(ord(c) < 32 for c in member), member
    with np.load(tmp_path / "o.npz") as z:
        values = {k: int(z[k][0]) for k in z.files}
    assert values["dense/kernel:0"] == 4 and values["a%00b"] == 3  # safe keys keep their name
    assert values["..%2F..%2Fevil"] == 0 and values["%2Fabs"] == 1
    assert values["a%00b~1"] == 2 and values["x%5Cy"] == 5  # NUL escaped, then made unique


def test_existing_destinations_are_never_replaced_without_force(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.arange(3))
    (tmp_path / "link.npz").symlink_to(tmp_path / "missing.npz")  # a dangling link
    assert "--force" in failed(run("convert", "a.npy", "link.npz", cwd=tmp_path))
    assert (tmp_path / "link.npz").is_symlink() and not (tmp_path / "missing.npz").exists()
    # --force keeps the permission bits of the file it replaces.
    (tmp_path / "private.npz").write_bytes(b"old")
    (tmp_path / "private.npz").chmod(0o600)
    out = run("convert", "a.npy", "private.npz", "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE((tmp_path / "private.npz").stat().st_mode) == 0o600
    with np.load(tmp_path / "private.npz") as z:
        np.testing.assert_array_equal(z["a"], np.arange(3))


# A child that converts two arrays and, once the first is in the temporary file,
# reports the temporary file's permission bits and waits to be stopped.
WAIT_MID_WRITE = """
import os, pathlib, stat, sys, time
import interop.cli.files as files
from interop.cli import main

convert_array = files.convert_array
calls = []

def slow(*args):
    calls.append(1)
    if len(calls) == 2:
        (tmp,) = pathlib.Path(".").glob(".interop-*.tmp")
        pathlib.Path("ready").write_text(oct(stat.S_IMODE(tmp.stat().st_mode)))
        time.sleep(60)
    return convert_array(*args)

files.convert_array = slow
sys.exit(main(["convert", "in.npz", "out.npz", "--force"]))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_mid_write_leaves_nothing_behind(tmp_path: Path, signum: int) -> None:
    np.savez(tmp_path / "in.npz", a=np.ones(100_000), b=np.zeros(10))
    (tmp_path / "out.npz").write_bytes(b"previous")
    (tmp_path / "out.npz").chmod(0o640)
    child = subprocess.Popen(
        [sys.executable, "-c", WAIT_MID_WRITE],
        cwd=tmp_path,
        env=environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "ready").exists() and child.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (tmp_path / "ready").read_text() == "0o640"  # the temporary file has dst's mode
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 128 + signum, stderr
    name = signal.Signals(signum).name
    assert stderr == f"interop convert: error: interrupted by {name}; no partial output is left\n"
    assert (tmp_path / "out.npz").read_bytes() == b"previous"
    assert leftovers(tmp_path) == []
