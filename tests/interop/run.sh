#!/usr/bin/env bash
# Interop: a real Postfix as the corporate MTA routes [PEC]-tagged mail to
# pecgate (header_checks FILTER), pecgate submits to `pecgate sim` over
# SMTPS+AUTH. Everything on 127.0.0.1; this script stops only what it started.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

need_install=()
command -v postfix >/dev/null 2>&1 || need_install+=(postfix)
command -v swaks >/dev/null 2>&1 || need_install+=(swaks)
command -v dovecot >/dev/null 2>&1 && [[ -e /usr/lib/dovecot/pop3 ]] || need_install+=(dovecot-core dovecot-pop3d)
[[ -e /usr/lib/dovecot/imap ]] || need_install+=(dovecot-imapd)
command -v openssl >/dev/null 2>&1 || need_install+=(openssl)
command -v promtool >/dev/null 2>&1 || need_install+=(prometheus)
[[ -x /usr/sbin/slapd ]] || need_install+=(slapd)
command -v ldapmodify >/dev/null 2>&1 || need_install+=(ldap-utils)
if ((${#need_install[@]})); then
  echo "interop: installing ${need_install[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  # slapd: no configured database of its own; tests/ldap.rs runs a private one.
  echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
  # Keep the packages' own daemons (system Postfix, Dovecot, Prometheus) from starting.
  made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_install[@]}" >/dev/null
  [[ "$made_policy" == 1 ]] && rm -f /usr/sbin/policy-rc.d
fi

cargo build -q --manifest-path "$ROOT/Cargo.toml"
PECGATE="$ROOT/target/debug/pecgate"

# Deployment assets: the alert rules load in Prometheus, the systemd unit verifies.
promtool check rules "$ROOT/deploy/prometheus/alerts.yml" >/dev/null || { promtool check rules "$ROOT/deploy/prometheus/alerts.yml"; echo "interop FAIL: alert rules"; exit 1; }
echo "interop: promtool check rules OK"
if command -v systemd-analyze >/dev/null 2>&1; then
  U="$(mktemp -d)"
  sed "s#/usr/local/bin/pecgate#$PECGATE#g" "$ROOT/deploy/pecgate.service" >"$U/pecgate.service"
  # --man=no: the unit names man:pecgate(1), installed only by the package (.ci/package verifies it there).
  systemd-analyze verify --man=no "$U/pecgate.service" || { rm -rf "$U"; echo "interop FAIL: systemd unit"; exit 1; }
  rm -rf "$U"
  echo "interop: systemd-analyze verify OK"
else
  echo "interop: systemd-analyze not available; unit not verified"
fi

T="$(mktemp -d /tmp/pecgate-interop.XXXXXX)"
chmod 755 "$T"
PIDS=()
PF_CONF="$T/postfix/conf"
DOVECOT_PID=""
source "$HERE/pg.sh"
cleanup() {
  pg_stop
  [[ -f "$PF_CONF/main.cf" ]] && postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
  [[ -n "$DOVECOT_PID" ]] && kill "$DOVECOT_PID" 2>/dev/null || true
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$T"; else echo "interop: state kept in $T"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 1 200); do
    python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$1)))" && return 0
    sleep 0.05
  done
  echo "interop: nothing listens on $1" >&2; return 1
}
wait_file() { # glob, timeout seconds
  for _ in $(seq 1 $(( $2 * 10 ))); do compgen -G "$1" >/dev/null && return 0; sleep 0.1; done
  return 1
}
fail() { echo "interop FAIL: $*"; [[ -f "$T/pecgate.log" ]] && tail -30 "$T/pecgate.log"; [[ -f "$T/postfix/maillog" ]] && tail -30 "$T/postfix/maillog"; exit 1; }

GW_PORT=$(free_port); SIM_PORT=$(free_port); PF_PORT=$(free_port); ADMIN_PORT=$(free_port)
PASSWORD="interop-$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
printf '%s\n' "$PASSWORD" >"$T/legal.password"; chmod 600 "$T/legal.password"

cat >"$T/pecgate.toml" <<TOML
[smtp]
listen = "127.0.0.1:$GW_PORT"
hostname = "pecgate.interop.test"
[store]
path = "state/pecgate.db"
spool_dir = "state/spool"
[corporate]
host = "127.0.0.1"
port = $PF_PORT
from = "pecgate@azienda.example"
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
[log]
level = "debug"
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
address = "mario.rossi@azienda.example"
admin = true
TOML

"$PECGATE" sim --config "$T/pecgate.toml" --out "$T/provider" >"$T/sim.log" 2>&1 &
PIDS+=($!)
wait_port "$SIM_PORT" || fail "the simulator did not start: $(tail -5 "$T/sim.log")"
"$PECGATE" check-config --config "$T/pecgate.toml" >"$T/check.out" 2>&1 || fail "check-config: $(cat "$T/check.out")"
"$PECGATE" run --config "$T/pecgate.toml" >"$T/pecgate.log" 2>&1 &
PIDS+=($!)
wait_port "$GW_PORT" || fail "pecgate did not start: $(tail -5 "$T/pecgate.log")"

# Private Postfix instance: the corporate MTA. Tagged mail goes to pecgate.
I="$T/postfix"
mkdir -p "$PF_CONF" "$I/queue" "$I/data"
chown root:root "$I/queue"; chown postfix:postfix "$I/data"
cat >"$PF_CONF/main.cf" <<CF
compatibility_level = 3.6
config_directory = $PF_CONF
queue_directory = $I/queue
data_directory = $I/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.azienda.example
mydomain = azienda.example
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
local_recipient_maps =
local_transport = error:local delivery disabled
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
biff = no
smtp_dns_support_level = disabled
# Everything that is not PEC goes nowhere in this test.
default_transport = discard:not PEC
# The routing rule a mail admin adds: subjects carrying the tag go to pecgate.
header_checks = regexp:$PF_CONF/header_checks
maillog_file_prefixes = $I
maillog_file = $I/maillog
syslog_name = postfix-pecgate-interop
CF
# The rule exactly as deploy/guides/postfix.md gives it (README too), with this run's port.
rule=$(grep -m1 '^/^Subject:' "$ROOT/deploy/guides/postfix.md")
[[ -n "$rule" ]] || fail "no header_checks rule in deploy/guides/postfix.md"
grep -qxF -- "$rule" "$ROOT/README.md" || fail "the README's header_checks rule differs from deploy/guides/postfix.md"
sed "s/:2525\$/:$GW_PORT/" <<<"$rule" >"$PF_CONF/header_checks"
# Every tag form of the grammar (README, PIN for sending) is routed; look-alikes are not.
for subject in "[PEC] Contratto" "[pec:legal] x" "[GPEC:hr] x" "Re: [PEC:legal:482913] Diffida" "[PEC:legal 482913] x" "[PEC 482913] x" "[PEC:482913] x"; do
  postmap -c "$PF_CONF" -q "Subject: $subject" "regexp:$PF_CONF/header_checks" >/dev/null || fail "the guide's header_checks rule does not route the tag in: $subject"
done
for subject in "PEC senza tag" "[PECX] x" "[PEC:legal:48 29] x" "[PEC-legal] x"; do
  if postmap -c "$PF_CONF" -q "Subject: $subject" "regexp:$PF_CONF/header_checks" >/dev/null; then fail "the guide's header_checks rule routes a subject without a tag: $subject"; fi
done
echo "interop: the guide's header_checks rule routes every tag form (with and without PIN) and no look-alike"
cat >"$PF_CONF/master.cf" <<CF
127.0.0.1:$PF_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
pecgate   unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
postfix -c "$PF_CONF" set-permissions >/dev/null 2>&1 || true
postfix -c "$PF_CONF" check || fail "postfix check"
postfix -c "$PF_CONF" start >/dev/null 2>&1 || fail "postfix start"
wait_port "$PF_PORT"

# 1. A tagged message from an allowed user reaches the provider, rewritten.
swaks --silent 2 --server 127.0.0.1 --port "$PF_PORT" --from mario.rossi@azienda.example --to ufficio@pec.fornitore.example \
  --header "Subject: [PEC] Interop contratto" --body "Riga uno
.riga con punto
Saluti" >"$T/swaks1.log" 2>&1 || fail "swaks 1: $(cat "$T/swaks1.log")"
wait_file "$T/provider/000001.eml" 60 || fail "nothing reached the simulated provider"
M="$T/provider/000001.eml"
grep -q '^X-Envelope-From: <legal@pec.azienda.example>' "$M" || fail "envelope sender not rewritten"
grep -q '^From: legal@pec.azienda.example' "$M" || fail "From not rewritten: $(grep -i '^From:' "$M")"
grep -q '^Subject: Interop contratto' "$M" || fail "tag not stripped: $(grep -i '^Subject:' "$M")"
grep -q '^X-TipoRicevuta: completa' "$M" || fail "X-TipoRicevuta missing"
grep -q '^\.riga con punto' "$M" || fail "dot line damaged"
echo "interop: tagged mail relayed through Postfix -> pecgate -> provider"

# 2. Untagged mail is not routed to pecgate.
swaks --silent 2 --server 127.0.0.1 --port "$PF_PORT" --from mario.rossi@azienda.example --to someone@example.org \
  --header "Subject: normale" >"$T/swaks2.log" 2>&1 || fail "swaks 2"

# 3. A Bcc is refused by pecgate with the precise reason, visible in Postfix's log.
swaks --silent 2 --server 127.0.0.1 --port "$PF_PORT" --from mario.rossi@azienda.example --to a@pec.fornitore.example,nascosto@pec.fornitore.example \
  --header "To: a@pec.fornitore.example" --header "Subject: [PEC] con bcc" >"$T/swaks3.log" 2>&1 || fail "swaks 3"
for _ in $(seq 1 300); do grep -q 'PEC does not allow Bcc' "$I/maillog" 2>/dev/null && break; sleep 0.1; done
grep -q '550 5.7.1 PEC does not allow Bcc: nascosto@pec.fornitore.example is not in To or Cc' "$I/maillog" || fail "Bcc refusal not seen in Postfix's log"
echo "interop: Bcc refused with: $(grep -o '550 5.7.1 PEC does not allow Bcc: [^ ]* is not in To or Cc' "$I/maillog" | head -1)"

# 4. A foreign sender is refused.
swaks --silent 2 --server 127.0.0.1 --port "$PF_PORT" --from estraneo@azienda.example --to a@pec.fornitore.example \
  --header "Subject: [PEC] estraneo" >"$T/swaks4.log" 2>&1 || fail "swaks 4"
for _ in $(seq 1 300); do grep -q 'not a user of any PEC mailbox' "$I/maillog" 2>/dev/null && break; sleep 0.1; done
grep -q 'estraneo@azienda.example is not a user of any PEC mailbox' "$I/maillog" || fail "foreign sender not refused"

# The untagged message is discarded by Postfix, never sent to pecgate.
for _ in $(seq 1 300); do grep -q 'to=<someone@example.org>.*status=sent (not PEC)' "$I/maillog" 2>/dev/null && break; sleep 0.1; done
grep -q 'to=<someone@example.org>.*status=sent (not PEC)' "$I/maillog" || fail "untagged mail was not discarded by Postfix"
count=$(find "$T/provider" -type f | wc -l)
[[ "$count" == 1 ]] || fail "provider got $count messages, want exactly 1"

# The password never appears in pecgate's debug log.
if grep -qF "$PASSWORD" "$T/pecgate.log" "$T/sim.log" "$T/check.out"; then fail "password found in a log"; fi
echo "interop: OK (1 delivered, Bcc and foreign sender refused, untagged not routed, no password in $(wc -l <"$T/pecgate.log") log lines)"

# ---------------------------------------------------------------------------
# Part 2: inbound. A real Dovecot serves the PEC mailbox over POP3S (a
# Maildir holding the golden fixtures, whose receipts refer to the message
# sent below); pecgate fetches, correlates and injects into Postfix, which
# delivers into per-user Maildirs.
# ---------------------------------------------------------------------------
POP_PORT=$(free_port); IMAP_PORT=$(free_port)
D="$T/dovecot"
mkdir -p "$D/run" "$T/mailstore/legal/new" "$T/mailstore/legal/cur" "$T/mailstore/legal/tmp" "$T/vmail"

# A private CA and a server certificate for 127.0.0.1 / localhost.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=pecgate interop CA" -keyout "$D/ca.key" -out "$D/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$D/server.key" -out "$D/server.csr" >/dev/null 2>&1
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$D/ext.cnf"
openssl x509 -req -in "$D/server.csr" -CA "$D/ca.pem" -CAkey "$D/ca.key" -CAcreateserial -days 2 -extfile "$D/ext.cnf" -out "$D/server.pem" >/dev/null 2>&1
chmod 600 "$D/server.key"

chown -R nobody:nogroup "$T/mailstore"
# The mailbox's provider password serves both SMTP (the simulator) and POP3 (Dovecot).
printf 'legal@pec.azienda.example:{PLAIN}%s\n' "$PASSWORD" >"$D/passwd"
chmod 640 "$D/passwd"; chgrp dovecot "$D/passwd" 2>/dev/null || true

cat >"$D/dovecot.conf" <<CONF
base_dir = $D/run
instance_name = pecgate-interop
protocols = pop3 imap
listen = 127.0.0.1
ssl = required
ssl_cert = <$D/server.pem
ssl_key = <$D/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain
log_path = $D/dovecot.log
mail_location = maildir:$T/mailstore/%n
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$T/mailstore/%n
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = $POP_PORT
    ssl = yes
  }
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = $IMAP_PORT
    ssl = yes
  }
}
pop3_uidl_format = %g
CONF
dovecot -F -c "$D/dovecot.conf" >"$D/dovecot.out" 2>&1 &
DOVECOT_PID=$!
wait_port "$POP_PORT" || fail "dovecot did not start: $(cat "$D/dovecot.out" "$D/dovecot.log" 2>/dev/null | tail -20)"

# Postfix delivers injected mail for @azienda.example into Maildirs.
cat >>"$PF_CONF/main.cf" <<CF
virtual_mailbox_domains = azienda.example
virtual_mailbox_base = $T/vmail
virtual_mailbox_maps = texthash:$PF_CONF/vmaps
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
nested_header_checks =
CF
printf 'mario.rossi@azienda.example azienda.example/mario.rossi/\npecgate@azienda.example azienda.example/pecgate/\n' >"$PF_CONF/vmaps"
echo "virtual   unix  -       n       n       -       -       virtual" >>"$PF_CONF/master.cf"
chown nobody:nogroup "$T/vmail"
postfix -c "$PF_CONF" reload >/dev/null 2>&1 || fail "postfix reload"

# A second pecgate: same outbound mailbox, now with POP3 from Dovecot, retention = delete.
# Another instance's configuration: the first one's, with its own SMTP and
# admin ports, state directory and control socket (the default socket,
# var/pecgate.sock next to the configuration, is the first instance's, and a
# second instance refuses to start there). Usage: other_instance GW ADMIN STATE FILE.
other_instance() {
  sed -e "s/listen = \"127.0.0.1:$GW_PORT\"/listen = \"127.0.0.1:$1\"/" \
      -e "s/listen = \"127.0.0.1:$ADMIN_PORT\"/listen = \"127.0.0.1:$2\"/" \
      -e "s#path = \"state/pecgate.db\"#path = \"$3/pecgate.db\"#" -e "s#spool_dir = \"state/spool\"#spool_dir = \"$3/spool\"#" \
      "$T/pecgate.toml" >"$4"
  printf '[control]\nsocket = "%s/pecgate.sock"\n' "$3" >>"$4"
}
GW2_PORT=$(free_port); ADMIN2_PORT=$(free_port)
other_instance "$GW2_PORT" "$ADMIN2_PORT" state2 "$T/pecgate-in.toml"
cat >>"$T/pecgate-in.toml" <<TOML
[mailbox.pop3]
host = "127.0.0.1"
port = $POP_PORT
ca_file = "dovecot/ca.pem"
interval_secs = 1
retention = "delete"
TOML
"$PECGATE" check-config --config "$T/pecgate-in.toml" >"$T/check2.out" 2>&1 || fail "check-config (inbound): $(cat "$T/check2.out")"
"$PECGATE" run --config "$T/pecgate-in.toml" >"$T/pecgate-in.log" 2>&1 &
PECGATE_IN_PID=$!
PIDS+=($!)
wait_port "$GW2_PORT" || fail "the inbound pecgate did not start: $(tail -5 "$T/pecgate-in.log")"
# The fixtures' receipts refer to Message-ID <interop-1@azienda.example>: send it first.
swaks --silent 2 --server 127.0.0.1 --port "$GW2_PORT" --from mario.rossi@azienda.example --to ufficio@pec.fornitore.example \
  --header "Subject: [PEC] Interop contratto" --header "Message-Id: <interop-1@azienda.example>" >"$T/swaks5.log" 2>&1 || fail "swaks 5: $(cat "$T/swaks5.log")"
wait_file "$T/provider/000002.eml" 60 || fail "the second message did not reach the provider"
for _ in $(seq 1 100); do grep -q 'status=sent' "$T/pecgate-in.log" && break; sleep 0.1; done
# Now the provider "answers": the fixtures appear in the POP3 mailbox.
i=0
for f in accettazione avvenuta-consegna posta-certificata anomalia; do
  i=$((i + 1))
  cp "$ROOT/tests/fixtures/pec/$f.eml" "$T/mailstore/legal/tmp/170000000$i.M$i.interop"
  chown nobody:nogroup "$T/mailstore/legal/tmp/170000000$i.M$i.interop"
  mv "$T/mailstore/legal/tmp/170000000$i.M$i.interop" "$T/mailstore/legal/new/"
done

# All four fixtures reach mario.rossi's Maildir through Postfix, unchanged below our headers.
MARIO_NEW="$T/vmail/azienda.example/mario.rossi/new"
count() { local n=0 f; for f in "$@"; do [[ -e "$f" ]] && n=$((n + 1)); done; echo "$n"; }
for _ in $(seq 1 600); do [[ $(count "$MARIO_NEW"/*) -ge 4 ]] && break; sleep 0.1; done
n=$(count "$MARIO_NEW"/*)
[[ "$n" -ge 4 ]] || { tail -20 "$T/pecgate-in.log"; fail "mario.rossi got $n of 4 injected messages"; }
for f in accettazione avvenuta-consegna posta-certificata anomalia; do
  file=$(grep -l "^X-Pecgate-Kind: $f\$" "$MARIO_NEW"/* | head -1)
  [[ -n "$file" ]] || fail "no injected $f"
  # Postfix stores LF line ends; compare the original below our X-Pecgate-* headers.
  python3 - "$file" "$ROOT/tests/fixtures/pec/$f.eml" <<'PY' || fail "$f was altered on the way"
import sys
got = open(sys.argv[1], 'rb').read().replace(b'\r\n', b'\n')
want = open(sys.argv[2], 'rb').read().replace(b'\r\n', b'\n')
marker = b'X-Pecgate-Id: '
i = got.index(marker)
body = got[got.index(b'\n', i) + 1:]
sys.exit(0 if body == want else 1)
PY
done
echo "interop: 4 PEC messages fetched from Dovecot POP3S and injected through Postfix byte-for-byte"

# Retention = delete: Dovecot's copies go only after the commit.
for _ in $(seq 1 300); do [[ $(count "$T/mailstore/legal/new"/* "$T/mailstore/legal/cur"/*) == 0 ]] && break; sleep 0.1; done
left=$(count "$T/mailstore/legal/new"/* "$T/mailstore/legal/cur"/*)
[[ "$left" == 0 ]] || fail "$left messages left in the POP3 mailbox with retention = delete"
grep -q 'kind=accettazione related=[0-9A-F]' "$T/pecgate-in.log" || fail "the acceptance was not correlated with the sent message"
grep -q 'kind=avvenuta-consegna related=[0-9A-F]' "$T/pecgate-in.log" || fail "the delivery receipt was not correlated"
if grep -qF "$PASSWORD" "$T/pecgate-in.log" "$D/dovecot.log"; then fail "password found in a log"; fi
echo "interop: inbound OK (receipts correlated, POP3 copies deleted after commit)"

# Part 2b: the same mailbox over IMAPS with IDLE (tests/interop/imap.sh).
source "$HERE/imap.sh"

# ---------------------------------------------------------------------------
# Part 3: PostgreSQL. The store contract runs against a private server (the
# same tests cargo test runs on SQLite), then two pecgate processes share it
# and one is killed with SIGKILL halfway through 500 messages.
# ---------------------------------------------------------------------------
pg_start "$T/pg"
PG_LOG="$T/pg-tests.log"
# The PostgreSQL tests are #[ignore]d in cargo test (no server there): --ignored runs just them.
if ! PECGATE_TEST_PG_URL="$PG_ADMIN_URL" \
  cargo test -q --manifest-path "$ROOT/Cargo.toml" --test store --test cluster -- --ignored --nocapture >"$PG_LOG" 2>&1; then
  tail -60 "$PG_LOG"
  fail "PostgreSQL tests"
fi
grep -E "^test result|^two instances" "$PG_LOG" | sed 's/^/interop: pg: /'
if grep -qF "$(cat "$PG_PASSWORD_FILE")" "$PG_LOG"; then fail "the PostgreSQL password is in the test output"; fi
echo "interop: PostgreSQL OK (store contract on both backends, two-instance failover)"

# ---------------------------------------------------------------------------
# Part 3b: LDAP. tests/ldap.rs starts a private slapd (StartTLS, own CA and
# data directory, stopped by PID): groups, nested groups, aliases, refresh,
# outage, AUTH by user bind.
# ---------------------------------------------------------------------------
LDAP_LOG="$T/ldap-tests.log"
if ! PECGATE_TEST_LOG=debug cargo test -q --manifest-path "$ROOT/Cargo.toml" --test ldap -- --ignored --skip measure --nocapture >"$LDAP_LOG" 2>&1; then
  tail -60 "$LDAP_LOG"
  fail "LDAP tests"
fi
grep -E "^test result" "$LDAP_LOG" | sed 's/^/interop: ldap: /'
# The service account's and the user's LDAP passwords (tests/ldap.rs), never logged.
if grep -n -F -e 'pw-LDAP-root-5e1b-never-log-me' -e 'pw-PAOLA-ldap-9c2d-never-log-me' "$LDAP_LOG"; then fail "an LDAP password is in the debug log"; fi
grep -q DEBUG "$LDAP_LOG" || fail "the LDAP debug log is empty, the password check proves nothing"
echo "interop: LDAP OK (private slapd)"

# ---------------------------------------------------------------------------
# Part 4: the admin page in a real browser (headless Chromium).
# ---------------------------------------------------------------------------
bash "$HERE/browser.sh"
