#!/usr/bin/env bash
# The device check: the `gpu` tests and the GPU benchmarks, in one run of at most
# ten minutes, on a machine with a CUDA device (CI has none and never runs it).
#
#   bash tools/gpu_check.sh          # from anywhere, on the CUDA machine
#   bash tools/gpu_check.sh --cpu    # a rehearsal without a GPU: collects the gpu tests
#                                    # and runs the GPU benchmarks in quick mode, where
#                                    # each reports "unavailable"; installs no wheels
#
# Packages the CUDA machine lacks travel as wheels in .whl/ (git-ignored), fetched
# beforehand, where a package index is reachable, by `bash tools/gpu_wheels.sh`; they
# are installed into /tmp/site, never into the machine's own environment.
#
# Results go to $OUT (default /tmp/gpu-check): device.txt (GPU, driver, versions),
# pytest-gpu.log and pytest-gpu.xml, bench-gpu.log, gpu-bench.json and gpu-bench.md
# (the benchmark table, as docs/performance.md shows it), summary.txt (exit statuses).
# The exit status is the test run's: 0 when every selected test passed or skipped.
set -uo pipefail
mode=device
case "${1:-}" in
    "") ;;
    --cpu) mode=cpu ;;
    *)
        echo "usage: bash tools/gpu_check.sh [--cpu]" >&2
        exit 2
        ;;
esac
cd "$(dirname "$0")/.." || exit 2
out="${OUT:-/tmp/gpu-check}"
mkdir -p "$out" || exit 2
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
# torch, JAX and CuPy share the one GPU in the same processes: JAX takes memory as
# it needs it instead of most of the device on first use.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
python=${PYTHON:-python3}

if [ "$mode" = device ] && compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

{
    echo "mode: $mode"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    else
        echo "nvidia-smi: not found"
    fi
    "$python" - <<'EOF'
import importlib, sys
print("python", sys.version.split()[0])
for name in ("numpy", "ml_dtypes", "array_api_compat", "torch", "jax", "cupy", "tensorflow"):
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # a report: every missing or broken framework is listed
        print(f"{name}: not importable ({type(exc).__name__})")
        continue
    extra = ""
    if name == "torch":
        extra = f" cuda {module.version.cuda}, devices {module.cuda.device_count()}"
    elif name == "jax":
        extra = f" backend {module.default_backend()}, devices {module.devices()}"
    elif name == "tensorflow":
        extra = f" GPUs {module.config.list_physical_devices('GPU')}"
    print(name, getattr(module, "__version__", "?") + extra)
EOF
} 2>&1 | tee "$out/device.txt"

# pyproject's addopts (the fast tier on two xdist workers) are replaced: the gpu tests
# run in one process, which shares the one device, where pytest-xdist may be absent.
pytest_args=(-o "addopts=-ra" -p no:benchmark -m gpu -q -p no:cacheprovider
    --junitxml "$out/pytest-gpu.xml")
bench_args=(--only gpu --json "$out/gpu-bench.json" --markdown "$out/gpu-bench.md")
if [ "$mode" = cpu ]; then
    pytest_args+=(--collect-only)
    bench_args+=(--quick)
else
    pytest_args+=(-rfEs --durations=15)
fi

timeout -k 10 330 "$python" -m pytest "${pytest_args[@]}" 2>&1 | tee "$out/pytest-gpu.log"
tests=${PIPESTATUS[0]}
timeout -k 10 180 "$python" -m benchmarks "${bench_args[@]}" 2>&1 | tee "$out/bench-gpu.log"
bench=${PIPESTATUS[0]}

{
    echo "pytest -m gpu: exit $tests ($(tail -n 1 "$out/pytest-gpu.log"))"
    echo "python -m benchmarks --only gpu: exit $bench ($(tail -n 1 "$out/bench-gpu.log"))"
} | tee "$out/summary.txt"
exit "$tests"
