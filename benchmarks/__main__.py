"""``python -m benchmarks``: run the scenarios, print the table, write JSON and a chart."""

from __future__ import annotations

import os

# Before any framework is imported: TensorFlow's C++ logging would flood the table.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The GPU scenarios of several frameworks share one device in one run: JAX takes
# memory as it needs it instead of most of the device on its first use.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import argparse
import gc
import sys
import time
import traceback
from pathlib import Path

from benchmarks import _report, scenarios
from benchmarks._harness import Config, ScenarioResult, Unavailable, run_scenario

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of array-interop against native paths and peer libraries.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few rounds (proves it runs)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SUBSTRING",
        help="run the scenarios whose name contains SUBSTRING (repeatable)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every result as JSON")
    parser.add_argument("--plot", type=Path, metavar="PATH", help="write a PNG chart of the goals")
    parser.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write the summary as a Markdown table"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds per scenario")
    parser.add_argument("--list", action="store_true", help="list the scenario names and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, _ in scenarios.REGISTRY:
            print(name)
        return 0
    selected = scenarios.select(args.only)
    if not selected:
        parser.error(f"no scenario name contains any of {args.only}; see --list")
    config = Config.make(args.quick)
    if args.rounds:
        config = Config(config.quick, args.rounds, config.round_time, config.large_bytes)

    info = _report.machine(ROOT)
    info["quick"] = config.quick
    results: list[ScenarioResult] = []
    started = time.perf_counter()
    for name, build in selected:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            scenario = build(config)
        except Unavailable as exc:
            results.append(_unavailable(name, "unavailable", str(exc)))
            continue
        except Exception:
            results.append(_unavailable(name, "error", traceback.format_exc(limit=3)))
            continue
        try:
            results.append(run_scenario(scenario, config))
        except Exception:
            results.append(
                ScenarioResult(
                    scenario.name,
                    scenario.title,
                    scenario.group,
                    "error",
                    traceback.format_exc(limit=3),
                )
            )
        finally:
            if scenario.teardown is not None:
                scenario.teardown()
            del scenario
            gc.collect()
    info["seconds"] = round(time.perf_counter() - started, 1)
    info["load_average_end"] = (
        [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    )
    _report.print_results(info, results)
    if args.json:
        _report.write_json(args.json, info, config, results)
    if args.plot:
        _report.write_plot(args.plot, info, results)
    if args.markdown:
        _report.write_markdown(args.markdown, info, results)
    return 1 if any(r.status == "error" for r in results) else 0


def _unavailable(name: str, status: str, reason: str) -> ScenarioResult:
    return ScenarioResult(
        name=name,
        title="",
        group=scenarios.group(name),
        status=status,  # type: ignore[arg-type]
        reason=reason.strip(),
    )


if __name__ == "__main__":
    sys.exit(main())
