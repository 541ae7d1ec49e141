#!/usr/bin/env bash
# Instructions per call on the proxy's call path, counted by valgrind (callgrind): bench/calls-hotpath.bench.ts of
# TREE (default this checkout; another tree gets this checkout's copy of the bench file) run twice, with ROUNDS_A
# and ROUNDS_B rounds of CALLS calls, and the difference per call printed, so start-up, the cold first round and JIT
# warm-up cancel out. Calls go 2 at a time: under callgrind a call takes ~25 ms, and a larger batch would leave
# forwarded INVITEs waiting past Timer A (500 ms) for their callee phase, and retransmissions would be counted.
# V8 runs single-threaded (no concurrent compiler or GC threads whose timing would move the count). The figure
# includes the bench's own caller and callee work (building messages, the Digest answer), the same for every tree;
# and timers that fire during the run (see bench/tools/hotpath-instructions.sh's caveat): compare trees side by side.
#   bench/tools/calls-instructions.sh [TREE] [CALLS] [ROUNDS_A] [ROUNDS_B]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TREE=${1:-$ROOT}; CALLS=${2:-200}; A=${3:-2}; B=${4:-4}
NODE=$ROOT/node_modules/.bin/node
[ "$TREE" = "$ROOT" ] || cp "$ROOT/bench/calls-hotpath.bench.ts" "$TREE/bench/calls-hotpath.bench.ts"
W=$(mktemp -d); if [ -n "${KEEP:-}" ]; then W=$KEEP; mkdir -p "$W"; else trap 'rm -rf "$W"' EXIT; fi
count() { # rounds -> instructions
  (cd "$TREE" && valgrind --tool=callgrind --callgrind-out-file="$W/cg.$1" "$NODE" --single-threaded bench/calls-hotpath.bench.ts "$CALLS" "$1" 2 > "$W/log.$1" 2>&1) \
    || { cat "$W/log.$1" >&2; exit 1; }
  grep -o 'Collected : [0-9]*' "$W/log.$1" | awk '{print $3}'
}
ia=$(count "$A"); ib=$(count "$B")
grep -h "extra sends" "$W/log.$A" "$W/log.$B" | sed 's/^/  /'
echo "$TREE ($(cd "$TREE" && git rev-parse --short HEAD 2>/dev/null || echo archive)$(cd "$TREE" && git diff --quiet HEAD -- src 2>/dev/null || echo '+changes')): $ia instructions for $A rounds, $ib for $B, $(( (ib - ia) / (CALLS * (B - A)) )) per warm call ($CALLS calls a round)"
