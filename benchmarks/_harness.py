"""The measuring engine: interleaved rounds, medians, spreads and goals.

Every figure the suite reports is a comparison of two timings taken in the same
run, round by round: in each round every variant of a scenario is timed once, in an
order that rotates from round to round, and a goal is evaluated on the per-round
ratio (or difference) of its two variants. A machine that slows down for a few
seconds slows both sides of a ratio alike, so noise widens the spread instead of
faking a result. The reported value is the median over rounds, with the
interquartile range (IQR) as the spread.
"""

from __future__ import annotations

import dataclasses
import gc
import statistics
import time
import timeit
from collections.abc import Callable, Sequence
from typing import Any, Literal

__all__ = [
    "Config",
    "Goal",
    "GoalResult",
    "Scenario",
    "ScenarioResult",
    "Unavailable",
    "Variant",
    "VariantResult",
    "run_scenario",
]


class Unavailable(Exception):
    """Raised by a scenario builder when the scenario cannot run in this build."""


@dataclasses.dataclass(frozen=True)
class Config:
    """How hard to measure.

    Attributes:
        quick: Small sizes and few rounds, to prove the suite runs (CI).
        rounds: Interleaved rounds per scenario.
        round_time: Target seconds of one variant's timing in one round.
        large_bytes: Size of the "large tensor" scenarios.
    """

    quick: bool
    rounds: int
    round_time: float
    large_bytes: int

    @classmethod
    def make(cls, quick: bool) -> Config:
        if quick:
            return cls(quick=True, rounds=5, round_time=0.004, large_bytes=4 << 20)
        return cls(quick=False, rounds=25, round_time=0.04, large_bytes=64 << 20)


@dataclasses.dataclass
class Variant:
    """One way of doing the scenario's job.

    Exactly one of ``stmt`` (a Python statement timed with :mod:`timeit` in the
    namespace ``ns``, so that no wrapper call is added to what is measured) and
    ``measure`` (a function that does one measurement itself and returns the
    seconds one call took, for example the import time reported by a fresh
    interpreter) is given.

    Attributes:
        label: The name shown in the table.
        stmt: The statement to time.
        ns: The globals of ``stmt``.
        measure: A self-timing function, instead of ``stmt``.
        zero_copy: Whether the variant was checked (with ``np.shares_memory``) to
            return a view of the input; ``None`` where that does not apply.
    """

    label: str
    stmt: str | None = None
    ns: dict[str, Any] = dataclasses.field(default_factory=dict)
    measure: Callable[[], float] | None = None
    zero_copy: bool | None = None


Kind = Literal["slowdown", "speedup", "overhead", "time", "check"]


@dataclasses.dataclass(frozen=True)
class Goal:
    """A target for one comparison of two variants in the same rounds.

    Kinds:
        ``slowdown``: ``time(a) / min(time(b) for b in ref)`` must be at most ``limit``.
        ``speedup``: ``min(time(b) for b in ref) / time(a)`` must be at least ``limit``.
        ``overhead``: ``time(a) - time(ref[0])`` in microseconds (``unit="us"``) or
            milliseconds (``unit="ms"``) must be at most ``limit``.
        ``time``: ``time(a)`` itself, in ``unit``, must be at most ``limit`` (for a
            variant that measures an added cost directly, such as an import).
        ``check``: a fact established while building the scenario (``passed``),
            for example "zero-copy, checked with np.shares_memory".

    ``per`` divides an ``overhead`` or ``time`` figure by the number of items one
    call handles, for example the batches of one pass over a data loader.

    With several reference variants, each round compares against the fastest of
    them in that round. A goal without ``limit`` is a comparison shown for
    information and judged neither way.
    """

    label: str
    kind: Kind
    a: str = ""
    ref: tuple[str, ...] = ()
    limit: float | None = None
    unit: str = "x"
    passed: bool | None = None
    per: int = 1


@dataclasses.dataclass
class Scenario:
    """A job, the variants that do it, and the goals that judge ``interop``'s variant."""

    name: str
    title: str
    group: int
    variants: list[Variant]
    goals: list[Goal] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    # The variant that the "vs" column compares the others with (default: the first).
    baseline: str | None = None
    # Rounds for this scenario, when it differs from the configuration's.
    rounds: int | None = None
    # Bytes one call moves, where a throughput (GB/s) column means something.
    nbytes: int | None = None
    # "wall": elapsed time. "cpu": CPU time of the calling thread, which a busy,
    # shared machine does not inflate by preempting the process; only right for
    # work done entirely in the calling thread (per-call overheads).
    clock: Literal["wall", "cpu"] = "wall"
    teardown: Callable[[], None] | None = None


@dataclasses.dataclass
class VariantResult:
    label: str
    number: int
    times: list[float]  # seconds per call, one per round
    median: float
    iqr: float
    vs_baseline: float | None
    zero_copy: bool | None


@dataclasses.dataclass
class GoalResult:
    label: str
    kind: Kind
    limit: float | None
    unit: str
    value: float | None
    iqr: float | None
    passed: bool | None  # None: shown for information
    reference: str | None = None  # the reference variant fastest in most rounds


@dataclasses.dataclass
class ScenarioResult:
    name: str
    title: str
    group: int
    status: Literal["ok", "unavailable", "error"]
    reason: str | None = None
    variants: list[VariantResult] = dataclasses.field(default_factory=list)
    goals: list[GoalResult] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    nbytes: int | None = None
    clock: str = "wall"
    seconds: float = 0.0


#: Timings per variant and round, of which the fastest is kept.
INNER = 5


def median_iqr(values: Sequence[float]) -> tuple[float, float]:
    """The median and the interquartile range of ``values``."""
    if len(values) == 1:
        return values[0], 0.0
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q3 - q1


def _timer(v: Variant, clock: str) -> Callable[[int], float]:
    if v.measure is not None:
        measure = v.measure
        return lambda n: sum(measure() for _ in range(n))
    assert v.stmt is not None
    # timeit compiles the statement into its own loop and switches the garbage
    # collector off while timing, so the figure is the statement and nothing else.
    timer = time.thread_time if clock == "cpu" else time.perf_counter
    return timeit.Timer(v.stmt, timer=timer, globals=v.ns).timeit


def _calibrate(timer: Callable[[int], float], target: float) -> tuple[int, float]:
    """The loop count that makes one timing last about ``target``, and the time per call."""
    number = 1
    while True:
        elapsed = timer(number)
        if elapsed >= target / 5 or number >= 10_000_000:
            break
        number *= 10 if elapsed < target / 100 else 4
    per_call = elapsed / number
    return max(1, round(target / per_call)), per_call


def run_scenario(scenario: Scenario, config: Config) -> ScenarioResult:
    """Time every variant of ``scenario`` in interleaved rounds and judge its goals."""
    start = time.perf_counter()
    variants = scenario.variants
    # A full collection costs most of a second once the frameworks are imported;
    # freezing what exists now makes every later collection cheap. Objects are
    # never collected while timeit switches the collector off.
    gc.collect()
    gc.freeze()
    timers = [_timer(v, scenario.clock) for v in variants]
    # Warm up (first-call costs: lazy imports, caches, page faults), then calibrate.
    for t in timers:
        t(1)
    # One figure per variant and round is the fastest of a few timings of about
    # round_time / INNER each: interruptions by other processes only ever add time,
    # so the minimum is the least disturbed of them. Statements too slow for that
    # (a copy of 64 MB) are timed once or twice per round instead.
    numbers: list[int] = []
    inner: list[int] = []
    for t, v in zip(timers, variants, strict=True):
        if v.measure is not None:
            numbers.append(1)
            inner.append(1)
            continue
        number, per_call = _calibrate(t, config.round_time / INNER)
        numbers.append(number)
        inner.append(max(1, min(INNER, int(config.round_time / per_call))))
    rounds = scenario.rounds or config.rounds
    times: list[list[float]] = [[] for _ in variants]
    order = list(range(len(variants)))
    for r in range(rounds):
        # Rotate the order every round, and reverse it in every other cycle of
        # rotations, so that each variant runs before and after each other one.
        k = r % len(order)
        this_round = order[k:] + order[:k]
        if (r // len(order)) % 2:
            this_round.reverse()
        for i in this_round:
            best = min(timers[i](numbers[i]) for _ in range(inner[i]))
            times[i].append(best / numbers[i])
    by_label = {v.label: i for i, v in enumerate(variants)}
    base = by_label[scenario.baseline] if scenario.baseline else 0
    results = []
    for i, v in enumerate(variants):
        med, iqr = median_iqr(times[i])
        vs = None
        if i != base:
            vs, _ = median_iqr([a / b for a, b in zip(times[i], times[base], strict=True)])
        results.append(VariantResult(v.label, numbers[i], times[i], med, iqr, vs, v.zero_copy))
    goals = [_judge(g, times, by_label) for g in scenario.goals]
    return ScenarioResult(
        name=scenario.name,
        title=scenario.title,
        group=scenario.group,
        status="ok",
        variants=results,
        goals=goals,
        notes=list(scenario.notes),
        nbytes=scenario.nbytes,
        clock=scenario.clock,
        seconds=time.perf_counter() - start,
    )


def _judge(goal: Goal, times: list[list[float]], by_label: dict[str, int]) -> GoalResult:
    if goal.kind == "check":
        return GoalResult(
            goal.label, goal.kind, goal.limit, goal.unit, None, None, bool(goal.passed)
        )
    a = times[by_label[goal.a]]
    if goal.kind == "time":
        scale = {"us": 1e6, "ms": 1e3}[goal.unit]
        value, iqr = median_iqr([t * scale / goal.per for t in a])
        passed = None if goal.limit is None else value <= goal.limit
        return GoalResult(goal.label, goal.kind, goal.limit, goal.unit, value, iqr, passed)
    refs = [times[by_label[r]] for r in goal.ref]
    per_round: list[float] = []
    winners: list[int] = []
    for r, ta in enumerate(a):
        tb = [ref[r] for ref in refs]
        best = min(range(len(tb)), key=tb.__getitem__)
        winners.append(best)
        if goal.kind == "slowdown":
            per_round.append(ta / tb[best])
        elif goal.kind == "speedup":
            per_round.append(tb[best] / ta)
        else:
            scale = {"us": 1e6, "ms": 1e3}[goal.unit]
            per_round.append((ta - tb[0]) * scale / goal.per)
    value, iqr = median_iqr(per_round)
    passed = None
    if goal.limit is not None:
        passed = value >= goal.limit if goal.kind == "speedup" else value <= goal.limit
    reference = goal.ref[max(set(winners), key=winners.count)]
    return GoalResult(goal.label, goal.kind, goal.limit, goal.unit, value, iqr, passed, reference)
