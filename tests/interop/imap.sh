# Part 2b of run.sh (sourced, after the POP3 part): the same Dovecot serves
# the mailbox over IMAPS, and a third pecgate fetches it with IDLE and a poll
# interval of an hour, so only IDLE can explain a prompt arrival. Messages are
# delivered with `doveadm save` (Dovecot's own delivery, not files written
# behind its back); the time from the save to the injected copy in
# mario.rossi's Maildir is measured for 20 messages. Then the same instance,
# restarted with other settings: the golden fixtures with retention leave +
# move_to, a UIDVALIDITY reset (doveadm mailbox update), retention delete
# while Postfix defers, and Dovecot reloaded without IDLE (polling).

# The POP3 instance (retention = delete) would take the messages first.
kill "$PECGATE_IN_PID" 2>/dev/null || true
wait "$PECGATE_IN_PID" 2>/dev/null || true

GW3_PORT=$(free_port); ADMIN3_PORT=$(free_port)
PEC_USER=legal@pec.azienda.example
dv() { doveadm -c "$D/dovecot.conf" "$@"; }
# The injected copy $1 is the original $2 byte-for-byte below pecgate's X-Pecgate-* headers (Postfix stores LF line ends).
intact() {
  python3 - "$1" "$2" <<'PY'
import sys
got = open(sys.argv[1], 'rb').read().replace(b'\r\n', b'\n')
want = open(sys.argv[2], 'rb').read().replace(b'\r\n', b'\n')
i = got.index(b'X-Pecgate-Id: ')
sys.exit(0 if got[got.index(b'\n', i) + 1:] == want else 1)
PY
}
# The third instance's configuration: [mailbox.imap] with the lines given
# (retention, move_to, interval ...), then any further TOML tables. Every
# phase below keeps the same state directory, so what was fetched stays known.
imap_config() {
  other_instance "$GW3_PORT" "$ADMIN3_PORT" state3 "$T/pecgate-imap.toml"
  printf '[mailbox.imap]\nhost = "127.0.0.1"\nport = %s\nca_file = "dovecot/ca.pem"\n%s\n%s\n' "$IMAP_PORT" "$1" "${2:-}" >>"$T/pecgate-imap.toml"
  "$PECGATE" check-config --config "$T/pecgate-imap.toml" >"$T/check3.out" 2>&1 || fail "check-config (imap): $(cat "$T/check3.out")"
}
# Stops the third instance (by its PID) and starts it again with the
# configuration written last; waits until its fetcher reports mode $1.
imap_restart() {
  kill "$IMAP_PID"; wait "$IMAP_PID" 2>/dev/null || true
  "$PECGATE" run --config "$T/pecgate-imap.toml" >>"$T/pecgate-imap.log" 2>&1 &
  IMAP_PID=$!
  PIDS+=($!)
  wait_port "$GW3_PORT" || fail "the IMAP pecgate did not restart: $(tail -5 "$T/pecgate-imap.log")"
  for _ in $(seq 1 200); do curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz" | grep -q "$1" && break; sleep 0.05; done
  curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz" | grep -q "$1" || fail "the restarted IMAP fetcher is not $1: $(curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz")"
}
imap_config $'idle = true\ninterval_secs = 3600\nretention = "leave"'
"$PECGATE" test-mailbox --config "$T/pecgate-imap.toml" --mailbox legal >"$T/test-mailbox.out" 2>&1 || fail "test-mailbox (imap): $(cat "$T/test-mailbox.out")"
grep -q "IDLE, UIDPLUS and MOVE offered" "$T/test-mailbox.out" || fail "test-mailbox does not report IDLE, UIDPLUS and MOVE: $(cat "$T/test-mailbox.out")"
"$PECGATE" run --config "$T/pecgate-imap.toml" >"$T/pecgate-imap.log" 2>&1 &
IMAP_PID=$!
PIDS+=($!)
wait_port "$GW3_PORT" || fail "the IMAP pecgate did not start: $(tail -5 "$T/pecgate-imap.log")"
for _ in $(seq 1 200); do grep -q '"mode":"idling"\|"mode": "idling"' <(curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz" 2>/dev/null || true) && break; sleep 0.05; done
curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz" | grep -q 'idling' || fail "the IMAP fetcher is not idling: $(curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz")"

# Mario also gets notices (the fixtures' signatures are placeholders), so
# each message is looked for by its own Message-ID.
arrived() { grep -l -F "Message-ID: <imap-$1-" "$MARIO_NEW"/* 2>/dev/null | head -1 || true; }
fetched() { grep -l -F "Message-ID: <imap-" "$MARIO_NEW"/* 2>/dev/null | wc -l; }
LAT="$T/imap-latency.txt"
: >"$LAT"
for i in $(seq 1 20); do
  # A distinct message each time (its own Message-ID), else the store would rightly see a duplicate.
  sed "0,/^Message-ID: </s//Message-ID: <imap-$i-/" "$ROOT/tests/fixtures/pec/posta-certificata.eml" >"$T/imap-$i.eml"
  t0=$(date +%s%N)
  dv save -u "$PEC_USER" <"$T/imap-$i.eml" || fail "doveadm save $i"
  file=""
  for _ in $(seq 1 3000); do
    file=$(arrived "$i")
    [[ -n "$file" ]] && break
    sleep 0.01
  done
  [[ -n "$file" ]] || { tail -30 "$T/pecgate-imap.log"; fail "IMAP message $i was not injected within 30 s"; }
  echo $(( ($(date +%s%N) - t0) / 1000000 )) >>"$LAT"
done
read -r p50 max < <(sort -n "$LAT" | awk '{v[NR]=$1} END {print v[int((NR+1)/2)], v[NR]}')
echo "interop: imap: 20 messages saved by doveadm reached the corporate Maildir by IDLE: p50 ${p50} ms, max ${max} ms (poll interval 3600 s; the POP3 instance polled every 1 s)"

# Byte-for-byte: the last one, below pecgate's X-Pecgate-* headers.
file=$(arrived 20)
[[ $(fetched) == 20 ]] || fail "$(fetched) IMAP messages injected, want 20 (each once)"
intact "$file" "$T/imap-20.eml" || fail "an IMAP-fetched message was altered on the way"

# retention = "leave": every message is still in the folder, and flagged
# \Seen once the corporate server has taken it. A message whose injection
# was still queued when its poll ended is flagged at the next wake-up (new
# mail, or here the restart's first poll below), never before.
inbox() { dv search -u "$PEC_USER" mailbox INBOX "$1" | wc -l; }
for _ in $(seq 1 50); do [[ $(inbox SEEN) -ge 19 ]] && break; sleep 0.1; done
seen=$(inbox SEEN); all=$(inbox ALL)
[[ "$all" == 20 && "$seen" -ge 19 ]] || fail "retention leave: $all messages in INBOX, $seen seen (want 20, and 19 or 20)"

# A restart fetches nothing twice.
imap_restart idling
# The restarted fetcher listed the folder before it idles: nothing fetched
# again, and the last message is flagged now.
[[ $(fetched) == 20 ]] || fail "a restart injected IMAP messages again: $(fetched)"
for _ in $(seq 1 100); do [[ $(inbox SEEN) == 20 ]] && break; sleep 0.1; done
[[ $(inbox SEEN) == 20 && $(inbox ALL) == 20 ]] || fail "after the restart: $(inbox ALL) in INBOX, $(inbox SEEN) seen (want 20 and 20)"
if grep -qF "$PASSWORD" "$T/pecgate-imap.log" "$D/dovecot.log"; then fail "password found in a log"; fi
echo "interop: imap OK (IDLE, byte-for-byte, retention leave with \\Seen, no refetch after a restart)"

# ---------------------------------------------------------------------------
# The same instance (same state directory, so what it fetched stays known)
# restarted with other retention settings, and Dovecot without IDLE.
# ---------------------------------------------------------------------------
# Files delivered to mario.rossi since a snapshot taken with `snap FILE`.
snap() { ls "$MARIO_NEW" | sort >"$1"; }
since() { comm -13 "$1" <(ls "$MARIO_NEW" | sort) | sed "s#^#$MARIO_NEW/#"; }
# The injected copy of kind $2 among the files since snapshot $1 (with $3: holding that fixed string too).
injected() { local f; for f in $(since "$1"); do grep -q "^X-Pecgate-Kind: $2\$" "$f" && grep -qF -- "${3:-}" "$f" && echo "$f"; done; true; }
in_folder() { dv search -u "$PEC_USER" mailbox "$1" "${2:-ALL}" "${@:3}" | wc -l; }
messages() { dv mailbox status -u "$PEC_USER" messages "$1" | sed 's/.*messages=//'; }
# Sends a PEC message through the third instance and waits until the simulated provider accepted it.
send_via_imap_instance() {
  local before
  before=$(grep -c 'to=ufficio@pec.fornitore.example status=sent' "$T/pecgate-imap.log" || true)
  swaks --silent 2 --server 127.0.0.1 --port "$GW3_PORT" --from mario.rossi@azienda.example --to ufficio@pec.fornitore.example \
    --header "Subject: [PEC] Interop contratto" --header "Message-Id: <$1>" >"$T/swaks-$1.log" 2>&1 || fail "swaks ($1): $(cat "$T/swaks-$1.log")"
  for _ in $(seq 1 300); do
    [[ $(grep -c 'to=ufficio@pec.fornitore.example status=sent' "$T/pecgate-imap.log") -gt "$before" ]] && return 0
    sleep 0.1
  done
  fail "$1, sent through the IMAP instance, was not accepted by the simulated provider within 30 s"
}

# 1 + 2a. retention = "leave" with move_to, and the golden fixtures. The
# target folder exists (pecgate does not create folders); Dovecot's Maildir++
# layout separates levels with ".".
MOVE_TO=INBOX.pecgate
dv mailbox create -u "$PEC_USER" "$MOVE_TO" || fail "doveadm mailbox create $MOVE_TO"
imap_config $'idle = true\ninterval_secs = 3600\nretention = "leave"\nmove_to = "'"$MOVE_TO"'"'
imap_restart idling
# The restart's first poll moves the 20 messages already injected, fetching none again.
for _ in $(seq 1 100); do [[ $(in_folder INBOX) == 0 && $(in_folder "$MOVE_TO") == 20 ]] && break; sleep 0.1; done
[[ $(in_folder INBOX) == 0 && $(in_folder "$MOVE_TO") == 20 ]] || fail "move_to: $(in_folder INBOX) left in INBOX, $(in_folder "$MOVE_TO") in $MOVE_TO after the restart (want 0 and 20)"
[[ $(fetched) == 20 ]] || fail "move_to: the restart injected messages already injected again ($(fetched) copies of 20)"
# The receipts among the fixtures refer to <interop-1@azienda.example>: sent through this instance too.
send_via_imap_instance interop-1@azienda.example
SNAP="$T/mario-before-fixtures"
snap "$SNAP"
FIXTURES=(accettazione avvenuta-consegna posta-certificata anomalia)
for f in "${FIXTURES[@]}"; do dv save -u "$PEC_USER" <"$ROOT/tests/fixtures/pec/$f.eml" || fail "doveadm save $f.eml"; done
for _ in $(seq 1 300); do
  n=0; for f in "${FIXTURES[@]}"; do [[ -n $(injected "$SNAP" "$f") ]] && n=$((n + 1)); done
  [[ "$n" == 4 ]] && break; sleep 0.1
done
for f in "${FIXTURES[@]}"; do
  copies=$(injected "$SNAP" "$f" | wc -l)
  [[ "$copies" == 1 ]] || { tail -20 "$T/pecgate-imap.log"; fail "the golden fixture $f.eml, saved into INBOX, was injected $copies times over IMAP (want 1)"; }
  intact "$(injected "$SNAP" "$f")" "$ROOT/tests/fixtures/pec/$f.eml" || fail "the golden fixture $f.eml was altered on its way over IMAP"
done
grep -q 'kind=accettazione related=[0-9A-F]' "$T/pecgate-imap.log" || fail "the acceptance fetched over IMAP was not correlated with interop-1"
grep -q 'kind=avvenuta-consegna related=[0-9A-F]' "$T/pecgate-imap.log" || fail "the delivery receipt fetched over IMAP was not correlated with interop-1"
# Moved once injected: each message only in the target folder.
for _ in $(seq 1 150); do [[ $(in_folder INBOX) == 0 && $(in_folder "$MOVE_TO") == 24 ]] && break; sleep 0.1; done
[[ $(in_folder INBOX) == 0 && $(in_folder "$MOVE_TO") == 24 ]] || fail "move_to: $(in_folder INBOX) in INBOX, $(in_folder "$MOVE_TO") in $MOVE_TO after the fixtures' injection (want 0 and 24)"
# The fixtures' Message-ID (<opec210...>; the 20 above carry <imap-N-opec210...>).
[[ $(in_folder "$MOVE_TO" HEADER Message-ID "<opec210.") == 4 && $(in_folder INBOX HEADER Message-ID "<opec210.") == 0 ]] ||
  fail "move_to: the fixtures are $(in_folder "$MOVE_TO" HEADER Message-ID "<opec210.") times in $MOVE_TO, $(in_folder INBOX HEADER Message-ID "<opec210.") in INBOX (want 4 and 0)"
echo "interop: imap: the 4 golden fixtures saved by doveadm were injected once each, byte-for-byte below X-Pecgate-* (receipts correlated); retention leave + move_to: all 24 only in $MOVE_TO, INBOX empty"

# 3. A UIDVALIDITY reset re-lists the folder under new ids; what was injected
# is not injected again. The store recognises receipts of a message it sent
# (same provider identifier, same kind), so the folder holds two fresh
# receipts for a message sent through this instance; retention leave, no move.
imap_config $'idle = true\ninterval_secs = 3600\nretention = "leave"'
imap_restart idling
send_via_imap_instance interop-2@azienda.example
for f in accettazione avvenuta-consegna; do
  # The fixture, referring to interop-2 instead of interop-1 (header and daticert.xml).
  python3 - "$ROOT/tests/fixtures/pec/$f.eml" "$T/uv-$f.eml" <<'PY' || fail "cannot rewrite $f.eml for interop-2"
import base64, re, sys
raw = open(sys.argv[1], 'rb').read()
old, new = b'interop-1@azienda.example', b'interop-2@azienda.example'
def daticert(m):
    xml = base64.b64decode(m.group(2))
    assert old in xml
    return m.group(1) + base64.encodebytes(xml.replace(old, new)).replace(b'\n', b'\r\n')
out, n = re.subn(rb'(filename="daticert.xml"\r\n\r\n)([A-Za-z0-9+/=\r\n]+?\r\n)(?=\r\n)', daticert, raw)
assert n == 1 and raw.count(old) == 1
open(sys.argv[2], 'wb').write(out.replace(old, new))
PY
done
SNAP="$T/mario-before-uv"
snap "$SNAP"
for f in accettazione avvenuta-consegna; do dv save -u "$PEC_USER" <"$T/uv-$f.eml" || fail "doveadm save uv-$f.eml"; done
# One injected copy of each receipt of interop-2.
uv_copies() { injected "$SNAP" "$1" 'X-Riferimento-Message-ID: <interop-2@azienda.example>' | wc -l; }
for _ in $(seq 1 300); do [[ $(uv_copies accettazione) == 1 && $(uv_copies avvenuta-consegna) == 1 ]] && break; sleep 0.1; done
[[ $(uv_copies accettazione) == 1 && $(uv_copies avvenuta-consegna) == 1 ]] ||
  fail "the receipts of interop-2 saved into INBOX were injected $(uv_copies accettazione) and $(uv_copies avvenuta-consegna) times (want 1 and 1)"
# Both committed (flagged \Seen) before the reset.
for _ in $(seq 1 100); do [[ $(in_folder INBOX SEEN) == 2 ]] && break; sleep 0.1; done
[[ $(in_folder INBOX SEEN) == 2 && $(in_folder INBOX) == 2 ]] || fail "before the UIDVALIDITY reset: $(in_folder INBOX) in INBOX, $(in_folder INBOX SEEN) seen (want 2 and 2)"
uv_old=$(dv mailbox status -u "$PEC_USER" uidvalidity INBOX | sed 's/.*uidvalidity=//')
dups_before=$(grep -c 'duplicate receipt: recorded, not delivered again' "$T/pecgate-imap.log" || true)
# While pecgate idles on INBOX.
dv mailbox update -u "$PEC_USER" --uid-validity $((uv_old + 1)) INBOX || fail "doveadm mailbox update --uid-validity"
uv_new=$(dv mailbox status -u "$PEC_USER" uidvalidity INBOX | sed 's/.*uidvalidity=//')
[[ "$uv_new" == $((uv_old + 1)) ]] || fail "doveadm did not reset INBOX's UIDVALIDITY ($uv_old, now $uv_new)"
# A new message after the reset: it is injected, the two re-listed receipts are not.
sed "0,/^Message-ID: </s//Message-ID: <uv-1-/" "$ROOT/tests/fixtures/pec/posta-certificata.eml" >"$T/uv-1.eml"
dv save -u "$PEC_USER" <"$T/uv-1.eml" || fail "doveadm save uv-1"
uv1() { grep -l -F "Message-ID: <uv-1-" $(since "$SNAP") 2>/dev/null | wc -l; }
dups() { echo $(( $(grep -c 'duplicate receipt: recorded, not delivered again' "$T/pecgate-imap.log" || true) - dups_before )); }
for _ in $(seq 1 300); do [[ $(uv1) -ge 1 && $(dups) -ge 2 ]] && break; sleep 0.1; done
[[ $(uv1) == 1 ]] || { tail -20 "$T/pecgate-imap.log"; fail "after the UIDVALIDITY reset a new message was injected $(uv1) times (want 1)"; }
[[ $(dups) == 2 ]] || { tail -20 "$T/pecgate-imap.log"; fail "after the UIDVALIDITY reset $(dups) re-listed receipts were recorded as duplicates (want 2)"; }
[[ $(uv_copies accettazione) == 1 && $(uv_copies avvenuta-consegna) == 1 ]] ||
  fail "after the UIDVALIDITY reset the receipts of interop-2 were injected $(uv_copies accettazione) and $(uv_copies avvenuta-consegna) times (want still 1 and 1)"
grep -q "IMAP UIDVALIDITY changed: folder re-listed" "$T/pecgate-imap.log" || fail "pecgate did not log the UIDVALIDITY change"
echo "interop: imap: UIDVALIDITY of INBOX reset by doveadm ($uv_old -> $uv_new) while idling: the 2 receipts re-listed under new ids were recorded as duplicates, not injected again (1 copy each); a new message was injected once"

# 2b. retention = "delete": deleted once injected, never before. Quick
# retries ([queue]) so the injection goes through soon after Postfix accepts again.
imap_config $'idle = true\ninterval_secs = 3600\nretention = "delete"' $'[queue]\nmin_backoff_secs = 1\nmax_backoff_secs = 2'
imap_restart idling
# The restart's first poll deletes the three messages injected before.
for _ in $(seq 1 100); do [[ $(messages INBOX) == 0 ]] && break; sleep 0.1; done
[[ $(messages INBOX) == 0 ]] || fail "retention delete: the restart left $(messages INBOX) injected messages in INBOX (want 0)"
# Postfix defers everything for a while: the fetched message must stay in
# INBOX. Each refusal also ends the session (hard error limit 1): pecgate
# keeps idle connections for reuse, and a session keeps its smtpd's settings.
postconf -c "$PF_CONF" -e 'smtpd_client_restrictions = defer' 'smtpd_hard_error_limit = 1' 2>/dev/null &&
  postfix -c "$PF_CONF" reload >/dev/null 2>&1 || fail "postfix: cannot make it defer"
deferred() { grep -c 'to=mario.rossi@azienda.example status=deferred' "$T/pecgate-imap.log" || true; }
deferred_before=$(deferred)
sed "0,/^Message-ID: </s//Message-ID: <del-1-/" "$ROOT/tests/fixtures/pec/posta-certificata.eml" >"$T/del-1.eml"
del1() { grep -l -F "Message-ID: <del-1-" "$MARIO_NEW"/* 2>/dev/null || true; }
dv save -u "$PEC_USER" <"$T/del-1.eml" || fail "doveadm save del-1"
for _ in $(seq 1 300); do [[ $(deferred) -gt "$deferred_before" ]] && break; sleep 0.1; done
[[ $(deferred) -gt "$deferred_before" ]] || { tail -20 "$T/pecgate-imap.log"; fail "retention delete: the injection of del-1 was not deferred by Postfix within 30 s"; }
# Past the re-poll 2 s after the fetch, the message is still there.
for _ in $(seq 1 30); do
  [[ $(in_folder INBOX HEADER Message-ID "<del-1-") == 1 ]] || fail "retention delete: del-1 left INBOX while Postfix deferred its injection"
  sleep 0.1
done
[[ -z $(del1) ]] || fail "del-1 reached mario.rossi though Postfix defers"
postconf -c "$PF_CONF" -X smtpd_client_restrictions smtpd_hard_error_limit 2>/dev/null &&
  postfix -c "$PF_CONF" reload >/dev/null 2>&1 || fail "postfix: cannot stop deferring"
for _ in $(seq 1 300); do [[ -n $(del1) ]] && break; sleep 0.1; done
[[ $(del1 | wc -l) == 1 ]] || { tail -20 "$T/pecgate-imap.log"; fail "retention delete: del-1 was injected $(del1 | wc -l) times once Postfix accepted again (want 1)"; }
intact "$(del1)" "$T/del-1.eml" || fail "del-1 was altered on the way"
for _ in $(seq 1 300); do [[ $(messages INBOX) == 0 ]] && break; sleep 0.1; done
[[ $(messages INBOX) == 0 && $(in_folder INBOX) == 0 ]] || fail "retention delete: $(messages INBOX) messages left in INBOX after the injection of del-1 (want 0)"
echo "interop: imap: retention delete: del-1 stayed in INBOX while Postfix deferred its injection ($(( $(deferred) - deferred_before )) deliveries refused meanwhile), then was injected once and deleted (doveadm mailbox status: messages=0)"

# 4. Dovecot without IDLE (its capability list without it, Dovecot reloaded):
# pecgate polls every interval_secs.
cat >>"$D/dovecot.conf" <<CONF
# tests/interop/imap.sh: a server without IDLE.
imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE LITERAL+ UNSELECT CHILDREN NAMESPACE UIDPLUS MOVE
CONF
kill -HUP "$DOVECOT_PID"
imap_config $'idle = true\ninterval_secs = 2\nretention = "leave"'
for _ in $(seq 1 50); do
  "$PECGATE" test-mailbox --config "$T/pecgate-imap.toml" --mailbox legal >"$T/test-mailbox-noidle.out" 2>&1 || true
  grep -q "not offered: IDLE (" "$T/test-mailbox-noidle.out" && break
  sleep 0.2
done
grep -q "not offered: IDLE (" "$T/test-mailbox-noidle.out" || fail "Dovecot still offers IDLE after the reload: $(cat "$T/test-mailbox-noidle.out")"
imap_restart polling
sed "0,/^Message-ID: </s//Message-ID: <poll-1-/" "$ROOT/tests/fixtures/pec/posta-certificata.eml" >"$T/poll-1.eml"
poll1() { grep -l -F "Message-ID: <poll-1-" "$MARIO_NEW"/* 2>/dev/null || true; }
t0=$(date +%s%N)
dv save -u "$PEC_USER" <"$T/poll-1.eml" || fail "doveadm save poll-1"
for _ in $(seq 1 1000); do [[ -n $(poll1) ]] && break; sleep 0.01; done
[[ $(poll1 | wc -l) == 1 ]] || { tail -20 "$T/pecgate-imap.log"; fail "without IDLE, poll-1 was injected $(poll1 | wc -l) times within 10 s (want 1; interval_secs = 2)"; }
poll_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz" | grep -q 'polling' || fail "without IDLE, readyz does not say polling: $(curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz")"
intact "$(poll1)" "$T/poll-1.eml" || fail "poll-1 was altered on the way"
echo "interop: imap: Dovecot without IDLE (test-mailbox: IDLE not offered): readyz says polling, a saved message arrived in ${poll_ms} ms (interval_secs = 2)"

kill "$IMAP_PID"; wait "$IMAP_PID" 2>/dev/null || true
if grep -qF "$PASSWORD" "$T/pecgate-imap.log" "$D/dovecot.log"; then fail "password found in a log"; fi
