#!/usr/bin/env bash
# The GPU check (BENCHMARKS.md, "The GPU check"), from the repository root of a CUDA machine:
#   OUT=/dir bash benchmarks/gpu_check.sh [benchmarks/gpu_check.py options]
# Installs the wheels of .whl/ (device_env.sh; a bare CUDA image lacks open_clip_torch, ftfy,
# wcwidth, soundfile, cffi, pycparser, nara-wpe), shows the GPU, runs benchmarks/gpu_check.py
# --device cuda (it stops itself within its --budget-s, 540 s by default; `timeout` stops it at
# LIMIT_S, 590 s, should it not), keeps everything printed in $OUT/gpu_check.log and copies the
# records it wrote (benchmarks/records, or under --out with --quick) to $OUT/records.
# Exit status: gpu_check.py's (0 both records written and read back, 1 otherwise, 3 no CUDA).
# Testing elsewhere: INSTALL=0 PY=.venv/bin/python OUT=/tmp/x bash benchmarks/gpu_check.sh --device cpu --quick
set -uo pipefail
: "${OUT:?set OUT to the output folder}"
source "$(dirname "$0")/device_env.sh"
mkdir -p "$OUT/records"
touch "$OUT/records/.start"

run() {
    device_env
    timeout -k 10 "${LIMIT_S:-590}" "$PY" benchmarks/gpu_check.py --device cuda "$@"
}

run "$@" 2>&1 | tee "$OUT/gpu_check.log"
rc=${PIPESTATUS[0]}
find benchmarks/records benchmarks/out/gpu_check/records -type f -newer "$OUT/records/.start" \
    -exec cp {} "$OUT/records/" \; 2>/dev/null
rm -f "$OUT/records/.start"
ls -l "$OUT/records"
exit "$rc"
