#!/usr/bin/env bash
# The device check: the `gpu` tests and the GPU benchmarks, in one call, on a machine
# with a CUDA device (never part of CI, which has none).
#
#   bash tools/gpu_check.sh            # from the repository root, on the device machine
#
# Packages that machine lacks travel as wheels in .whl/ (ignored by git), fetched here
# for its Python (3.12, x86-64), for example:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl array-api-compat
# Results land in $OUT (or /tmp/gpu-check): device.txt, pytest-gpu.log, gpu-bench.json,
# gpu-bench.md. The exit status is the test run's.
set -uo pipefail
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -c "import sys, numpy; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
    for m in torch jax cupy tensorflow ml_dtypes; do
        python3 -c "import $m; print('$m', $m.__version__)" 2>/dev/null || echo "$m: not installed"
    done
} | tee "$out/device.txt"
# -m gpu on the command line replaces the default tier selection of pyproject's addopts.
python3 -m pytest -m gpu -q -p no:cacheprovider 2>&1 | tee "$out/pytest-gpu.log"
status=${PIPESTATUS[0]}
python3 -m benchmarks --only gpu --json "$out/gpu-bench.json" --markdown "$out/gpu-bench.md" \
    2>&1 | tee "$out/bench-gpu.log"
exit "$status"
