"""The ``interop`` command line, run as users run it: ``python -m interop`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
STATUSES = {"ok", "wrong", "unsupported", "not converted"}


def run(
    *args: str, cwd: Path | None = None, code: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m interop ARGS`` (or ``python -c CODE``) with this checkout importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "interop"]
    return subprocess.run(
        [*command, *args], cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=300
    )


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
        "TorchBackend.fast_path = lambda self, cls: (lambda x: x.numpy() + 1)\n"
        "sys.exit(doctor.main(['torch'], as_json=False))\n"
    )
    out = run(code=code)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "wrong" in out.stdout and "returned WRONG values" in out.stdout


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
    out = run("convert", "bf.pt", "bf.npz", cwd=tmp_path)
    assert out.returncode == 1
    assert "bfloat16" in out.stderr and "--upcast" in out.stderr
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
    out = run("convert", "a.npy", "out.npz", cwd=tmp_path)
    assert out.returncode == 2 and "--force" in out.stderr
    assert (tmp_path / "out.npz").read_bytes() == b"old"
    out = run("convert", "a.npy", "out.npz", "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    with np.load(tmp_path / "out.npz") as z:
        np.testing.assert_array_equal(z["a"], np.arange(3))


# -- convert: errors, and nothing written after one ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("missing.pt", "o.npz"), 1, "no such file"),
        (("a.txt", "o.npz"), 2, "expected an input file ending in"),
        (("a.npy", "o.csv"), 2, "expected an output file ending in .npz or .npy"),
        (("two.npz", "o.npy"), 2, "expected one array for a .npy output"),
        (("two.npz", "o.npz", "--keys", "nothing*"), 1, "expected --keys to select arrays"),
        (("a.npy", "o.npz", "--dtype", "int8"), 2, "floating-point dtype"),
        (("a.npy", "o.npz", "--dtype", "notadtype"), 2, "NumPy dtype name"),
        (("a.npy", "o.npz", "--keys-regex", "("), 2, "regular expression"),
        (("objects.npy", "o.npz"), 1, "refused to load"),
        (("garbage.npz", "o.npz"), 1, "cannot read"),
        (("garbage.safetensors", "o.npz"), 1, "safetensors"),
        (("dir.npy", "o.npz"), 1, "a directory"),
        (("a.npy", "nodir/o.npz"), 2, "existing output directory"),
    ],
)
def test_convert_errors(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    np.save(tmp_path / "a.npy", np.arange(3))
    (tmp_path / "a.txt").write_text("1 2 3")
    np.savez(tmp_path / "two.npz", x=np.ones(2), y=np.zeros(2))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "garbage.npz").write_bytes(b"PK\x03\x04 not really a zip file")
    (tmp_path / "garbage.safetensors").write_bytes(b"\xff" * 64)
    (tmp_path / "dir.npy").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    out = run("convert", *args, cwd=tmp_path)
    assert out.returncode == code, out.stderr
    assert message in out.stderr
    assert out.stderr.startswith("interop convert: error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


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
        out = run("convert", name, "out.npz", "--force", cwd=tmp_path)
        assert out.returncode == 1, (name, out.stdout, out.stderr)
        assert "interop convert: error:" in out.stderr
        assert (tmp_path / "out.npz").read_bytes() == b"previous", name
        assert leftovers(tmp_path) == [], name


def test_failure_after_some_arrays_were_written_leaves_nothing(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    # "a" converts and is written to the temporary file, then "b" (bfloat16, no
    # --upcast) fails: the temporary file must go, and no output appear.
    torch.save({"a": torch.ones(1000), "b": torch.ones(3, dtype=torch.bfloat16)}, tmp_path / "m.pt")
    out = run("convert", "m.pt", "m.npz", cwd=tmp_path)
    assert out.returncode == 1
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

    out = run("convert", "evil.pt", "evil.npz", cwd=tmp_path)
    assert out.returncode == 1
    assert "refused to load" in out.stderr and "weights_only=True" in out.stderr
    assert not marker.exists()
    assert not (tmp_path / "evil.npz").exists()
    assert leftovers(tmp_path) == []
