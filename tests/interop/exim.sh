#!/usr/bin/env bash
# Interop: Debian's Exim (exim4-daemon-light) as the corporate MTA, set up
# the way deploy/guides/exim.md says (its router and transport blocks are
# taken from the guide itself), relays [PEC]-tagged mail to pecgate, which
# submits it to `pecgate sim`; what arrives on Exim's port for pecgate is
# delivered locally even with [PEC] in the subject (no loop).
#
# Exim conflicts with Postfix (both are Debian's mail-transport-agent), which
# the rest of the interop suite uses, so it is installed into a throw-away
# root: this system seen through an overlay in a private mount namespace,
# every write (the package, its spool, config and log) in a temporary upper
# directory deleted at the end. The Exim daemon is a private instance on
# loopback ports, started and stopped by PID; so are pecgate and the simulator.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

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

T="$(mktemp -d /tmp/pecgate-exim.XXXXXX)"
chmod 755 "$T"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$T"; else echo "exim interop: state kept in $T"; fi
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
fail() { echo "exim interop FAIL: $*"; [[ -f "$T/pecgate.log" ]] && tail -20 "$T/pecgate.log"; exit 1; }

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
TOML
"$PECGATE" sim --config "$T/pecgate.toml" --out "$T/provider" >"$T/sim.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [[ -s "$T/sim-ca.pem" ]] && grep -q 'simulated PEC provider' "$T/sim.log" && break; sleep 0.1; done
"$PECGATE" run --config "$T/pecgate.toml" >"$T/pecgate.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 200); do grep -q 'pecgate started' "$T/pecgate.log" && break; sleep 0.1; done
grep -q 'pecgate started' "$T/pecgate.log" || fail "pecgate did not start"

# The router and transport exactly as the guide writes them, with this run's ports.
python3 - "$ROOT/deploy/guides/exim.md" "$T" "$GW_PORT" "$INJ_PORT" <<'PY'
import sys
text = open(sys.argv[1]).read()
blocks, cur = [], None
for line in text.splitlines(keepends=True):
    if line.startswith("```"):
        if cur is None:
            cur = []
        else:
            blocks.append("".join(cur))
            cur = None
    elif cur is not None:
        cur.append(line)
router = next(b for b in blocks if b.startswith("pecgate:\n"))
transport = next(b for b in blocks if b.startswith("pecgate_smtp:\n"))
assert "127.0.0.1::2525" in router and "{10026}" in router, router
open(sys.argv[2] + "/160_local_pecgate", "w").write(router.replace("::2525", "::" + sys.argv[3]).replace("{10026}", "{%s}" % sys.argv[4]))
open(sys.argv[2] + "/30_local_pecgate", "w").write(transport)
PY

mkdir -p "$T/upper" "$T/work" "$T/root"
unshare --mount --propagation private bash "$HERE/exim-root.sh" "$T" "$EX_PORT" "$INJ_PORT"
count=$(find "$T/provider" -type f -name '*.eml' | wc -l)
[[ "$count" == 2 ]] || fail "the provider got $count messages, want 2 (the tagged ones)"
grep -q '^Subject: Interop via Exim' "$T/provider/000001.eml" || fail "tag not stripped: $(grep -i '^Subject:' "$T/provider/000001.eml")"
grep -q '^From: legal@pec.azienda.example' "$T/provider/000001.eml" || fail "From not rewritten"
if grep -qF "$(cat "$T/legal.password")" "$T/pecgate.log" "$T/sim.log"; then fail "password in a log"; fi
echo "exim interop: OK (Debian's Exim with the guide's router and transport: tagged mail reached the provider through pecgate, untagged did not, [PEC] on the injection port delivered locally)"
