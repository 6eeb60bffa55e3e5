#!/usr/bin/env bash
# One 100 MB message relayed end to end through pecgate to the harness's TLS
# upstream; prints pecgate's RSS before and its peak (VmHWM) after.
#   benches/relay/bigmessage.sh [SIZE_BYTES=100000000]
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH="${PECGATE_BENCH_HARNESS:-$ROOT/../shared/bench}"
SIZE="${1:-100000000}"
export BENCH_DIR="${BENCH_DIR:-$(mktemp -d -t pecbig.XXXXXX)}" UP_TLS_PORT="${UP_TLS_PORT:-14650}"
cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
export PECGATE_BIN="$ROOT/target/release/pecgate"
PID=""
cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  "$BENCH/upstream.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
"$BENCH/upstream.sh" start >&2
sd="$BENCH_DIR/pecgate"; mkdir -p "$sd"
RELAY_PORT=12526 UPSTREAM_CERT="$BENCH_DIR/upstream/cert.pem" RELAY_STATE_DIR="$sd" bash "$HERE/relay-cmd.sh" >"$sd.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do python3 "$BENCH/benchlib.py" probe 127.0.0.1 12526 && break; sleep 0.1; done
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$PID/status"; }
before=$(rss VmRSS)
SINKOUT="$BENCH_DIR/upstream/sink.out"
base=$(python3 "$BENCH/benchlib.py" count "$SINKOUT")
t0=$EPOCHREALTIME
python3 - "$SIZE" <<'PY'
import smtplib, sys
size = int(sys.argv[1])
line = "x" * 998 + "\r\n"
body = "From: <sender@example.it>\r\nTo: <dest@example.it>\r\nSubject: big\r\n\r\n" + line * (size // len(line))
with smtplib.SMTP("127.0.0.1", 12526, timeout=600) as s:
    s.sendmail("sender@example.it", ["dest@example.it"], body)
PY
t1=$EPOCHREALTIME
python3 "$BENCH/benchlib.py" wait "$SINKOUT" "$base" "$((base + 1))" 600 >/dev/null
t2=$EPOCHREALTIME
peak=$(rss VmHWM)
python3 -c "print('big_message bytes=$SIZE accept_s=%.1f e2e_s=%.1f rss_before_kib=$before peak_rss_kib=$peak growth_mib=%.1f' % ($t1-$t0, $t2-$t0, ($peak-$before)/1024))"
