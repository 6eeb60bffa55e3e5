# Part 2b of run.sh (sourced, after the POP3 part): the same Dovecot serves
# the mailbox over IMAPS, and a third pecgate fetches it with IDLE and a poll
# interval of an hour, so only IDLE can explain a prompt arrival. Messages are
# delivered with `doveadm save` (Dovecot's own delivery, not files written
# behind its back); the time from the save to the injected copy in
# mario.rossi's Maildir is measured for 20 messages.

# The POP3 instance (retention = delete) would take the messages first.
kill "$PECGATE_IN_PID" 2>/dev/null || true
wait "$PECGATE_IN_PID" 2>/dev/null || true

GW3_PORT=$(free_port); ADMIN3_PORT=$(free_port)
other_instance "$GW3_PORT" "$ADMIN3_PORT" state3 "$T/pecgate-imap.toml"
cat >>"$T/pecgate-imap.toml" <<TOML
[mailbox.imap]
host = "127.0.0.1"
port = $IMAP_PORT
ca_file = "dovecot/ca.pem"
idle = true
interval_secs = 3600
retention = "leave"
TOML
"$PECGATE" check-config --config "$T/pecgate-imap.toml" >"$T/check3.out" 2>&1 || fail "check-config (imap): $(cat "$T/check3.out")"
"$PECGATE" test-mailbox --config "$T/pecgate-imap.toml" --mailbox legal >"$T/test-mailbox.out" 2>&1 || fail "test-mailbox (imap): $(cat "$T/test-mailbox.out")"
grep -q "IDLE" "$T/test-mailbox.out" || fail "test-mailbox does not report IDLE: $(cat "$T/test-mailbox.out")"
"$PECGATE" run --config "$T/pecgate-imap.toml" >"$T/pecgate-imap.log" 2>&1 &
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
  doveadm -c "$D/dovecot.conf" save -u legal@pec.azienda.example <"$T/imap-$i.eml" || fail "doveadm save $i"
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
python3 - "$file" "$T/imap-20.eml" <<'PY' || fail "an IMAP-fetched message was altered on the way"
import sys
got = open(sys.argv[1], 'rb').read().replace(b'\r\n', b'\n')
want = open(sys.argv[2], 'rb').read().replace(b'\r\n', b'\n')
i = got.index(b'X-Pecgate-Id: ')
sys.exit(0 if got[got.index(b'\n', i) + 1:] == want else 1)
PY

# retention = "leave": every message is still in the folder, and flagged
# \Seen once the corporate server has taken it. A message whose injection
# was still queued when its poll ended is flagged at the next wake-up (new
# mail, or here the restart's first poll below), never before.
inbox() { doveadm -c "$D/dovecot.conf" search -u legal@pec.azienda.example mailbox INBOX "$1" | wc -l; }
for _ in $(seq 1 50); do [[ $(inbox SEEN) -ge 19 ]] && break; sleep 0.1; done
seen=$(inbox SEEN); all=$(inbox ALL)
[[ "$all" == 20 && "$seen" -ge 19 ]] || fail "retention leave: $all messages in INBOX, $seen seen (want 20, and 19 or 20)"

# A restart fetches nothing twice.
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
"$PECGATE" run --config "$T/pecgate-imap.toml" >>"$T/pecgate-imap.log" 2>&1 &
PIDS+=($!)
wait_port "$GW3_PORT" || fail "the IMAP pecgate did not restart"
for _ in $(seq 1 200); do curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz" | grep -q 'idling' && break; sleep 0.05; done
curl -s "http://127.0.0.1:$ADMIN3_PORT/readyz" | grep -q 'idling' || fail "the restarted IMAP fetcher is not idling"
# The restarted fetcher listed the folder before it idles: nothing fetched
# again, and the last message is flagged now.
[[ $(fetched) == 20 ]] || fail "a restart injected IMAP messages again: $(fetched)"
for _ in $(seq 1 100); do [[ $(inbox SEEN) == 20 ]] && break; sleep 0.1; done
[[ $(inbox SEEN) == 20 && $(inbox ALL) == 20 ]] || fail "after the restart: $(inbox ALL) in INBOX, $(inbox SEEN) seen (want 20 and 20)"
if grep -qF "$PASSWORD" "$T/pecgate-imap.log" "$D/dovecot.log"; then fail "password found in a log"; fi
echo "interop: imap OK (IDLE, byte-for-byte, retention leave with \\Seen, no refetch after a restart)"
