#!/usr/bin/env bash
# npm run bench:scaleout — the registrar on the scale-out adapters (PostgreSQL, Redis, RabbitMQ), as one process
# and then as one worker per core (--workers auto, SO_REUSEPORT), each against the Kamailio reference in the same
# run (../shared/bench/compare-register.sh), with server CPU counted over the whole process tree.
#
# SIPp drives it in `un` mode (a socket per registration, as many phones would): with one socket (`u1`) the kernel
# hashes every datagram of the run to the same worker, which measures one worker, not the machine.
# Environment: N (registrations per run, 20000), CONCURRENCY (200), ROUNDS (3), TRANSPORT (un), WORKERS ("1 auto"),
#              PG (postgres URL), REDIS (redis URL), AMQP (amqp URL), SHARED (the shared bench dir),
#              SERVER_ARGS (more `switchboard start` flags; default: --kazoo-foreign-registrations off, the setting for a
#              deployment where Switchboard is the only registrar on the bus — reg_success is still published).
# Needs: apt-get install -y sip-tester kamailio kamailio-sqlite-modules sqlite3 bc; PostgreSQL, Redis, RabbitMQ.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
N=${N:-20000}; L=${CONCURRENCY:-200}; ROUNDS=${ROUNDS:-3}; T=${TRANSPORT:-un}; WORKERS=${WORKERS:-"1 auto"}
for bin in sipp kamailio sqlite3 bc psql redis-cli; do
  command -v "$bin" >/dev/null || { echo "missing $bin" >&2; exit 1; }
done
OUT=$ROOT/bench/out; mkdir -p "$OUT"
source "$ROOT/bench/tools/scaleout-stack.sh" bench
read -r -a EXTRA <<< "${SERVER_ARGS---kazoo-foreign-registrations off}"

stamp=$(date -u +%Y-%m-%dT%H:%MZ)
report="$OUT/register-scaleout-$stamp.txt"
{
  echo "date: $stamp"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(uname -r)"
  echo "node: $("$NODE" -v), kamailio: $(kamailio -v 2>/dev/null | head -1), sipp: $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
  echo "stack: PostgreSQL $(psql -tA "$PG" -c 'SHOW server_version' 2>/dev/null), Redis $(redis-cli -u "$REDIS" info server | grep -o 'redis_version:[0-9.]*' | cut -d: -f2), RabbitMQ"
} | tee "$report"
for W in $WORKERS; do
  # Fresh bindings per configuration: every run registers N new phones.
  drop_cached
  psql -q "$PG" -c "TRUNCATE $SCHEMA.bindings" >/dev/null
  start_switchboard "$W" "${EXTRA[@]}"
  echo "--- workers $W (N=$N, concurrency $L, sipp -t $T, rounds $ROUNDS, ${EXTRA[*]:-no extra flags})" | tee -a "$report"
  mem0=$(redis-cli -u "$REDIS" info memory | grep -o 'used_memory:[0-9]*' | cut -d: -f2)
  (cd "$WORK" && TARGET_PIDS="$PID" "$SHARED/compare-register.sh" 127.0.0.1:5060 "$N" "$L" "$T" "$ROUNDS") 2>&1 | tee -a "$report"
  # What the shared state costs per binding: Redis memory and the PostgreSQL table with its index.
  mem1=$(redis-cli -u "$REDIS" info memory | grep -o 'used_memory:[0-9]*' | cut -d: -f2)
  rows=$(psql -tA "$PG" -c "SELECT count(*) FROM $SCHEMA.bindings")
  pgb=$(psql -tA "$PG" -c "SELECT pg_total_relation_size('$SCHEMA.bindings')")
  echo "state: $rows bindings; Redis +$(( (mem1 - mem0) / (rows > 0 ? rows : 1) )) B/binding; PostgreSQL $(( pgb / (rows > 0 ? rows : 1) )) B/binding (table + index)" | tee -a "$report"
  stop_switchboard
done
echo "report: $report"
