#!/usr/bin/env bash
# npm run bench:register — Digest REGISTER throughput and server CPU per registration, Switchboard against the
# Kamailio reference in the same run (../shared/bench/compare-register.sh), over UDP and TCP.
#
# Imports user0..user19999 in realm bench.test (password pw<i>), starts Switchboard on 127.0.0.1:5060 with its
# embedded store, and runs the comparison with TARGET_PIDS set so that CPU is compared too.
# Environment: N (registrations per run, 20000), CONCURRENCY (200), ROUNDS (5), TRANSPORTS ("u1 t1"),
#              SB_FLAGS (extra flags for switchboard start), SHARED (path of the shared bench dir).
# Needs: apt-get install -y sip-tester kamailio kamailio-sqlite-modules sqlite3 bc
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
N=${N:-20000}; L=${CONCURRENCY:-200}; ROUNDS=${ROUNDS:-5}; TRANSPORTS=${TRANSPORTS:-"u1 t1"}
for bin in sipp kamailio sqlite3 bc; do
  command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install -y sip-tester kamailio kamailio-sqlite-modules sqlite3 bc" >&2; exit 1; }
done
WORK=$(mktemp -d); OUT=$ROOT/bench/out; mkdir -p "$OUT"
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

for ((i=0;i<N;i++)); do echo "user$i,bench.test,pw$i"; done > "$WORK/users.csv"
"$ROOT/bin/switchboard" user import "$WORK/users.csv" --data-dir "$WORK/data" >/dev/null 2>&1

stamp=$(date -u +%Y-%m-%dT%H:%MZ)
report="$OUT/register-$stamp.txt"
{
  echo "date: $stamp"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(uname -r)"
  echo "node: $("$ROOT/node_modules/.bin/node" -v), kamailio: $(kamailio -v 2>/dev/null | head -1), sipp: $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
  echo "switchboard flags: ${SB_FLAGS:-(defaults)}"
} | tee "$report"
for T in $TRANSPORTS; do
  # A fresh server per transport, so each starts with the same store and a cold credential cache.
  rm -rf "$WORK/run"; cp -r "$WORK/data" "$WORK/run"
  "$ROOT/node_modules/.bin/node" "$ROOT/src/cli.ts" start --data-dir "$WORK/run" --realm bench.test --sip-host 127.0.0.1 \
    --sip-port 5060 --http-port 18080 --log-level warn ${SB_FLAGS:-} > "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 50); do curl -sf localhost:18080/healthz >/dev/null 2>&1 && break; sleep 0.2; done
  echo "--- transport $T (N=$N, concurrency $L, rounds $ROUNDS)" | tee -a "$report"
  (cd "$WORK" && TARGET_PIDS="$PID" "$SHARED/compare-register.sh" 127.0.0.1:5060 "$N" "$L" "$T" "$ROUNDS") 2>&1 | tee -a "$report"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
done
echo "report: $report"
