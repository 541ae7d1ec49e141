#!/usr/bin/env bash
# npm run bench:calls — calls through the proxy: SIPp callers → proxy → SIPp callees registered in it, Switchboard
# against Kamailio as the same proxy (bench/kamailio-calls/kamailio.cfg: auth_db + registrar + lookup +
# record_route + t_relay), in the same run, rounds alternating. Prints calls/s and server CPU per call (user+system
# time of the server's processes, children included) for every round, then the medians and the ratios.
#
# A call: INVITE → 407 → ACK → INVITE with credentials → 100 → 180 → 200 → ACK → BYE → 200 (bench/sipp/call-uac.xml
# and call-uas.xml), over UDP. Users user0..user<CALLEES+CALLERS-1> in realm bench.test, password pw<i>: the first
# CALLEES are the callees, all registered (Digest) at one SIPp UAS per proxy; caller user<CALLEES+i> calls
# user<i mod CALLEES>.
# Environment: CALLS (calls per round, 5000), CONCURRENCY (calls in flight, 100), ROUNDS (3), CALLEES (100),
#              CALLERS (1000), SB_PORT (5060), KAM_PORT (5070), SB_HTTP_PORT (18080), SB_FLAGS (extra flags for switchboard start), PROFILE=1 (a --cpu-prof profile of
#              Switchboard, summarised with bench/tools/cpuprofile-top.ts at the end).
# Needs: apt-get install -y sip-tester kamailio kamailio-sqlite-modules sqlite3 bc
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/bench
CALLS=${CALLS:-5000}; L=${CONCURRENCY:-100}; ROUNDS=${ROUNDS:-3}; K=${CALLEES:-100}; C=${CALLERS:-1000}
SBP=${SB_PORT:-5060}; KP=${KAM_PORT:-5070}; HP=${SB_HTTP_PORT:-18080}
SB=127.0.0.1:$SBP; KAM=127.0.0.1:$KP; SB_UAS=$((SBP + 30)); KAM_UAS=$((KP + 30)); KD=/tmp/kamailio-calls
for bin in sipp kamailio sqlite3 bc; do
  command -v "$bin" >/dev/null || { echo "missing $bin: apt-get install -y sip-tester kamailio kamailio-sqlite-modules sqlite3 bc" >&2; exit 1; }
done
WORK=$(mktemp -d); OUT=$DIR/out; mkdir -p "$OUT"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f $KD/kamailio.pid ] && kill "$(cat $KD/kamailio.pid)" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

# Users, for both: Switchboard's import and Kamailio's subscriber table.
U=$((K + C))
for ((i=0;i<U;i++)); do echo "user$i,bench.test,pw$i"; done > "$WORK/users.csv"
{ echo SEQUENTIAL; for ((i=0;i<K;i++)); do echo "user$i;bench.test;[authentication username=user$i password=pw$i]"; done; } > "$WORK/callees.inf"
{ echo SEQUENTIAL; for ((i=0;i<C;i++)); do j=$((K + i)); echo "user$j;bench.test;[authentication username=user$j password=pw$j];user$((i % K))"; done; } > "$WORK/callers.inf"

"$ROOT/bin/switchboard" user import "$WORK/users.csv" --data-dir "$WORK/data" >/dev/null 2>&1
PROF=()
[ "${PROFILE:-}" = 1 ] && { mkdir -p "$WORK/prof"; PROF=(--cpu-prof --cpu-prof-dir "$WORK/prof"); }
"$ROOT/node_modules/.bin/node" "${PROF[@]}" "$ROOT/src/cli.ts" start --data-dir "$WORK/data" --realm bench.test --sip-host 127.0.0.1 \
  --sip-port "$SBP" --sip-transports UDP,TCP --http-port "$HP" --log-level warn ${SB_FLAGS:-} > "$WORK/server.log" 2>&1 &
SBPID=$!; PIDS+=("$SBPID")
for _ in $(seq 50); do curl -sf "localhost:$HP/healthz" >/dev/null 2>&1 && break; sleep 0.2; done

[ -f $KD/kamailio.pid ] && kill "$(cat $KD/kamailio.pid)" 2>/dev/null && sleep 1
rm -rf $KD; mkdir -p $KD
S=/usr/share/kamailio/db_sqlite
{ cat $S/standard-create.sql $S/auth_db-create.sql; echo "BEGIN;"
  for ((i=0;i<U;i++)); do echo "INSERT INTO subscriber(username,domain,password) VALUES('user$i','bench.test','pw$i');"; done
  echo "COMMIT;"; } | sqlite3 $KD/kam.db
sed "s/5070/$KP/g" "$DIR/kamailio-calls/kamailio.cfg" > $KD/kamailio.cfg
kamailio -f $KD/kamailio.cfg -P $KD/kamailio.pid -m 512 -M 64 -E -w $KD >$KD/kamailio.out 2>$KD/kamailio.log
sleep 1; KPID=$(cat $KD/kamailio.pid)

# The callees: K registrations from the UAS port (Digest), then the UAS itself on that port.
callees() { # callees PROXY UAS_PORT
  sipp "$1" -sf "$ROOT/../shared/bench/sipp/register-digest.xml" -inf "$WORK/callees.inf" -m "$K" -l "$K" -r 1000 -t u1 \
    -i 127.0.0.1 -p "$2" -nostdin -timeout 30 -trace_screen -screen_file "$WORK/reg-$2.log" >/dev/null 2>&1 \
    || { echo "callee registration at $1 failed:"; cat "$WORK/reg-$2.log"; exit 1; }
  sipp -sf "$DIR/sipp/call-uas.xml" -i 127.0.0.1 -p "$2" -t u1 -nostdin -trace_err -error_file "$WORK/uas-$2.err" >/dev/null 2>&1 &
  PIDS+=("$!")
}
callees "$SB" "$SB_UAS"
callees "$KAM" "$KAM_UAS"
sleep 1

HZ=$(getconf CLK_TCK)
tree() { local p; for p in "$@"; do echo "$p"; tree $(pgrep -P "$p"); done; }
ticks() { local s=0 p; for p in $(tree "$@"); do [ -r /proc/$p/stat ] && s=$((s + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $s; }
run() { # run PROXY PID -> "<ok> <failed> <calls/s> <us per call>"
  local c0 c1 t0 t1 ok failed port=$(( 20000 + RANDOM % 20000 ))
  c0=$(ticks "$2"); t0=$(date +%s.%N)
  timeout 300 sipp "$1" -sf "$DIR/sipp/call-uac.xml" -inf "$WORK/callers.inf" -m "$CALLS" -l "$L" -r 100000 -t u1 \
    -i 127.0.0.1 -p "$port" -nostdin -timeout 280 -recv_timeout 5000 -trace_screen -screen_file "$WORK/uac.log" >/dev/null 2>&1 || true
  t1=$(date +%s.%N); c1=$(ticks "$2")
  ok=$(grep -m1 "Successful call" "$WORK/uac.log" | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  failed=$(grep -m1 "Failed call" "$WORK/uac.log" | awk -F'|' '{gsub(/ /,"",$3); print $3}')
  echo "${ok:-0} ${failed:-0} $(echo "${ok:-0} / ($t1 - $t0)" | bc -l | xargs printf '%.0f') $(echo "($c1 - $c0) * 1000000 / $HZ / ${ok:-1}" | bc)"
}

stamp=$(date -u +%Y-%m-%dT%H:%MZ)
report="$OUT/calls-$stamp.txt"
{
  echo "date: $stamp"
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(uname -r)"
  echo "node: $("$ROOT/node_modules/.bin/node" -v), kamailio: $(kamailio -v 2>/dev/null | head -1), sipp: $(sipp -v 2>/dev/null | grep -o 'v[0-9.]*' | head -1)"
  echo "calls per round $CALLS, $L in flight, $ROUNDS rounds, $K callees, $C callers, UDP; switchboard flags: ${SB_FLAGS:-(defaults)}"
} | tee "$report"
ra=(); rb=(); ca=(); cb=()
for ((r=1;r<=ROUNDS;r++)); do
  read -r ok failed rate us <<<"$(run "$SB" "$SBPID")"
  echo "switchboard $ok ok $failed failed $rate calls/s | cpu $us us/call" | tee -a "$report"; ra+=("$rate"); ca+=("$us")
  read -r ok failed rate us <<<"$(run "$KAM" "$KPID")"
  echo "kamailio    $ok ok $failed failed $rate calls/s | cpu $us us/call" | tee -a "$report"; rb+=("$rate"); cb+=("$us")
done
med() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(med "${ra[@]}"); mb=$(med "${rb[@]}"); xa=$(med "${ca[@]}"); xb=$(med "${cb[@]}")
{
  echo "median throughput: switchboard $ma calls/s, kamailio $mb calls/s"
  echo "median server cpu: switchboard $xa us/call, kamailio $xb us/call"
  printf "throughput ratio (switchboard / kamailio) %.2f\n" "$(echo "$ma / $mb" | bc -l)"
  printf "cpu efficiency ratio (kamailio cpu / switchboard cpu) %.2f\n" "$(echo "$xb / $xa" | bc -l)"
} | tee -a "$report"
if [ "${PROFILE:-}" = 1 ]; then
  kill "$SBPID"; wait "$SBPID" 2>/dev/null || true
  for f in "$WORK"/prof/*.cpuprofile; do "$ROOT/node_modules/.bin/node" "$DIR/tools/cpuprofile-top.ts" "$f" 30 | tee -a "$report"; done
fi
echo "report: $report"
