#!/usr/bin/env bash
# One GPU-machine run of benchmarks/bench_features_cuda.py, from the repository root:
#   OUT=/dir bash benchmarks/device_features.sh          (CLIPS=1000, BUDGET_S=240 by default)
# Installs the wheels of .whl/ (soundfile, cffi, pycparser, typing_extensions, nara-wpe, click,
# threadpoolctl: missing there; no network) into /tmp/site, shows the GPU, runs the benchmark
# with --require-cuda, then tests/test_wpe.py (its CUDA test included), and copies everything
# printed into $OUT/device.log.
# Exit status: the benchmark's (0 pass, 1 a check failed, 3 no CUDA).
# Testing elsewhere: INSTALL=0 PY=.venv/bin/python CLIPS=8 OUT=/tmp/x bash benchmarks/device_features.sh
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
PY="${PY:-python3}"
mkdir -p "$OUT"

run() {
    if [ "${INSTALL:-1}" = 1 ]; then
        ls .whl/*.whl >/dev/null 2>&1 || echo "!! no wheels under .whl/: was the call made with carry [\".whl\"]?"
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl/*.whl > /tmp/pip_install.log 2>&1
        pip_rc=$?
        grep -v "Running pip as the 'root' user" /tmp/pip_install.log
        if [ "$pip_rc" != 0 ]; then  # no usable pip: a wheel is a zip of what pip would copy
            echo "!! pip install failed ($pip_rc): unzipping the wheels into /tmp/site instead"
            for w in .whl/*.whl; do "$PY" -m zipfile -e "$w" /tmp/site; done
        fi
        export PYTHONPATH=/tmp/site:src
    else
        export PYTHONPATH=src
    fi
    export PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,temperature.gpu,clocks.max.sm,power.limit \
        --format=csv 2>&1 || echo "nvidia-smi: not available"
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
