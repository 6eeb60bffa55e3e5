#!/usr/bin/env bash
# Browser test of the admin page: `pecgate demo` (simulated provider, admin on
# 127.0.0.1 with the token it writes to admin.token), two messages sent with `pecgate send`, then
# Debian's chromium driven by playwright-core (never downloads a browser):
# search, detail with the recipient timeline, receipt download, mailboxes,
# queue, 390 px. Screenshots in target/browser/; the detail one is copied to
# docs/message-detail.png. Stops only the processes it started.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

need_install=()
[[ -x /usr/bin/chromium ]] || need_install+=(chromium)
command -v node >/dev/null 2>&1 || need_install+=(nodejs)
command -v npm >/dev/null 2>&1 || need_install+=(npm)
if ((${#need_install[@]})); then
  echo "browser: installing ${need_install[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep package daemons from starting.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null
  [[ "$made_policy" == 1 ]] && rm -f /usr/sbin/policy-rc.d
fi

T="$(mktemp -d /tmp/pecgate-browser.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$T"; else echo "browser: state kept in $T"; fi
}
trap cleanup EXIT
fail() { echo "browser FAIL: $*"; [[ -f "$T/demo.log" ]] && tail -n 30 "$T/demo.log"; exit 1; }

echo "browser: installing playwright-core into $T/pw"
mkdir -p "$T/pw"
(cd "$T/pw" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --silent --no-audit --no-fund --no-save playwright-core >/dev/null) || fail "npm install playwright-core"

cargo build -q --manifest-path "$ROOT/Cargo.toml"
PECGATE="$ROOT/target/debug/pecgate"

"$PECGATE" demo --dir "$T/demo" --port 0 >"$T/demo.log" 2>&1 &
PIDS+=($!)
ADMIN="" SMTP=""
for _ in $(seq 1 300); do
  ADMIN="$(sed -n 's#.*admin *http://\([0-9.:]*\)/healthz.*#\1#p' "$T/demo.log" | head -n1)"
  SMTP="$(sed -n 's#.*gateway SMTP listener *\([0-9.:]*\).*#\1#p' "$T/demo.log" | head -n1)"
  [[ -n "$ADMIN" && -n "$SMTP" ]] && break
  kill -0 "${PIDS[0]}" 2>/dev/null || fail "demo exited"
  sleep 0.1
done
[[ -n "$ADMIN" && -n "$SMTP" ]] || fail "demo did not print its addresses"
TOKEN_FILE="$(sed -n 's#.*admin token *\([^ ]*\) .*#\1#p' "$T/demo.log" | head -n1)"
[[ -n "$TOKEN_FILE" && -s "$TOKEN_FILE" ]] || fail "demo did not print its admin token file"
TOKEN="$(cat "$TOKEN_FILE")"
echo "browser: demo admin http://$ADMIN smtp $SMTP"

SENDER="$(sed -n 's#.* --from \([^ ]*\) --to \([^ ]*\) --subject.*#\1#p' "$T/demo.log" | head -n1)"
RCPT="$(sed -n 's#.* --from \([^ ]*\) --to \([^ ]*\) --subject.*#\2#p' "$T/demo.log" | head -n1)"
[[ -n "$SENDER" && -n "$RCPT" ]] || fail "demo did not print a send line"
SUBJECT="Contratto di fornitura $$"
"$PECGATE" send --server "$SMTP" --from "$SENDER" --to "$RCPT" --subject "[PEC] $SUBJECT" >>"$T/send.log" 2>&1 || fail "send: $(cat "$T/send.log")"
"$PECGATE" send --server "$SMTP" --from "$SENDER" --to "errore-ufficio@pec.destinatario.example" --subject "[PEC] Diffida <urgente> & riservata" >>"$T/send.log" 2>&1 || fail "send: $(cat "$T/send.log")"

mkdir -p "$ROOT/target/browser" "$ROOT/docs"
ADMIN="http://$ADMIN" OUT="$ROOT/target/browser" DOCS_PNG="$ROOT/docs/message-detail.png" SUBJECT="$SUBJECT" TOKEN="$TOKEN" \
  NODE_PATH="$T/pw/node_modules" node "$ROOT/tests/browser/admin.cjs" || fail "browser checks"
echo "browser: OK (screenshots in target/browser/, docs/message-detail.png)"
