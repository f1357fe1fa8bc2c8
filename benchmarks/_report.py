"""Machine description, the printed table, the JSON file and the chart."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._harness import GoalResult, ScenarioResult

__all__ = [
    "goal_text",
    "machine",
    "print_results",
    "write_json",
    "write_markdown",
    "write_plot",
]

_DISTRIBUTIONS = (
    "array-interop",
    "numpy",
    "ml_dtypes",
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "jax",
    "jaxlib",
    "keras",
    # The GPU builds, where the GPU scenarios run.
    "jax-cuda13-plugin",
    "jax-cuda12-plugin",
    "cupy-cuda13x",
    "cupy-cuda12x",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git(root: Path) -> str | None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine(root: Path) -> dict[str, Any]:
    """What the numbers were measured on: CPU, cores, load, Python and library versions."""
    versions = {}
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "load_average": [round(v, 2) for v in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": versions,
        "commit": _git(root),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def goal_text(g: GoalResult) -> tuple[str, str, str]:
    """The measured value, the goal and the verdict of ``g``, as table cells."""
    if g.kind == "check":
        return ("yes" if g.passed else "no"), "yes", "PASS" if g.passed else "MISS"
    assert g.value is not None
    if g.kind in ("overhead", "time"):
        value = f"{g.value:.3g} {g.unit}"
        spread = f"{g.iqr:.2g} {g.unit}"
    else:
        value = f"{g.value:.3g}x"
        spread = f"{g.iqr:.2g}x"
    value = f"{value} (IQR {spread})"
    if g.limit is None:
        return value, "-", "info"
    op = ">=" if g.kind == "speedup" else "<="
    unit = g.unit if g.kind in ("overhead", "time") else "x"
    limit = f"{op} {g.limit:g}{' ' + unit if unit != 'x' else 'x'}"
    return value, limit, "PASS" if g.passed else "MISS"


def print_results(info: dict[str, Any], results: list[ScenarioResult], out: Any = None) -> None:
    """Print every scenario's table and the summary of goals."""
    out = out or sys.stdout
    w = out.write
    w(f"machine: {info['cpu']}, {info['cores']} cores ({info['usable_cores']} usable), ")
    w(f"{info['memory_gib']} GiB, load {info['load_average']}\n")
    w(f"{info['python']} on {info['platform']}\n")
    w("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + "\n")
    if info.get("quick"):
        w(
            "QUICK MODE: small sizes and few rounds, to prove the suite runs. The goals of "
            "the size-dependent scenarios (large, bf16) are not meaningful here.\n"
        )
    for r in results:
        w(f"\n[{r.group}] {r.name}: {r.title}\n")
        if r.status != "ok":
            w(f"    {r.status}: {r.reason}\n")
            continue
        base = next((v.label for v in r.variants if v.vs_baseline is None), "")
        rows = [("variant", "time/call", "IQR", "vs first", "zero-copy")]
        if r.nbytes:
            rows[0] += ("GB/s",)
        for v in r.variants:
            zc = {True: "yes", False: "no", None: "-"}[v.zero_copy]
            vs = "-" if v.vs_baseline is None else f"{v.vs_baseline:.3g}x"
            row: tuple[str, ...] = (v.label, _time(v.median), _time(v.iqr), vs, zc)
            if r.nbytes:
                row += ("-" if v.zero_copy else f"{r.nbytes / v.median / 1e9:.3g}",)
            rows.append(row)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [
                c.rjust(n) for c, n in zip(row[1:], widths[1:], strict=True)
            ]
            w("    " + "  ".join(cells) + "\n")
        clock = "CPU time" if r.clock == "cpu" else "elapsed time"
        w(f'    (time: {clock}; "vs first": per-round median ratio to {base})\n')
        for g in r.goals:
            value, limit, verdict = goal_text(g)
            ref = f" (reference: {g.reference})" if g.reference and len(g.label) < 60 else ""
            w(f"    goal: {g.label}{ref}: {value}, goal {limit}: {verdict}\n")
        for note in r.notes:
            w(f"    note: {note}\n")
    w("\nSummary of goals\n")
    rows = [("scenario", "goal", "measured", "goal", "result")]
    for r in results:
        if r.status != "ok":
            rows.append((r.name, "-", "-", "-", r.status))
            continue
        for g in r.goals:
            if g.limit is None and g.kind != "check":
                continue
            rows.append((r.name, g.label, *goal_text(g)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        w("  " + "  ".join(c.ljust(n) for c, n in zip(row, widths, strict=True)).rstrip() + "\n")
    counts = _counts(results)
    w(
        f"\n{counts['PASS']} PASS, {counts['MISS']} MISS, "
        f"{counts['unavailable']} scenarios unavailable, {counts['error']} errors\n"
    )


def _counts(results: list[ScenarioResult]) -> dict[str, int]:
    counts = {"PASS": 0, "MISS": 0, "unavailable": 0, "error": 0}
    for r in results:
        if r.status != "ok":
            counts[r.status] += 1
            continue
        for g in r.goals:
            if g.passed is not None:
                counts["PASS" if g.passed else "MISS"] += 1
    return counts


def write_json(
    path: Path, info: dict[str, Any], config: Any, results: list[ScenarioResult]
) -> None:
    """Everything measured, per round, with the machine and the configuration."""
    data = {
        "machine": info,
        "config": dataclasses.asdict(config),
        "summary": _counts(results),
        "scenarios": [dataclasses.asdict(r) for r in results],
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def write_markdown(path: Path, info: dict[str, Any], results: list[ScenarioResult]) -> None:
    """The summary of goals as a Markdown table (the one docs/performance.md shows)."""
    lines = [
        f"Measured on {info['cpu']} ({info['cores']} cores, load average "
        f"{info['load_average']}), {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items())
        + f"; {info['date']}, commit {info['commit']}.",
        "",
        "| scenario | comparison | measured (median, IQR) | goal | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        if r.status != "ok":
            lines.append(f"| {r.name} | {r.reason} | - | - | {r.status} |")
            continue
        for g in r.goals:
            value, limit, verdict = goal_text(g)
            lines.append(f"| {r.name} | {g.label} | {value} | {limit} | {verdict} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plot(path: Path, info: dict[str, Any], results: list[ScenarioResult]) -> None:
    """A chart of every judged goal as its headroom: how far the result is from its goal.

    Ratios and times have different units and directions, so each goal is drawn as
    the factor by which it is met (``limit / value`` for "at most" goals, ``value /
    limit`` for "at least" goals) on a log axis; the goal line is 1, and a bar that
    ends right of it passes. Each bar is labelled with the measured value and goal.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit("--plot needs matplotlib. hint: pip install -e '.[bench]'") from exc
    bars: list[tuple[str, float, str, bool]] = []
    for r in results:
        if r.status != "ok":
            continue
        for g in r.goals:
            if g.kind == "check" or g.limit is None or g.value is None:
                continue
            if g.kind == "speedup":
                headroom = g.value / g.limit
            elif g.value <= 0:  # an overhead below the timer's noise
                headroom = 100.0
            else:
                headroom = g.limit / g.value
            value, limit, _ = goal_text(g)
            bars.append(
                (
                    f"{r.name}: {g.label}",
                    headroom,
                    f"{value.split(' (')[0]}  (goal {limit})",
                    bool(g.passed),
                )
            )
    if not bars:
        return
    bars.reverse()
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(bars) + 1.6))
    ys = range(len(bars))
    values = [max(min(b[1], 1e3), 1e-2) for b in bars]
    colors = ["#2a9d5c" if b[3] else "#d1495b" for b in bars]
    ax.barh(ys, values, color=colors, height=0.6)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=1.2, linestyle="--", label="goal")
    ax.set_ylim(-0.7, len(bars) - 0.3)
    ax.set_yticks(list(ys), [b[0] for b in bars], fontsize=8)
    for y, v, b in zip(ys, values, bars, strict=True):
        ax.text(v * 1.08, y, b[2], va="center", fontsize=7.5)
    lo = min([*values, 0.5]) / 1.5
    hi = max([*values, 2.0]) * 20
    ax.set_xlim(lo, hi)
    ax.set_xlabel("headroom: factor by which the goal is met (log scale; right of the line = PASS)")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[
            Patch(color="#2a9d5c", label="PASS"),
            Patch(color="#d1495b", label="MISS"),
            ax.get_lines()[0],
        ],
        loc="lower right",
        fontsize=8,
    )
    quick = " (QUICK MODE: not the project's figures)" if info.get("quick") else ""
    ax.set_title(
        f"array-interop benchmarks{quick} — {info['cpu']}, {info['cores']} cores, "
        f"{info['python']}, {info['date']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
