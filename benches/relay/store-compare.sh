#!/usr/bin/env bash
# pecgate on SQLite (A) vs pecgate on PostgreSQL (B), same relay job as
# run.sh (the shared harness: smtp-source in, TLS+AUTH upstream to
# smtp-sink), alternating AB BA AB in one run, fresh store per measurement
# (a new SQLite file; a new database on a private PostgreSQL started here).
# Prints each measurement and the median B/A ratios.
#
#   benches/relay/store-compare.sh [N=5000] [SESSIONS=20] [SIZE=4096]   (REPS=3)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH="${PECGATE_BENCH_HARNESS:-$ROOT/../shared/bench}"
[[ -x "$BENCH/run.sh" ]] || { echo "bench harness not found at $BENCH (set PECGATE_BENCH_HARNESS)" >&2; exit 2; }
N="${1:-5000}"; SESSIONS="${2:-20}"; SIZE="${3:-4096}"; REPS="${REPS:-3}"
LIB=(python3 "$BENCH/benchlib.py")
# The harness's latency probe sends no To:, which PEC rules refuse (see run.sh).
export LAT_PROBES=0
PORT=12526

cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
export PECGATE_BIN="$ROOT/target/release/pecgate"
export BENCH_DIR="$(mktemp -d -t pecstore.XXXXXX)"
export UP_TLS_PORT="${UP_TLS_PORT:-14650}"
chmod 755 "$BENCH_DIR"
source "$ROOT/tests/interop/pg.sh"

RPID=""; UP_STARTED=0
stop_relay() {
  [[ -n "$RPID" ]] || return 0
  kill "$RPID" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do kill -0 "$RPID" 2>/dev/null || break; sleep 0.05; done
  kill -0 "$RPID" 2>/dev/null && kill -9 "$RPID" 2>/dev/null
  wait "$RPID" 2>/dev/null || true
  RPID=""
}
cleanup() {
  stop_relay
  [[ "$UP_STARTED" == 1 ]] && "$BENCH/upstream.sh" stop >/dev/null 2>&1
  pg_stop
  rm -rf "$BENCH_DIR"
}
trap cleanup EXIT

pg_start "$BENCH_DIR/pg" >&2
if ! "${LIB[@]}" probe 127.0.0.1 "$UP_TLS_PORT"; then "$BENCH/upstream.sh" start >&2; UP_STARTED=1; fi
echo "# store-compare n=$N sessions=$SESSIONS size=$SIZE reps=$REPS $(date -u +%FT%TZ) $(nproc) cpus; A=sqlite B=postgres"

RESULTS="$BENCH_DIR/results.txt"
run_one() { # label rep
  local label="$1" rep="$2" sd="$BENCH_DIR/relay-$1-$2" line
  mkdir -p "$sd"
  if [[ "$label" == B ]]; then
    pg_createdb "bench_$rep"
    export PECGATE_PG_URL="postgres://pecgate@127.0.0.1:$PG_PORT/bench_$rep" PECGATE_PG_PASSWORD_FILE="$PG_PASSWORD_FILE"
  else
    unset PECGATE_PG_URL PECGATE_PG_PASSWORD_FILE
  fi
  RELAY_PORT=$PORT UPSTREAM_CERT="$BENCH_DIR/upstream/cert.pem" RELAY_STATE_DIR="$sd" bash "$HERE/relay-cmd.sh" >"$sd.log" 2>&1 </dev/null &
  RPID=$!
  for ((i = 0; i < 300; i++)); do "${LIB[@]}" probe 127.0.0.1 $PORT && break; sleep 0.1; done
  "${LIB[@]}" probe 127.0.0.1 $PORT || { echo "relay $label did not start (log $sd.log):"; cat "$sd.log"; return 1; }
  line="$(RELAY_PID="$RPID" "$BENCH/run.sh" "$PORT" "$N" "$SESSIONS" "$SIZE")"
  stop_relay
  echo "store=$label rep=$rep $line" | tee -a "$RESULTS"
}

for ((rep = 1; rep <= REPS; rep++)); do
  if ((rep % 2)); then order="A B"; else order="B A"; fi
  for l in $order; do run_one "$l" "$rep"; done
done

python3 - "$RESULTS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
    runs.setdefault(kv["rep"], {})[kv["store"]] = kv
print("# medians over %d reps: A=sqlite B=postgres" % len(runs))
for key in ["accept_msgs_per_s", "e2e_msgs_per_s", "peak_rss_kb", "relay_cpu_s"]:
    ratios, a_vals, b_vals = [], [], []
    for r in runs.values():
        try:
            a, b = float(r["A"][key]), float(r["B"][key])
        except (KeyError, ValueError):
            continue
        a_vals.append(a); b_vals.append(b)
        if a:
            ratios.append(b / a)
    if ratios:
        print("%-18s A=%-10.1f B=%-10.1f median_ratio_B/A=%.3f  (per-rep: %s)" % (
            key, statistics.median(a_vals), statistics.median(b_vals), statistics.median(ratios), " ".join("%.3f" % x for x in ratios)))
for r in sorted(runs):
    for s in "AB":
        d = runs[r].get(s, {}).get("delivered", "?")
        print("rep %s %s delivered %s" % (r, s, d))
PY
