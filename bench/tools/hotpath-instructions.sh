#!/usr/bin/env bash
# Instructions per registration on the REGISTER hot path, counted by valgrind (callgrind), so the figure does not
# move with the machine's load (wall-clock and CPU-time benchmarks do on shared 2-vCPU machines, and these VMs
# expose no hardware counters to `perf stat`).
#   bench/tools/hotpath-instructions.sh [TREE] [USERS] [ROUNDS_A] [ROUNDS_B]
# Runs bench/register-hotpath.bench.ts of TREE (a checkout of any commit; default this one) under callgrind twice,
# with ROUNDS_A and ROUNDS_B rounds of USERS registrations, and prints the difference per registration: start-up,
# the cold first round and JIT warm-up cancel out, warm rounds remain. V8 runs single-threaded (--single-threaded:
# no concurrent compiler or GC threads whose timing would move the count). The figure includes the bench's own
# client work (the Digest answer for each challenge: three MD5s and a regex), the same for every commit.
# Caveat, not solved: timer callbacks are counted, and under valgrind the process runs ~2,000x slower (95 ms a
# registration on a loaded 2-vCPU VM), so periodic work (sweeps, expiry wheels) fires far more often per
# registration than at full speed and the count moves with the machine's load: two commits run one after the other
# read 197,107 and 919,089 instructions a registration. Leaving libuv's timer phase out with
# --toggle-collect=uv__run_timers did not work (with --collect-atstart=yes callgrind lost the phase's exit and
# counted ~1 % of the run; without it, only the inside). Compare trees only from runs made side by side.
# KEEP=<dir> keeps the callgrind files (callgrind_annotate them to see where a difference lies).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TREE=${1:-$ROOT}; USERS=${2:-1000}; A=${3:-2}; B=${4:-4}
NODE=$ROOT/node_modules/.bin/node
W=$(mktemp -d); if [ -n "${KEEP:-}" ]; then W=$KEEP; mkdir -p "$W"; else trap 'rm -rf "$W"' EXIT; fi
count() { # rounds -> instructions
  (cd "$TREE" && valgrind --tool=callgrind --callgrind-out-file="$W/cg.$1" "$NODE" --single-threaded bench/register-hotpath.bench.ts "$USERS" "$1" > "$W/log.$1" 2>&1) \
    || { cat "$W/log.$1" >&2; exit 1; }
  grep -o 'Collected : [0-9]*' "$W/log.$1" | awk '{print $3}'
}
ia=$(count "$A"); ib=$(count "$B")
echo "$TREE ($(cd "$TREE" && git rev-parse --short HEAD 2>/dev/null || echo archive)): $ia instructions for $A rounds, $ib for $B, $(( (ib - ia) / (USERS * (B - A)) )) per warm registration ($USERS users)"
