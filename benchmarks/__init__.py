"""Benchmarks of array-interop against native paths and peer libraries.

Run from the repository root::

    python -m benchmarks                      # every scenario, full size
    python -m benchmarks --quick              # small sizes, few rounds (CI)
    python -m benchmarks --only overhead      # scenarios whose name contains a string
    python -m benchmarks --json benchmarks/results.json --plot benchmarks/results.png

Every comparison is a ratio of two timings taken in the same run, in interleaved
rounds; see :mod:`benchmarks._harness`.
"""
