#!/usr/bin/env bash
# A private PostgreSQL cluster for tests: `source pg.sh; pg_start DIR`.
# initdb + pg_ctl as the unprivileged `postgres` user (initdb refuses root),
# listening only on 127.0.0.1 on a free port, password (SCRAM) required.
# Exports PG_URL (without password), PG_PASSWORD_FILE, PG_ADMIN_URL (with
# the password, for tests that create databases) and PG_PID; pg_stop stops
# exactly that server (pg_ctl with its data directory).

pg_bin() {
  if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [[ -n "$d" ]] && echo "$d"
}

pg_install() {
  [[ -n "$(pg_bin)" ]] && return 0
  echo "pg: installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  local made_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; made_policy=1; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  [[ "$made_policy" == 1 ]] && rm -f /usr/sbin/policy-rc.d
  return 0
}

# Runs a command as the postgres user when we are root.
pg_as() {
  if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_start() {
  local dir="$1"
  pg_install
  local bin
  bin="$(pg_bin)"
  mkdir -p "$dir"
  local password
  password="pw-PG-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')-never-log-me"
  printf '%s\n' "$password" >"$dir/pecgate.pw"
  chmod 600 "$dir/pecgate.pw"
  mkdir -p "$dir/data" "$dir/run"
  printf '%s\n' "$password" >"$dir/initpw"
  if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres "$dir/data" "$dir/run" "$dir/initpw"
    chmod 755 "$dir"
  fi
  pg_as "$bin/initdb" -D "$dir/data" -U pecgate --auth=scram-sha-256 --pwfile="$dir/initpw" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log"; return 1; }
  rm -f "$dir/initpw"
  PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
  pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/run/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$dir/run -c fsync=on -c max_connections=200" start >/dev/null ||
    { cat "$dir/run/server.log"; return 1; }
  PG_DIR="$dir"
  PG_BIN="$bin"
  PG_PID="$(head -1 "$dir/data/postmaster.pid")"
  PG_PASSWORD_FILE="$dir/pecgate.pw"
  PG_URL="postgres://pecgate@127.0.0.1:$PG_PORT/postgres"
  PG_ADMIN_URL="postgres://pecgate:$password@127.0.0.1:$PG_PORT/postgres"
  export PG_DIR PG_BIN PG_PID PG_PORT PG_PASSWORD_FILE PG_URL PG_ADMIN_URL
  echo "pg: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT (pid $PG_PID)"
}

pg_createdb() {
  PGPASSWORD="$(cat "$PG_PASSWORD_FILE")" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U pecgate "$1"
}

pg_stop() {
  [[ -n "${PG_DIR:-}" && -f "$PG_DIR/data/postmaster.pid" ]] || return 0
  pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
}
