#!/usr/bin/env bash
# What the young-generation collector costs a REGISTER load (issue 20): the server under --trace-gc-nvp (and any
# NODE_FLAGS, e.g. --heap-prof), 20,000 users registered once to warm it, then RATE registrations a second for
# DURATION seconds (bench/sipp/register-latency.xml over UDP). Prints the scavenges and mark-compacts of the measured
# run: how many, their mean / p99 / max pause, the share of wall time, and per registration the bytes allocated and
# the bytes each scavenge found alive (copied within the young generation or promoted). The byte figures do not
# depend on what else the machine runs; the pauses do.
# Usage: bench/tools/gc-trace.sh [tree]   Environment: USERS (20000), RATE (3436), DURATION (15), NODE_FLAGS,
#        ALLOC=<file> (with NODE_FLAGS="--import $PWD/bench/tools/alloc-sampler.ts": an allocation profile of the
#        measured run, summarised per registration by bench/tools/alloc-top.ts).
set -euo pipefail
TREE=$(cd "${1:-$(dirname "$0")/../..}" && pwd)
SHARED=${SHARED:-$TREE/../shared/bench}; [ -d "$SHARED" ] || SHARED=/work/shared/bench
USERS=${USERS:-20000}; RATE=${RATE:-3436}; DURATION=${DURATION:-15}
NODE="$TREE/node_modules/.bin/node"
W=$(mktemp -d); trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$W"' EXIT
port() { "$NODE" -e "const d=require('node:dgram').createSocket('udp4');d.bind(0,'127.0.0.1',()=>{console.log(d.address().port);d.close()})"; }
SIP=$(port); HTTP=$(port)
# One SIPp port for the warm-up and the run: the contacts are the same, so the run's REGISTERs are refreshes (a
# phone's steady state), not a second binding per user.
UAC=$(port)
for ((i=0;i<USERS;i++)); do echo "user$i,bench.test,pw$i"; done > "$W/users.csv"
"$NODE" "$TREE/src/cli.ts" user import "$W/users.csv" --data-dir "$W/data" >/dev/null
"$SHARED/sipp/users.sh" "$USERS" bench.test > "$W/sipp.csv"
(cd "$W" && ALLOC_PROFILE=${ALLOC:-} exec "$NODE" --trace-gc-nvp ${NODE_FLAGS:-} "$TREE/src/cli.ts" start --data-dir "$W/data" --realm bench.test --sip-host 127.0.0.1 \
  --sip-port "$SIP" --sip-transports UDP --http-port "$HTTP" --log-level warn > "$W/gc.log" 2>&1) &
PID=$!
for _ in $(seq 100); do curl -sf "localhost:$HTTP/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
run() { # rate count dir
  mkdir -p "$3"; cp "$TREE/bench/sipp/register-latency.xml" "$3/"
  (cd "$3" && sipp "127.0.0.1:$SIP" -sf register-latency.xml -inf "$W/sipp.csv" -m "$2" -r "$1" -rp 1000 -l "$(( $1 > 200 ? $1 : 200 ))" \
    -t u1 -i 127.0.0.1 -p "$UAC" -nostdin -timeout 300 -recv_timeout 5000 -buff_size 4194304 -trace_rtt -rtt_freq 1 >/dev/null 2>&1) || true
}
run 2000 "$USERS" "$W/warm"
mark=$(wc -l < "$W/gc.log")
[ -n "${ALLOC:-}" ] && kill -USR2 $PID
run "$RATE" $(( RATE * DURATION )) "$W/run"
[ -n "${ALLOC:-}" ] && { kill -USR2 $PID; sleep 2; "$NODE" "$TREE/bench/tools/alloc-top.ts" "$ALLOC" $(( RATE * DURATION )) 40; }
tail -n +"$((mark + 1))" "$W/gc.log" > "$W/run-gc.log"
python3 - "$W/run-gc.log" "$DURATION" "$W/run" "$(( RATE * DURATION ))" <<'PY'
import re, sys, glob
log, dur, d, n = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
kinds = {}
for line in open(log):
    if ' pause=' not in line: continue
    f = dict(kv.split('=', 1) for kv in line.split(': ', 1)[1].split() if '=' in kv)
    kinds.setdefault(f['gc'], []).append(f)
names = {'s': 'scavenge', 'mc': 'mark-compact', 'ms': 'minor mark-sweep'}
for k, v in kinds.items():
    p = sorted(float(x['pause']) for x in v)
    line = f"{names.get(k, k)}: {len(p)} ({len(p)/dur:.2f}/s), pause mean {sum(p)/len(p):.2f} p99 {p[max(0, int(len(p)*0.99)-1)]:.2f} max {p[-1]:.2f} ms, {sum(p)/dur/10:.2f} % of wall time"
    if k == 's':
        alloc = sum(int(x['allocated']) for x in v); surv = sum(int(x['new_space_survived']) + int(x['promoted']) for x in v)
        line += f"; per registration {alloc/n/1024:.1f} KiB allocated, {surv/n:.0f} B found alive (copied or promoted) summed over scavenges, {sum(int(x['promoted']) for x in v)/n:.0f} B promoted"
    print(line)
rt = []
for f in glob.glob(d + '/*rtt.csv'):
    for line in open(f):
        parts = line.strip().split(';')  # date_ms;response_time_ms;rtd_no (latency-report.ts reads the same)
        if len(parts) >= 3 and parts[2] == '2': rt.append(float(parts[1]))
rt.sort()
if rt: print(f"sipp register rtt n={len(rt)} p50 {rt[len(rt)//2]:.0f} p90 {rt[int(len(rt)*.9)]:.0f} p99 {rt[int(len(rt)*.99)]:.0f} max {rt[-1]:.0f} ms")
PY
[ -n "${KEEP:-}" ] && cp -r "$W" "$KEEP" || true
