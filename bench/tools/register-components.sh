#!/usr/bin/env bash
# bench/tools/register-components.sh WORKERS [ROUNDS] [switchboard start flags...]
# Where the CPU of a registration goes on the scale-out stack: Switchboard (its whole process tree), PostgreSQL,
# Redis and RabbitMQ, from /proc ticks around each SIPp run (N registrations, REGISTER → 401 → REGISTER → 200,
# `un` mode), with the machine's idle share and PostgreSQL's commit count. Rounds run back to back on a server
# that stays up (round 1: cold credential caches). Environment as bench/register-scaleout.sh (N, CONCURRENCY, PG,
# REDIS, AMQP, SHARED), and RATE: offer registrations at this many a second instead of as fast as they are answered
# (the shared driver, its SIPp capped by the stack's wrapper), to compare what one process and several cost at the
# same load.
set -euo pipefail
W=${1:?workers}; ROUNDS=${2:-2}; shift $(( $# >= 2 ? 2 : 1 ))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
N=${N:-20000}; L=${CONCURRENCY:-200}; RATE=${RATE:-}
source "$ROOT/bench/tools/scaleout-stack.sh" comp
start_switchboard "$W" "$@"
HZ=$(getconf CLK_TCK)
tree() { local p; for p in "$@"; do echo "$p"; tree $(pgrep -P "$p"); done; }
ticks() { local s=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && s=$((s + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo $s; }
# Context switches of Switchboard's threads: what a process pays for every wait and every preemption.
switches() { local s=0 p; for p in "$@"; do s=$((s + $(cat /proc/"$p"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'))); done; echo $s; }
snap() { local t; t=$(tree "$PID"); echo "$(ticks $t) $(ticks $(pgrep postgres)) $(ticks $(pgrep redis-server)) $(ticks $(pgrep beam.smp)) $(head -1 /proc/stat | awk '{print $5, $2+$3+$4+$5+$6+$7+$8}') $(switches $t)"; }
commits() { psql -tA "$PG" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"; }
us() { echo $(( ($2 - $1) * 1000000 / HZ / N )); }
echo "workers $W, N=$N, concurrency $L, ${RATE:+offered $RATE/s, }flags: ${*:-none}; CPU per registration in µs"
for ((r=1;r<=ROUNDS;r++)); do
  x0=$(commits); read -r -a a <<< "$(snap)"
  out=$(SIPP_RATE=$RATE "$SHARED/sipp/register-rate.sh" 127.0.0.1:5060 "$N" "$L" un)
  read -r -a b <<< "$(snap)"; x1=$(commits)
  idle=$(( (b[4] - a[4]) * 100 / (b[5] - a[5]) ))
  echo "round $r: $out | switchboard $(us "${a[0]}" "${b[0]}") postgres $(us "${a[1]}" "${b[1]}") redis $(us "${a[2]}" "${b[2]}") rabbitmq $(us "${a[3]}" "${b[3]}") | machine idle ${idle}% | postgres transactions $((x1 - x0)) | switchboard context switches $(echo "scale=2; (${b[6]} - ${a[6]}) / $N" | bc)/reg"
done
