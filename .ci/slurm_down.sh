#!/usr/bin/env bash
# Stop the daemons that .ci/slurm_up.sh started (and only those), newest first.
set -euo pipefail

STATE=${TEXTSELD_SLURM_STATE:-/run/textseld-slurm}
[[ -s $STATE/started ]] || { echo "slurm_down.sh: nothing recorded in $STATE/started"; exit 0; }

# jobs still queued would be requeued on the next start-up
scancel --user="$(id -un)" >/dev/null 2>&1 || true

tac "$STATE/started" | while read -r name pidfile; do
    [[ -s $pidfile ]] || { echo "slurm_down.sh: $name: no pid file $pidfile"; continue; }
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 80); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "slurm_down.sh: $name ($pid) ignored SIGTERM for 20 s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "slurm_down.sh: stopped $name ($pid)"
    fi
done
rm -f "$STATE/started"
