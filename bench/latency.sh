#!/usr/bin/env bash
# npm run bench:latency — how long a phone waits for its REGISTER's 200 OK, Switchboard against the Kamailio
# reference at the same offered loads, in the same run.
#
# 1. Kamailio's peak over each transport: N registrations as fast as they are answered (200 in flight, as
#    bench:register). 2. At LOADS per cent of that peak, SIPp offers registrations at a fixed rate (-r) for DURATION
#    seconds, to Kamailio and then Switchboard (the order alternates by round), REGISTER → 401 → REGISTER with
#    credentials → 200 OK (bench/sipp/register-latency.xml), -trace_rtt on. Each Switchboard run is bracketed by two
#    /metrics scrapes: its own REGISTER histogram (switchboard_sip_register_duration_seconds, status 200), the
#    event-loop delay and the GC pauses of that run. 3. A table (for bench/RESULTS.md) and a plot of the percentiles
#    against offered load, docs/images/latency.png (the README shows it).
#
# Configurations: embedded (SQLite, in-process bus: the defaults) and scaleout (PostgreSQL, Redis, RabbitMQ through
# bench/tools/scaleout-stack.sh, one process). Kamailio is the same reference for both (bench:register's: digest
# from SQLite, location in memory); it runs in a directory and on ports of its own, so other benchmarks may run.
# SIPp's clock steps in whole milliseconds (4 at a time here), so every measured run is also timed on the wire: a
# tcpdump capture of the server's port on lo, read by bench/tools/wire-latency.ts (request's last byte out of SIPp →
# final response's last byte out of the server, kernel stamps in ns, the same clock for both servers).
# Environment: USERS (20000), N (registrations of the peak run, 20000), LOADS ("25 50 75"), DURATION (s per run, 20),
#              ROUNDS (1), TRANSPORTS ("u1 t1"), CONFIGS ("embedded scaleout"), PEAK_u1/PEAK_t1 (reg/s: skip measuring
#              the peak), SB_FLAGS (more `switchboard start` flags), NODE_FLAGS (node's own, embedded only),
#              PLOT (docs/images/latency.png; "" for none), WIRE (1: capture each measured run, needs tcpdump and CAP_NET_RAW; 0: SIPp's clock only).
# Needs: apt-get install -y sip-tester kamailio kamailio-sqlite-modules sqlite3 bc; the scaleout configuration
# PostgreSQL, Redis and RabbitMQ. Short check: DURATION=3 USERS=2000 N=2000 CONFIGS=embedded npm run bench:latency
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/bench}
USERS=${USERS:-20000}; N=${N:-$USERS}; LOADS=${LOADS:-"25 50 75"}; DURATION=${DURATION:-20}; ROUNDS=${ROUNDS:-1}
TRANSPORTS=${TRANSPORTS:-"u1 t1"}; CONFIGS=${CONFIGS:-"embedded scaleout"}; PLOT=${PLOT-$ROOT/docs/images/latency.png}
for bin in sipp kamailio sqlite3 bc curl; do
  command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install -y sip-tester kamailio kamailio-sqlite-modules sqlite3 bc" >&2; exit 1; }
done
# WIRE=1 (the default where tcpdump can capture on lo): each measured run also timed from a packet capture.
if [ -z "${WIRE:-}" ]; then WIRE=0; if command -v tcpdump >/dev/null && [ "$(id -u)" = 0 ]; then WIRE=1; fi; fi
NODE="$ROOT/node_modules/.bin/node"
OUT=$ROOT/bench/out; mkdir -p "$OUT"
stamp=$(date -u +%Y-%m-%dT%H:%MZ)
report="$OUT/latency-$stamp.txt"; results="$OUT/latency-$stamp.jsonl"; : > "$results"

# Ports from the kernel (UDP and TCP both free for a SIP port), never fixed ones: other runs share the machine.
free_port() { "$NODE" -e "
  const net = require('node:net'), dgram = require('node:dgram');
  const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; const u = dgram.createSocket('udp4');
    u.once('error', () => process.exit(1)); u.bind(p, '127.0.0.1', () => { console.log(p); u.close(); s.close(); }); });"; }
SIP_PORT=$(free_port); HTTP_PORT=$(free_port); KAM_PORT=$(free_port)
# SIPp's own port, the same for every run: its contacts name it, so each run's REGISTERs refresh the users' bindings
# (a phone's steady state) instead of adding one more per user and run (five per AOR by the last run, every 200 OK
# listing them all; both servers alike, until 2026-12-07 19:00 UTC).
UAC_PORT=$(free_port)
export SIP_PORT HTTP_PORT

# The scale-out stack (sourced: its WORK, schema and users, its cleanup on exit), else a work directory of our own.
if [[ " $CONFIGS " == *" scaleout "* ]]; then
  N=$USERS source "$ROOT/bench/tools/scaleout-stack.sh" lat
else
  WORK=$(mktemp -d); PID=
  stop_switchboard() { if [ -n "${PID:-}" ]; then kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; fi; PID=; }
  cleanup() { stop_switchboard; rm -rf "$WORK"; }
fi
KDIR=$WORK/kamailio
trap 'kill "$(cat "$KDIR/kamailio.pid" 2>/dev/null)" 2>/dev/null || true; cleanup' EXIT

# Users: the embedded store's, Kamailio's, SIPp's injection file.
for ((i=0;i<USERS;i++)); do echo "user$i,bench.test,pw$i"; done > "$WORK/embedded-users.csv"
"$NODE" "$ROOT/src/cli.ts" user import "$WORK/embedded-users.csv" --data-dir "$WORK/embedded-data" >/dev/null
"$SHARED/sipp/users.sh" "$USERS" bench.test > "$WORK/sipp-users.csv"
mkdir -p "$KDIR"
S=/usr/share/kamailio/db_sqlite
{ cat $S/standard-create.sql $S/auth_db-create.sql; echo "BEGIN;"
  for ((i=0;i<USERS;i++)); do echo "INSERT INTO subscriber(username,domain,password) VALUES('user$i','bench.test','pw$i');"; done
  echo "COMMIT;"; } | sqlite3 "$KDIR/kam.db"
sed -e "s#/tmp/kamailio-ref#$KDIR#g" -e "s/5070/$KAM_PORT/g" "$SHARED/kamailio/kamailio.cfg" > "$KDIR/kamailio.cfg"
kamailio -f "$KDIR/kamailio.cfg" -P "$KDIR/kamailio.pid" -m 512 -M 64 -E -w "$KDIR" 2>"$KDIR/kamailio.log"
sleep 1

start_embedded() {
  rm -rf "$WORK/embedded-run"; cp -r "$WORK/embedded-data" "$WORK/embedded-run"
  "$NODE" ${NODE_FLAGS:-} "$ROOT/src/cli.ts" start --data-dir "$WORK/embedded-run" --realm bench.test --sip-host 127.0.0.1 --sip-port "$SIP_PORT" \
    --sip-transports UDP,TCP --http-port "$HTTP_PORT" --log-level warn ${SB_FLAGS:-} > "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "localhost:$HTTP_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
}

sipp_run() { # HOSTPORT TRANSPORT RATE COUNT DIR [wire] -> the rtt csv (and wire.pcap) in DIR; prints "<ok> <failed> <seconds>"
  local hp=$1 t=$2 rate=$3 count=$4 dir=$5 wire=${6:-} start end cap=
  mkdir -p "$dir"; cp "$ROOT/bench/sipp/register-latency.xml" "$dir/"
  if [ -n "$wire" ] && [ "$WIRE" = 1 ]; then
    # The wire's clock (bench/tools/wire-latency.ts): the server port's packets on lo, stamped by the kernel to the
    # nanosecond, with a 64 MiB capture buffer so that a busy second drops none (the count is reported); -Z root:
    # the run directory is mktemp's, which the tcpdump user could not write to.
    tcpdump -i lo -n -Z root -B 65536 --time-stamp-precision=nano -w "$dir/wire.pcap" "port ${hp##*:}" 2>"$dir/tcpdump.log" &
    cap=$!
    for _ in $(seq 50); do grep -q listening "$dir/tcpdump.log" 2>/dev/null && break; sleep 0.1; done
  fi
  # No rate: as fast as answered, 200 in flight (the peak); a rate: up to a second of it in flight. SIPp's sockets get
  # 4 MiB buffers (-buff_size; its default is 64 KiB, ~10 ms of responses at these rates): datagrams SIPp dropped
  # while descheduled came back as 500 ms retransmissions in either server's p99 (since 2026-12-07 16:10 UTC).
  local limit=200; [ -n "$rate" ] && limit=$(( rate > 200 ? rate : 200 ))
  start=$(date +%s.%N)
  (cd "$dir" && timeout $(( DURATION * 3 + 120 )) sipp "$hp" -sf register-latency.xml -inf "$WORK/sipp-users.csv" -m "$count" \
    -r "${rate:-100000}" -rp 1000 -l "$limit" -t "$t" -i 127.0.0.1 -p "$UAC_PORT" -nostdin -timeout $(( DURATION * 3 + 100 )) \
    -recv_timeout 5000 -buff_size 4194304 -trace_rtt -rtt_freq 1 -trace_screen -screen_file screen.log >/dev/null 2>&1) || true
  end=$(date +%s.%N)
  # tcpdump gets the kernel's packets a block at a time, at the latest a second after a block's first: stopped
  # sooner, it would leave the run's last packets unwritten.
  if [ -n "$cap" ]; then sleep 1.5; kill -INT "$cap"; wait "$cap" 2>/dev/null || true; fi
  local ok failed
  ok=$(grep -m1 "Successful call" "$dir/screen.log" | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  failed=$(grep -m1 "Failed call" "$dir/screen.log" | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  echo "${ok:-0} ${failed:-0} $(echo "$end - $start" | bc -l)"
}

# The capture's arguments for latency-report.ts (none without one); the capture itself is dropped once read.
wire_args() { if [ -f "$1/wire.pcap" ]; then echo "wire=$1/wire.pcap:$2:$(grep -o '^[0-9]* packets dropped by kernel' "$1/tcpdump.log" | cut -d' ' -f1)"; fi; }

{
  echo "date: $stamp"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "node: $("$NODE" -v), kamailio: $(kamailio -v 2>/dev/null | head -1), sipp: $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
  echo "users $USERS, loads $LOADS % of Kamailio's peak, $DURATION s a run, $ROUNDS round(s), transports $TRANSPORTS, configurations $CONFIGS, flags: ${SB_FLAGS:-(defaults)}"
} | tee "$report"

for T in $TRANSPORTS; do
  peak_var=PEAK_$T; peak=${!peak_var:-}
  if [ -z "$peak" ]; then
    # Kamailio's peak: N registrations as fast as it answers them, 200 in flight (the bench:register load).
    read -r ok failed secs <<< "$(sipp_run "127.0.0.1:$KAM_PORT" "$T" "" "$N" "$WORK/peak-$T")"
    peak=$(echo "$ok / $secs" | bc)
  fi
  echo "--- $T: Kamailio's peak $peak reg/s" | tee -a "$report"
  for C in $CONFIGS; do
    if [ "$C" = embedded ]; then start_embedded; else drop_cached; psql -q "$PG" -c "TRUNCATE $SCHEMA.bindings" >/dev/null; start_switchboard 1 ${SB_FLAGS:-}; fi
    # A warm-up at the lowest load: the JIT, and every credential in the cache (Kamailio reads SQLite every time).
    sipp_run "127.0.0.1:$SIP_PORT" "$T" "$(( peak / 4 ))" "$USERS" "$WORK/warm-$T-$C" >/dev/null
    for L in $LOADS; do
      rate=$(( peak * L / 100 )); count=$(( rate * DURATION ))
      for ((r=1;r<=ROUNDS;r++)); do
        order="kamailio switchboard"; (( r % 2 == 0 )) && order="switchboard kamailio"
        for who in $order; do
          d="$WORK/run-$T-$C-$L-$r-$who"; label="{\"server\":\"$who\",\"config\":\"$C\",\"transport\":\"$T\",\"load\":$L,\"rate\":$rate,\"round\":$r"
          if [ "$who" = kamailio ]; then
            read -r ok failed secs <<< "$(sipp_run "127.0.0.1:$KAM_PORT" "$T" "$rate" "$count" "$d" wire)"
            "$NODE" "$ROOT/bench/tools/latency-report.ts" run "$d"/*_rtt.csv "$label,\"ok\":$ok,\"failed\":$failed}" $(wire_args "$d" "$KAM_PORT") >> "$results"
          else
            curl -sf "localhost:$HTTP_PORT/metrics" > "$WORK/m0"
            read -r ok failed secs <<< "$(sipp_run "127.0.0.1:$SIP_PORT" "$T" "$rate" "$count" "$d" wire)"
            curl -sf "localhost:$HTTP_PORT/metrics" > "$WORK/m1"
            "$NODE" "$ROOT/bench/tools/latency-report.ts" run "$d"/*_rtt.csv "$label,\"ok\":$ok,\"failed\":$failed}" "$WORK/m0" "$WORK/m1" $(wire_args "$d" "$SIP_PORT") >> "$results"
          fi
          tail -1 "$results" | tee -a "$report"
        done
      done
    done
    stop_switchboard
  done
done

"$NODE" "$ROOT/bench/tools/latency-report.ts" plot "$results" "$OUT/latency-$stamp.svg" | tee -a "$report"
if [ -n "$PLOT" ]; then
  # SVG → PNG with what the machine has: rsvg-convert, else headless Chromium's screenshot.
  if command -v rsvg-convert >/dev/null; then rsvg-convert -o "$PLOT" "$OUT/latency-$stamp.svg"
  else
    size=$(grep -o 'width="[0-9]*" height="[0-9]*"' "$OUT/latency-$stamp.svg" | head -1 | tr -dc '0-9 ' | awk '{print $1","$2}')
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$WORK/chromium" --window-size="$size" \
      --screenshot="$PLOT" "file://$OUT/latency-$stamp.svg" >/dev/null 2>&1
  fi
  echo "plot: $PLOT" | tee -a "$report"
fi
echo "report: $report, results: $results"
