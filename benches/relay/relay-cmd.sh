#!/usr/bin/env bash
# RELAY_CMD for ../shared/bench/compare.sh: writes a pecgate config for the
# harness (listen on $RELAY_PORT, one mailbox whose provider is the harness's
# TLS upstream at 127.0.0.1:$UP_TLS_PORT trusted through $UPSTREAM_CERT,
# rate limit off, SQLite store under $RELAY_STATE_DIR, or PostgreSQL when
# PECGATE_PG_URL and PECGATE_PG_PASSWORD_FILE are set) and execs pecgate in
# the foreground so compare.sh's PID is pecgate's.
set -euo pipefail
: "${RELAY_PORT:?}" "${UP_TLS_PORT:?}" "${UPSTREAM_CERT:?}" "${RELAY_STATE_DIR:?}" "${PECGATE_BIN:?}"
S="$RELAY_STATE_DIR"
printf 'bench-password\n' >"$S/mailbox.password"
chmod 600 "$S/mailbox.password"
cat >"$S/pecgate.toml" <<TOML
[smtp]
listen = "127.0.0.1:$RELAY_PORT"
hostname = "pecgate.bench.invalid"
max_sessions = 200
[store]
$(if [[ -n "${PECGATE_PG_URL:-}" ]]; then
  printf 'backend = "postgres"\nurl = "%s"\npassword_file = "%s"\n' "$PECGATE_PG_URL" "$PECGATE_PG_PASSWORD_FILE"
else
  printf 'path = "%s/pecgate.db"\n' "$S"
fi)
spool_dir = "$S/spool"
[admin]
listen = "127.0.0.1:0"
[corporate]
host = "127.0.0.1"
port = 9
from = "pecgate@bench.invalid"
[log]
level = "warn"
[[mailbox]]
id = "bench"
address = "pec-user@example.it"
username = "pec-user@example.it"
password_file = "$S/mailbox.password"
rate_limit_per_minute = 0
max_recipients = 50
[mailbox.smtp]
host = "127.0.0.1"
port = $UP_TLS_PORT
security = "tls"
ca_file = "$UPSTREAM_CERT"
max_connections = ${PECGATE_CONNECTIONS:-20}
# smtp-source and the harness send from sender@example.it to dest@example.it.
[[mailbox.user]]
address = "sender@example.it"
admin = true
TOML
exec "$PECGATE_BIN" run --config "$S/pecgate.toml"
