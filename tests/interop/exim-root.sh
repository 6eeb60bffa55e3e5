#!/usr/bin/env bash
# Called by mta.sh exim in a private mount namespace: $1 the run's directory
# (upper, work, root, the guide's code blocks), $2 Exim's port for users, $3
# its port for what pecgate injects. Writes $1/expected (messages the
# provider should get) and $1/summary.
set -euo pipefail
T=$1 EX_PORT=$2 INJ_PORT=$3
R="$T/root"
EXIM_PID=""
stop() { [[ -n "$EXIM_PID" ]] && { kill "$EXIM_PID" 2>/dev/null || true; wait "$EXIM_PID" 2>/dev/null || true; }; }
trap stop EXIT
fail() { echo "exim interop FAIL: $*"; tail -20 "$R/var/log/exim4/mainlog" 2>/dev/null || true; tail -20 "$R/var/log/exim4/paniclog" 2>/dev/null || true; exit 1; }
in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

mount -t overlay overlay -o "lowerdir=/,upperdir=$T/upper,workdir=$T/work" "$R"
mount --rbind /dev "$R/dev"
mount -t proc proc "$R/proc"
mount -t tmpfs tmpfs "$R/run"

# Install Exim in the throw-away root; its own daemon must not start.
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"; chmod 755 "$R/usr/sbin/policy-rc.d"
t0=$(date +%s)
if ! in_root apt-get install -y -qq --no-install-recommends exim4-daemon-light >"$T/apt.log" 2>&1; then
  in_root apt-get update -qq >>"$T/apt.log" 2>&1
  in_root apt-get install -y -qq --no-install-recommends exim4-daemon-light >>"$T/apt.log" 2>&1 || { tail -20 "$T/apt.log"; fail "apt-get install exim4-daemon-light"; }
fi
echo "exim interop: $(in_root exim4 -bV | head -1) installed in the throw-away root ($(( $(date +%s) - t0 ))s)"

# Debian's own configuration system, set as the guide says: split
# configuration, the router and the transport, a port of its own for pecgate.
cat >"$R/etc/exim4/update-exim4.conf.conf" <<CONF
dc_eximconfig_configtype='internet'
dc_other_hostnames='azienda.example'
dc_local_interfaces='127.0.0.1.$EX_PORT ; 127.0.0.1.$INJ_PORT'
dc_readhost=''
dc_relay_domains=''
dc_minimaldns='true'
dc_relay_nets=''
dc_smarthost=''
CFILEMODE='644'
dc_use_split_config='true'
dc_hide_mailname=''
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
CONF
echo mx.azienda.example >"$R/etc/mailname"
# The router and transport exactly as the guide writes them, with this run's ports.
router=$(guide_block "pecgate:")
[[ "$router" == *"127.0.0.1::2525"* && "$router" == *"{10026}"* ]] || fail "the guide's router changed: $router"
printf '%s\n' "$router" | sed "s/::2525/::$GW_PORT/; s/{10026}/{$INJ_PORT}/" >"$R/etc/exim4/conf.d/router/160_local_pecgate"
guide_block "pecgate_smtp:" >"$R/etc/exim4/conf.d/transport/30_local_pecgate"
grep -q "{$INJ_PORT}" "$R/etc/exim4/conf.d/router/160_local_pecgate" || fail "port substitution"
in_root update-exim4.conf || fail "update-exim4.conf"
in_root exim4 -bP router pecgate | grep -q 'driver = manualroute' || fail "exim4 -bP router pecgate"
in_root exim4 -bP transport pecgate_smtp | grep -q 'allow_localhost' || fail "exim4 -bP transport pecgate_smtp"
in_root id mario >/dev/null 2>&1 || in_root useradd -m mario

chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 exim4 -bdf -q5s >"$T/exim.out" 2>&1 &
EXIM_PID=$!
for _ in $(seq 1 100); do
  python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$INJ_PORT)))" && break
  sleep 0.1
done
log="$R/var/log/exim4/mainlog"

# 1. Tagged mail to a PEC address: Exim's router gives it to pecgate.
swaks --silent 2 --server 127.0.0.1 --port "$EX_PORT" --from mario@azienda.example --to ufficio@pec.fornitore.example \
  --header "Subject: [PEC] Interop via Exim" >"$T/swaks1.log" 2>&1 || fail "swaks 1: $(cat "$T/swaks1.log")"
# 2. Untagged mail: not for pecgate (Exim tries DNS for it; no network here).
swaks --silent 2 --server 127.0.0.1 --port "$EX_PORT" --from mario@azienda.example --to someone@example.org \
  --header "Subject: normale" >"$T/swaks2.log" 2>&1 || fail "swaks 2"
# 3. A lower-case tag to a local user: the whole message goes to pecgate too.
swaks --silent 2 --server 127.0.0.1 --port "$EX_PORT" --from mario@azienda.example --to mario@azienda.example \
  --header "Subject: [pec:legal] a colleague" >"$T/swaks3.log" 2>&1 || fail "swaks 3"
# 4. What pecgate injects, with [PEC] in the subject: delivered locally, not routed back.
swaks --silent 2 --server 127.0.0.1 --port "$INJ_PORT" --from pecgate@azienda.example --to mario@azienda.example \
  --header "Subject: POSTA CERTIFICATA: [PEC] in arrivo" >"$T/swaks4.log" 2>&1 || fail "swaks 4"

for _ in $(seq 1 300); do [[ $(grep -c 'R=pecgate T=pecgate_smtp' "$log" 2>/dev/null) -ge 2 ]] && grep -q 'in arrivo' "$R/var/mail/mario" 2>/dev/null && break; sleep 0.1; done
grep -q '=> ufficio@pec.fornitore.example R=pecgate T=pecgate_smtp H=127.0.0.1 \[127.0.0.1\]' "$log" || fail "tagged mail not delivered by R=pecgate"
grep 'R=pecgate' "$log" | grep -q 'C="250 ' || fail "no 250 from pecgate in Exim's log"
grep -q '=> mario@azienda.example R=pecgate T=pecgate_smtp' "$log" || fail "lower-case tag to a local user not routed to pecgate"
grep -q 'in arrivo' "$R/var/mail/mario" || fail "the injected message was not delivered to /var/mail/mario"
if grep 'someone@example.org' "$log" | grep -q 'R=pecgate'; then fail "untagged mail went to pecgate"; fi
echo "exim interop: $(grep -m1 '=> ufficio@pec.fornitore.example' "$log" | cut -d' ' -f4-)"
echo 2 >"$T/expected"
echo "Debian's Exim with the guide's router and transport: tagged mail reached the provider through pecgate, a lower-case tag to a local user too, untagged did not, [PEC] on the injection port delivered locally" >"$T/summary"
