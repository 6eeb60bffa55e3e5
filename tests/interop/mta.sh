#!/usr/bin/env bash
# Interop with a Debian MTA as the corporate server, set up the way its guide
# in deploy/guides/ says (the configuration blocks are taken from the guide
# itself), in front of pecgate and `pecgate sim`:
#
#   tests/interop/mta.sh exim        # exim4-daemon-light, deploy/guides/exim.md
#   tests/interop/mta.sh opensmtpd   # opensmtpd, deploy/guides/opensmtpd.md
#
# Both conflict with Postfix (all are Debian's mail-transport-agent), which
# the rest of the interop suite uses, so the MTA is installed into a
# throw-away root: this system seen through an overlay in a private mount
# namespace, every write (the package, its spool, config and log) in a
# temporary upper directory deleted at the end. tests/interop/MTA-root.sh
# runs there. The MTA is a private instance on loopback ports, started and
# stopped by PID; so are pecgate and the simulator.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MTA=${1:?usage: mta.sh exim|opensmtpd}
[[ -f "$HERE/$MTA-root.sh" ]] || { echo "mta.sh: no $HERE/$MTA-root.sh"; exit 2; }

need=()
command -v swaks >/dev/null 2>&1 || need+=(swaks)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build -q --manifest-path "$ROOT/Cargo.toml"
PECGATE="$ROOT/target/debug/pecgate"

T="$(mktemp -d /tmp/pecgate-$MTA.XXXXXX)"
chmod 755 "$T"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$T"; else echo "$MTA interop: state kept in $T"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
fail() { echo "$MTA interop FAIL: $*"; [[ -f "$T/pecgate.log" ]] && tail -20 "$T/pecgate.log"; exit 1; }

GW_PORT=$(free_port); SIM_PORT=$(free_port); ADMIN_PORT=$(free_port); EX_PORT=$(free_port); INJ_PORT=$(free_port)
printf 'exim-interop-%s\n' "$(head -c 9 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" >"$T/legal.password"
chmod 600 "$T/legal.password"
cat >"$T/pecgate.toml" <<TOML
[smtp]
listen = "127.0.0.1:$GW_PORT"
hostname = "pecgate.interop.test"
[store]
path = "state/pecgate.db"
spool_dir = "state/spool"
[control]
socket = "state/pecgate.sock"
[corporate]
host = "127.0.0.1"
port = $INJ_PORT
from = "pecgate@azienda.example"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[[mailbox]]
id = "legal"
address = "legal@pec.azienda.example"
username = "legal@pec.azienda.example"
password_file = "legal.password"
[mailbox.smtp]
host = "127.0.0.1"
port = $SIM_PORT
ca_file = "sim-ca.pem"
[[mailbox.user]]
address = "mario@azienda.example"
admin = true
[[mailbox.user]]
address = "mario.pec@azienda.example"
TOML
"$PECGATE" sim --config "$T/pecgate.toml" --out "$T/provider" >"$T/sim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s "$T/sim-ca.pem" ]] && grep -q 'simulated PEC provider' "$T/sim.log" && break; sleep 0.1; done
"$PECGATE" run --config "$T/pecgate.toml" >"$T/pecgate.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do grep -q 'pecgate started' "$T/pecgate.log" && break; sleep 0.1; done
grep -q 'pecgate started' "$T/pecgate.log" || fail "pecgate did not start"

# The guide's code blocks, one file each, for MTA-root.sh to pick from.
python3 - "$ROOT/deploy/guides/$MTA.md" "$T/guide" <<'PY'
import os, sys
os.makedirs(sys.argv[2])
blocks, cur = [], None
for line in open(sys.argv[1]).read().splitlines(keepends=True):
    if line.startswith("```"):
        if cur is None:
            cur = []
        else:
            blocks.append("".join(cur))
            cur = None
    elif cur is not None:
        cur.append(line)
for i, b in enumerate(blocks):
    open(os.path.join(sys.argv[2], "%02d" % i), "w").write(b)
PY
guide_block() { # the guide's code block whose first line is $1
  local f; for f in "$T"/guide/*; do [[ "$(head -1 "$f")" == "$1" ]] && { cat "$f"; return 0; }; done
  fail "deploy/guides/$MTA.md has no code block starting with: $1"
}
export -f guide_block
export T GW_PORT INJ_PORT EX_PORT

mkdir -p "$T/upper" "$T/work" "$T/root"
unshare --mount --propagation private bash "$HERE/$MTA-root.sh" "$T" "$EX_PORT" "$INJ_PORT"
want=$(cat "$T/expected")
count=$(find "$T/provider" -type f -name '*.eml' | wc -l)
[[ "$count" == "$want" ]] || fail "the provider got $count messages, want $want (the ones for pecgate)"
grep -q '^Subject: Interop via ' "$T/provider/000001.eml" || fail "tag not stripped: $(grep -i '^Subject:' "$T/provider/000001.eml")"
grep -q '^From: legal@pec.azienda.example' "$T/provider/000001.eml" || fail "From not rewritten"
if grep -qF "$(cat "$T/legal.password")" "$T/pecgate.log" "$T/sim.log"; then fail "password in a log"; fi
echo "$MTA interop: OK ($(cat "$T/summary"))"
