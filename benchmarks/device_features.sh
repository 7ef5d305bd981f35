#!/usr/bin/env bash
# One GPU-machine run of benchmarks/bench_features_cuda.py, from the repository root:
#   OUT=/dir bash benchmarks/device_features.sh          (CLIPS=1000, BUDGET_S=240 by default)
# Installs the wheels of .whl/ (device_env.sh; soundfile, cffi, pycparser, typing_extensions, nara-wpe, click,
# threadpoolctl: missing there; no network) into /tmp/site, shows the GPU, runs the benchmark
# with --require-cuda, then tests/test_wpe.py (its CUDA test included), and copies everything
# printed into $OUT/device.log.
# Exit status: the benchmark's (0 pass, 1 a check failed, 3 no CUDA).
# Testing elsewhere: INSTALL=0 PY=.venv/bin/python CLIPS=8 OUT=/tmp/x bash benchmarks/device_features.sh
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
source "$(dirname "$0")/device_env.sh"
mkdir -p "$OUT"

run() {
    device_env
    "$PY" benchmarks/bench_features_cuda.py --clips "${CLIPS:-1000}" --budget-s "${BUDGET_S:-240}" --require-cuda \
        --out "$OUT" ${BENCH_ARGS:-}
    local bench_rc=$?
    echo "== pytest tests/test_wpe.py tests/test_wpe_kernel.py on this machine (CUDA test included)"
    timeout "${PYTEST_TIMEOUT_S:-120}" "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_wpe.py tests/test_wpe_kernel.py
    local test_rc=$?
    echo "benchmark exit status $bench_rc, pytest exit status $test_rc"
    [ "$bench_rc" != 0 ] && return "$bench_rc"
    return "$test_rc"
}

run 2>&1 | tee "$OUT/device.log"
exit "${PIPESTATUS[0]}"
