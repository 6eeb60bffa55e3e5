#!/usr/bin/env bash
# Accept latency, Postfix vs pecgate, alternating (A B, B A, A B), each relay
# freshly started; uses the harness's upstream and Postfix relay scripts.
#   benches/relay/latency.sh [N=2000] [SESSIONS=20] [SIZE=4096]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH="${PECGATE_BENCH_HARNESS:-$ROOT/../shared/bench}"
N="${1:-2000}"; SESSIONS="${2:-20}"; SIZE="${3:-4096}"; REPS="${REPS:-3}"
export BENCH_DIR="${BENCH_DIR:-$(mktemp -d -t peclat.XXXXXX)}" UP_TLS_PORT="${UP_TLS_PORT:-14650}"
cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
export PECGATE_BIN="$ROOT/target/release/pecgate"
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  PF_MODE=tls "$BENCH/postfix-relay.sh" stop >/dev/null 2>&1 || true
  "$BENCH/upstream.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$BENCH/upstream.sh" start >&2
wait_port() { for _ in $(seq 1 300); do python3 "$BENCH/benchlib.py" probe 127.0.0.1 "$1" && return 0; sleep 0.1; done; return 1; }
one() { # relay rep
  if [[ "$1" == postfix ]]; then
    PF_MODE=tls "$BENCH/postfix-relay.sh" start >&2; port=12525
  else
    sd="$BENCH_DIR/pecgate-$2"; rm -rf "$sd"; mkdir -p "$sd"
    RELAY_PORT=12526 UPSTREAM_CERT="$BENCH_DIR/upstream/cert.pem" RELAY_STATE_DIR="$sd" bash "$HERE/relay-cmd.sh" >"$sd.log" 2>&1 &
    PID=$!; port=12526; wait_port 12526
  fi
  echo "relay=$1 rep=$2 $(python3 "$HERE/latency.py" "$port" "$N" "$SESSIONS" "$SIZE")"
  if [[ "$1" == postfix ]]; then PF_MODE=tls "$BENCH/postfix-relay.sh" stop >&2; else kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""; fi
}
for ((rep = 1; rep <= REPS; rep++)); do
  if ((rep % 2)); then order="postfix pecgate"; else order="pecgate postfix"; fi
  for r in $order; do one "$r" "$rep"; done
done
