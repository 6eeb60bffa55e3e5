#!/usr/bin/env bash
# Runs inside the throw-away root of .ci/package (never on a real system: it
# installs, reinstalls, removes and purges the package given as $1) and
# checks the files, the maintainer scripts' work and the installed binary.
set -euo pipefail
deb=$1
fail() { echo "package FAIL: $*"; exit 1; }
ok() { echo "package: ok: $*"; }
mode() { stat -c '%a %U %G' "$1"; }

getent passwd pecgate >/dev/null && fail "a pecgate user exists before the install; this root is not clean"

# --- first install ---------------------------------------------------------
dpkg -i "$deb" >/tmp/install.log 2>&1 || { cat /tmp/install.log; fail "dpkg -i"; }
grep -q 'installed and enabled, not started' /tmp/install.log || fail "no first-install note: $(cat /tmp/install.log)"
ok "dpkg -i; postinst says: $(grep -A4 'installed and enabled, not started' /tmp/install.log | tr -s ' \n' ' ')"

[[ -x /usr/bin/pecgate ]] || fail "/usr/bin/pecgate"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd pecgate)
(( uid < 1000 )) || fail "pecgate is not a system user (uid $uid)"
[[ "$home" == /var/lib/pecgate && "$shell" == /usr/sbin/nologin ]] || fail "pecgate user: home $home, shell $shell"
[[ "$(getent group pecgate | cut -d: -f3)" == "$gid" ]] || fail "pecgate's primary group is not pecgate"
ok "system user pecgate (uid $uid, home $home, shell $shell)"
[[ "$(mode /etc/pecgate/pecgate.toml)" == "640 root pecgate" ]] || fail "/etc/pecgate/pecgate.toml is $(mode /etc/pecgate/pecgate.toml)"
dpkg-query -W -f='${Conffiles}\n' pecgate | grep -q '^ /etc/pecgate/pecgate.toml ' || fail "pecgate.toml is not a conffile"
ok "conffile /etc/pecgate/pecgate.toml, 0640 root:pecgate (statoverride: $(dpkg-statoverride --list /etc/pecgate/pecgate.toml))"
[[ "$(mode /var/lib/pecgate)" == "700 pecgate pecgate" ]] || fail "/var/lib/pecgate is $(mode /var/lib/pecgate)"
ok "/var/lib/pecgate 0700 pecgate:pecgate"

unit=$(dpkg -L pecgate | grep '/systemd/system/pecgate.service$') || fail "no unit"
grep -q '^ExecStart=/usr/bin/pecgate run --config /etc/pecgate/pecgate.toml$' "$unit" || fail "unit ExecStart: $(grep ExecStart "$unit")"
grep -q '^ProtectSystem=strict$' "$unit" && grep -q '^User=pecgate$' "$unit" || fail "unit is not the hardened one"
[[ -L /etc/systemd/system/multi-user.target.wants/pecgate.service ]] || fail "unit not enabled"
if grep -q 'deb-systemd-invoke \$_dh_action\|deb-systemd-invoke start' /var/lib/dpkg/info/pecgate.postinst; then fail "postinst starts the unit"; fi
grep -q 'deb-systemd-invoke try-restart' /var/lib/dpkg/info/pecgate.postinst || fail "postinst does not try-restart on upgrade"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify "$unit" 2>&1 | grep -v 'Failed to .*[Nn]o such\|bus\|Falling back' | grep . && fail "systemd-analyze verify $unit" || true
fi
ok "unit $unit: hardened, /usr/bin paths, enabled (multi-user.target.wants), postinst never starts it, try-restart on upgrade"

pages=$(dpkg -L pecgate | grep -c '^/usr/share/man/man1/pecgate.*\.1\.gz$')
(( pages >= 10 )) || fail "only $pages pages in man1"
[[ -f /usr/share/man/man5/pecgate.toml.5.gz ]] || fail "no pecgate.toml(5)"
MANWIDTH=80 man -l /usr/share/man/man5/pecgate.toml.5.gz 2>/dev/null | grep -q 'allowed_clients' || fail "pecgate.toml(5) does not render"
zcat /usr/share/man/man1/pecgate-check-config.1.gz | grep -q 'PECGATE_CONFIG' || fail "pecgate-check-config(1)"
ok "$pages pages in man1, pecgate.toml(5) renders"
bash -c 'source /usr/share/bash-completion/completions/pecgate && complete -p pecgate' >/dev/null || fail "bash completion does not load"
grep -q '^#compdef pecgate' /usr/share/zsh/vendor-completions/_pecgate || fail "zsh completion"
ok "bash and zsh completions"
for doc in README.md guides/README.md guides/postfix.md guides/exim.md guides/opensmtpd.md examples/pecgate.toml copyright changelog.Debian.gz; do
  [[ -f "/usr/share/doc/pecgate/$doc" ]] || fail "/usr/share/doc/pecgate/$doc missing"
done
ok "/usr/share/doc/pecgate: README, guides, example, copyright, changelog"

# --- the installed binary on the installed configuration -------------------
/usr/bin/pecgate --version | grep -q '^pecgate ' || fail "pecgate --version"
set +e
runuser -u pecgate -- /usr/bin/pecgate check-config --config /etc/pecgate/pecgate.toml >/tmp/check.out 2>/tmp/check.err
rc=$?
set -e
echo "package: pecgate check-config on the shipped example (as user pecgate) exits $rc and says:"
sed 's/^/    /' /tmp/check.err
[[ $rc == 1 ]] && grep -q 'password_file' /tmp/check.err || fail "check-config on the example should name the missing password file"
# What an admin does next: the password file it names, then the check passes.
install -d -m 0750 -o root -g pecgate /etc/pecgate/secrets
install -m 0600 -o pecgate -g pecgate /dev/null /etc/pecgate/secrets/legal.password
echo 'not-a-real-password' >/etc/pecgate/secrets/legal.password
runuser -u pecgate -- /usr/bin/pecgate check-config --config /etc/pecgate/pecgate.toml >/tmp/check.out 2>/tmp/check.err ||
  { cat /tmp/check.err; fail "check-config with the password file in place"; }
grep -q 'not-a-real-password' /tmp/check.out /tmp/check.err && fail "check-config printed the password"
ok "with /etc/pecgate/secrets/legal.password in place: $(tail -1 /tmp/check.err)"

# --- upgrade (reinstall): idempotent, the admin's changes kept --------------
echo '# edited by the admin' >>/etc/pecgate/pecgate.toml
dpkg-statoverride --remove /etc/pecgate/pecgate.toml >/dev/null
dpkg-statoverride --update --add root pecgate 0600 /etc/pecgate/pecgate.toml
dpkg -i "$deb" >/tmp/upgrade.log 2>&1 || { cat /tmp/upgrade.log; fail "reinstall"; }
grep -q 'installed and enabled, not started' /tmp/upgrade.log && fail "the first-install note again on upgrade"
[[ "$(getent passwd pecgate | cut -d: -f3)" == "$uid" ]] || fail "uid changed on upgrade"
[[ $(getent passwd | grep -c '^pecgate:') == 1 ]] || fail "a second pecgate user"
tail -1 /etc/pecgate/pecgate.toml | grep -q 'edited by the admin' || fail "the admin's edit was lost on upgrade"
[[ "$(mode /etc/pecgate/pecgate.toml)" == "600 root pecgate" ]] || fail "the admin's statoverride was lost: $(mode /etc/pecgate/pecgate.toml)"
ok "reinstall: same user, admin's edit and mode kept, no note"

# --- remove: nothing of the state goes -------------------------------------
echo state >/var/lib/pecgate/pecgate.db
dpkg -r pecgate >/tmp/remove.log 2>&1 || { cat /tmp/remove.log; fail "dpkg -r"; }
[[ ! -e /usr/bin/pecgate ]] || fail "binary left after remove"
[[ -f /etc/pecgate/pecgate.toml && -f /var/lib/pecgate/pecgate.db ]] || fail "remove deleted the config or the state"
getent passwd pecgate >/dev/null || fail "remove deleted the user"
ok "dpkg -r: binary gone; config, /var/lib/pecgate and the user kept"

# --- purge: the config goes, the state and the user stay -------------------
dpkg -P pecgate >/tmp/purge.log 2>&1 || { cat /tmp/purge.log; fail "dpkg -P"; }
[[ ! -e /etc/pecgate/pecgate.toml ]] || fail "purge kept the conffile"
dpkg-statoverride --list /etc/pecgate/pecgate.toml >/dev/null && fail "purge kept the statoverride"
[[ ! -e /etc/systemd/system/multi-user.target.wants/pecgate.service ]] || fail "purge kept the enable link"
[[ -f /var/lib/pecgate/pecgate.db ]] || fail "purge deleted /var/lib/pecgate"
getent passwd pecgate >/dev/null || fail "purge deleted the user"
ok "dpkg -P: conffile, statoverride and enable link gone; /var/lib/pecgate and the user kept (secrets the admin added stay: $(ls /etc/pecgate 2>/dev/null | tr '\n' ' '))"
