#!/usr/bin/env bash
# Stop the single-node Slurm started by tests/slurm/start-local-slurm.sh.
#
#   tests/slurm/stop-local-slurm.sh [STATE_DIR]       (default: $CRYOSSE_SLURM_DIR or /tmp/cryosse-slurm)
#
# Cancels the remaining jobs, then stops slurmd, slurmctld and munged by the PIDs in their pid
# files under STATE_DIR (TERM, KILL after a grace period); never by process name. The state
# directory stays. The /etc/slurm/{slurm,gres}.conf links that point into STATE_DIR are removed:
# with a config but no controller every Slurm client (and so every `snakemake` start, through the
# slurm executor plugin's `scontrol show config` at import) waits ~10 s for a timeout. Stopping a
# cluster that is not running is not an error.
set -euo pipefail

STATE_DIR="${1:-${CRYOSSE_SLURM_DIR:-/tmp/cryosse-slurm}}"
RUN="$STATE_DIR/run"

say() { echo "stop-local-slurm: $*"; }

# Stop the process named by pid file $1 (if it is alive) and remove the pid file.
stop_pid() {
    local pidfile=$1 pid
    [[ -s "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "$(basename "$pidfile" .pid) ($pid) ignored TERM, sending KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $(basename "$pidfile" .pid) ($pid)"
    fi
    rm -f "$pidfile"
}

if [[ -s "$RUN/slurmctld.pid" ]] && kill -0 "$(cat "$RUN/slurmctld.pid")" 2>/dev/null; then
    # cancel what is left so no job step outlives its daemons (give them a few seconds to end)
    export SLURM_CONF="$STATE_DIR/slurm.conf"
    scancel --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 50); do
        [[ -z "$(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null)" ]] && break
        sleep 0.1
    done
fi
stop_pid "$RUN/slurmd.pid"
stop_pid "$RUN/slurmctld.pid"
stop_pid "$RUN/munged.pid"
for name in slurm.conf gres.conf; do
    if [[ -L "/etc/slurm/$name" && "$(readlink "/etc/slurm/$name")" == "$STATE_DIR/$name" ]]; then
        rm -f "/etc/slurm/$name"
    fi
done
say "stopped (state: $STATE_DIR)"
