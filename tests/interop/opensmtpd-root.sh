#!/usr/bin/env bash
# Called by mta.sh opensmtpd in a private mount namespace: $1 the run's
# directory (upper, work, root, the guide's code blocks), $2 OpenSMTPD's port
# for users, $3 its port for what pecgate injects. Writes $1/expected
# (messages the provider should get) and $1/summary.
set -euo pipefail
T=$1 EX_PORT=$2 INJ_PORT=$3
R="$T/root"
SMTPD_PID=""
stop() { [[ -n "$SMTPD_PID" ]] && { kill "$SMTPD_PID" 2>/dev/null || true; wait "$SMTPD_PID" 2>/dev/null || true; }; }
trap stop EXIT
fail() { echo "opensmtpd interop FAIL: $*"; tail -30 "$T/smtpd.out" 2>/dev/null || true; exit 1; }
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$R"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/run"

# Install OpenSMTPD in the throw-away root; its own daemon must not start.
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"; chmod 755 "$R/usr/sbin/policy-rc.d"
t0=$(date +%s)
if ! in_root apt-get install -y -qq --no-install-recommends opensmtpd >"$T/apt.log" 2>&1; then
  in_root apt-get update -qq >>"$T/apt.log" 2>&1
  in_root apt-get install -y -qq --no-install-recommends opensmtpd >>"$T/apt.log" 2>&1 || { tail -20 "$T/apt.log"; fail "apt-get install opensmtpd"; }
fi
echo "opensmtpd interop: $(in_root dpkg-query -W -f='opensmtpd ${Version}' opensmtpd) installed in the throw-away root ($(( $(date +%s) - t0 ))s)"

# The guide's smtpd.conf (2a, route by sender), with this run's ports: its
# "listen on localhost" becomes the users' port and the injection port, and
# azienda.example is this host's domain ("for local" covers only the host name).
conf=$(guide_block "table aliases file:/etc/aliases")
[[ "$conf" == *"smtp://127.0.0.1:2525"* && "$conf" == *'match for local action "local"'* ]] || fail "the guide's smtpd.conf changed: $conf"
printf '%s\n' "$conf" | sed \
  -e "s#smtp://127.0.0.1:2525#smtp://127.0.0.1:$GW_PORT#" \
  -e "s#^listen on localhost\$#listen on 127.0.0.1 port $EX_PORT\nlisten on 127.0.0.1 port $INJ_PORT#" \
  -e 's#^match for local action "local"$#match for local action "local"\nmatch for domain "azienda.example" action "local"#' \
  >"$R/etc/smtpd.conf"
mkdir -p "$R/etc/smtpd"
echo mario.pec@azienda.example >"$R/etc/smtpd/pec-senders"
in_root id mario >/dev/null 2>&1 || in_root useradd -m mario
in_root smtpd -n -f /etc/smtpd.conf >"$T/smtpd-n.out" 2>&1 || { cat "$T/smtpd-n.out" "$R/etc/smtpd.conf"; fail "smtpd -n"; }

chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 smtpd -d -f /etc/smtpd.conf >"$T/smtpd.out" 2>&1 &
SMTPD_PID=$!
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$INJ_PORT)))" && break
  sleep 0.1
done

# 1. A PEC sender to a PEC address: the match rule gives it to pecgate.
swaks --silent 2 --server 127.0.0.1 --port "$EX_PORT" --from mario.pec@azienda.example --to ufficio@pec.fornitore.example \
  --header "Subject: [PEC] Interop via OpenSMTPD" >"$T/swaks1.log" 2>&1 || fail "swaks 1: $(cat "$T/swaks1.log")"
# 2. Another sender to the outside: the general relay rule (no network here), not pecgate.
swaks --silent 2 --server 127.0.0.1 --port "$EX_PORT" --from mario@azienda.example --to someone@example.org \
  --header "Subject: [PEC] not a PEC sender" >"$T/swaks2.log" 2>&1 || fail "swaks 2"
# 3. The PEC sender to a colleague: delivered locally.
swaks --silent 2 --server 127.0.0.1 --port "$EX_PORT" --from mario.pec@azienda.example --to mario@azienda.example \
  --header "Subject: per un collega" >"$T/swaks3.log" 2>&1 || fail "swaks 3"
# 4. What pecgate injects, with [PEC] in the subject: delivered locally.
swaks --silent 2 --server 127.0.0.1 --port "$INJ_PORT" --from pecgate@azienda.example --to mario@azienda.example \
  --header "Subject: POSTA CERTIFICATA: [PEC] in arrivo" >"$T/swaks4.log" 2>&1 || fail "swaks 4"

mbox="$R/var/mail/mario"
for _ in $(seq 1 300); do
  grep -q 'to=<ufficio@pec.fornitore.example>.*result="Ok"' "$T/smtpd.out" && grep -q 'in arrivo' "$mbox" 2>/dev/null && grep -q 'per un collega' "$mbox" 2>/dev/null && break
  sleep 0.1
done
line=$(grep 'to=<ufficio@pec.fornitore.example>.*result="Ok"' "$T/smtpd.out" | head -1 || true)
[[ -n "$line" ]] || fail "the PEC sender's mail was not relayed"
[[ "$line" == *"relay=\"127.0.0.1"* && "$line" == *'stat="250 2.0.0 queued as'* ]] || fail "not relayed to pecgate: $line"
grep -q 'per un collega' "$mbox" 2>/dev/null || fail "the PEC sender's mail to a colleague was not delivered locally"
grep -q 'in arrivo' "$mbox" 2>/dev/null || fail "the injected message was not delivered locally"
if grep 'someone@example.org' "$T/smtpd.out" | grep -q "127.0.0.1:$GW_PORT\|stat=\"250 2.0.0 queued as"; then fail "a non-PEC sender's mail went to pecgate"; fi
echo "opensmtpd interop: ${line#*mta delivery }"
echo 1 >"$T/expected"
echo "Debian's OpenSMTPD with the guide's smtpd.conf: the PEC sender's mail reached the provider through pecgate, other senders' did not, mail for local users (from the PEC sender, and what pecgate injects) delivered locally" >"$T/summary"
