#!/usr/bin/env bash
# pecgate vs Postfix on the same relay job, with ../shared/bench (see its
# README): builds pecgate in release mode, then runs compare.sh with
# RELAY_CMD=relay-cmd.sh. Prints compare.sh's lines and median ratios.
#
#   benches/relay/run.sh [N=10000] [SESSIONS=20] [SIZE=4096]     (REPS=3 by default)
#   REPS=1 benches/relay/run.sh 1000                               (the short CI version)
#
# The harness's latency probe sends a message without To:, which PEC rules
# refuse (no Bcc), so LAT_PROBES=0 here; benches/relay/latency.py measures
# accept latency with proper headers instead.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BENCH="${PECGATE_BENCH_HARNESS:-$ROOT/../shared/bench}"
[[ -x "$BENCH/compare.sh" ]] || { echo "bench harness not found at $BENCH (set PECGATE_BENCH_HARNESS)" >&2; exit 2; }

need=()
command -v postfix >/dev/null 2>&1 || need+=(postfix)
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 || need+=(stunnel4)
[[ -e /usr/lib/x86_64-linux-gnu/sasl2/libplain.so ]] || ls /usr/lib/*/sasl2/libplain.so >/dev/null 2>&1 || need+=(libsasl2-modules)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

cargo build --release -q --manifest-path "$ROOT/Cargo.toml"
export PECGATE_BIN="$ROOT/target/release/pecgate"
export LAT_PROBES=0
export RELAY_CMD="exec bash $HERE/relay-cmd.sh"
exec "$BENCH/compare.sh" "$@"
