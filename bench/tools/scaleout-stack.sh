# Sourced by the scale-out benchmarks (bench/register-scaleout.sh, bench/tools/register-components.sh):
#   ROOT=… N=… source "$ROOT/bench/tools/scaleout-stack.sh" <tag>
# Sets PG, REDIS, AMQP (defaults: the machine's engines), NODE, WORK (removed on exit), SCHEMA and PREFIX (own to this
# run, dropped on exit), STACK (the `switchboard` flags for those engines), imports user0..user<N-1> (realm
# bench.test, password pw<i>), and defines start_switchboard WORKERS [flags…] (sets PID) and stop_switchboard.
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
REDIS=${REDIS:-redis://127.0.0.1:6379}
AMQP=${AMQP:-amqp://guest:guest@127.0.0.1:5672}
NODE="$ROOT/node_modules/.bin/node"
WORK=$(mktemp -d)
# SIPp's `un` mode refuses to start when its default -max_socket (50000) exceeds the open-files limit, which a
# container may not let us raise: a wrapper first on PATH gives it a socket budget that fits. With SIPP_RATE set it
# also caps the call rate (a later -r overrides the shared driver's), for runs at a fixed offered load.
mkdir -p "$WORK/bin"
printf '#!/bin/sh\nexec %s "$@" -max_socket %s ${SIPP_RATE:+-r $SIPP_RATE}\n' "$(command -v sipp)" "$(( $(ulimit -n) - 1000 ))" > "$WORK/bin/sipp"
chmod +x "$WORK/bin/sipp"; export PATH="$WORK/bin:$PATH"
SCHEMA=sb_${1}_$$; PREFIX="sb-${1}-$$:"
STACK=(--database "$PG" --database-schema "$SCHEMA" --cache "$REDIS" --cache-prefix "$PREFIX" --bus "$AMQP" --node-id "$1")

drop_cached() { redis-cli -u "$REDIS" --scan --pattern "$PREFIX*" | xargs -r -n 1000 redis-cli -u "$REDIS" unlink >/dev/null 2>&1 || true; }

start_switchboard() { # WORKERS [flags…]: starts it on UDP/TCP ${SIP_PORT:-5060} and HTTP ${HTTP_PORT:-18080}, returns once every worker is up
  local w=$1; shift
  "$NODE" "$ROOT/src/cli.ts" start --data-dir "$WORK/data" --realm bench.test --sip-host 127.0.0.1 --sip-port "${SIP_PORT:-5060}" \
    --sip-transports UDP,TCP --http-port "${HTTP_PORT:-18080}" --log-level warn --workers "$w" "${STACK[@]}" "$@" > "$WORK/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 100); do curl -sf "localhost:${HTTP_PORT:-18080}/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  sleep 2 # every worker up (the health check answers as soon as one is)
}

stop_switchboard() { if [ -n "${PID:-}" ]; then kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; fi; PID=; }

cleanup() {
  stop_switchboard
  psql -q "$PG" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
  drop_cached
  rm -rf "$WORK"
}
trap cleanup EXIT

for ((i=0;i<N;i++)); do echo "user$i,bench.test,pw$i"; done > "$WORK/users.csv"
"$NODE" "$ROOT/src/cli.ts" user import "$WORK/users.csv" --data-dir "$WORK/data" "${STACK[@]}" >/dev/null
