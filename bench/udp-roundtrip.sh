#!/usr/bin/env bash
# npm run bench:udp — SIP request/response round trips per second over UDP with SIPp (OPTIONS, no auth, no
# storage): the cost of the transport, parser, transaction layer and serializer alone.
# Environment: N (100000 requests), CONCURRENCY (200).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-100000}; L=${CONCURRENCY:-200}
command -v sipp >/dev/null || { echo "missing sipp: apt-get install -y sip-tester" >&2; exit 1; }
WORK=$(mktemp -d)
trap '[ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT
"$ROOT/node_modules/.bin/node" "$ROOT/src/cli.ts" start --data-dir "$WORK/data" --realm bench.test --sip-host 127.0.0.1 \
  --sip-port 5062 --http-port 18081 --log-level warn > "$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 50); do curl -sf localhost:18081/healthz >/dev/null 2>&1 && break; sleep 0.2; done
ticks() { awk '{print $14+$15}' /proc/"$PID"/stat; }
c0=$(ticks); start=$(date +%s.%N)
(cd "$WORK" && sipp 127.0.0.1:5062 -sf "$ROOT/test/interop/scenarios/options.xml" -m "$N" -r 1000000 -l "$L" -t u1 \
  -i 127.0.0.1 -p 0 -nostdin -timeout 120 -trace_screen -screen_file "$WORK/screen.log" >/dev/null 2>&1) || true
end=$(date +%s.%N); c1=$(ticks)
ok=$(grep -m1 "Successful call" "$WORK/screen.log" | awk -F'|' '{gsub(/ /,"",$3); print $3}')
secs=$(echo "$end - $start" | bc -l)
us=$(echo "($c1 - $c0) * 1000000 / $(getconf CLK_TCK) / ${ok:-1}" | bc)
printf "%s OPTIONS round trips in %.2f s: %.0f/s, server cpu %s us per request\n" "${ok:-0}" "$secs" "$(echo "${ok:-0} / $secs" | bc -l)" "$us"
