#!/usr/bin/env bash
# Fetch the wheels that tools/gpu_check.sh installs on a CUDA machine that cannot
# reach a package index: CPython 3.12, x86-64 Linux, into .whl/ (git-ignored).
#
#   bash tools/gpu_wheels.sh                  # the packages below, at the versions installed here
#   bash tools/gpu_wheels.sh NAME==VERSION    # these instead
#
# The CUDA machine is expected to have torch, JAX, CuPy, NumPy, ml_dtypes, pytest and
# hypothesis. What it lacks and the checks need:
#   array-api-compat   a runtime dependency of this project (pyproject.toml)
#   array-api-strict   the generic-protocol tests' Array API library (the test extra)
# TensorFlow is not fetched: its wheels are larger than what can travel with a
# checkout (tens of MiB), so its `gpu` tests skip there. Pure-Python wheels fit any
# platform; every wheel is fetched without its dependencies (--no-deps), so a
# package named here must have all of its own already on the CUDA machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
packages=("$@")
if [ "${#packages[@]}" -eq 0 ]; then
    for dist in array-api-compat array-api-strict; do
        version=$("$python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' \
            "$dist" 2>/dev/null) || version=""
        packages+=("$dist${version:+==$version}")
    done
fi
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
mkdir -p .whl
"$python" -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${platforms[@]}" -d .whl "${packages[@]}"
ls -l .whl
