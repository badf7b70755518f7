#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test suite, kept under the project's own
# .tmp/pg and listening only on 127.0.0.1 (port $PG_PORT; by default 54329, or the
# next free port above it).
#
#   scripts/pg.sh start   initdb (fresh every time) + start, create role and database
#   scripts/pg.sh stop    stop it and delete its data; safe when it is not running
#   scripts/pg.sh url     print the SQLAlchemy URL the tests read from TEST_PG_URL
#   scripts/pg.sh status  exit 0 when running
#   scripts/pg.sh psql    open psql on the test database
#
# Durability is switched off (fsync, synchronous_commit, full_page_writes): the data
# is thrown away after the run, and these settings make the suite several times faster.
# Auth is `trust`: nothing but loopback can reach it and it lives for one test run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE="$ROOT/.tmp/pg"
PORT="${PG_PORT:-54329}"
DB_USER=nurture
DB_NAME=nurture_test

die() {
  echo "pg.sh: $*" >&2
  exit 1
}

# Newest Debian-packaged server first (/usr/lib/postgresql/<major>/bin is not on PATH),
# then whatever is on PATH (Homebrew, other distributions). PG_BIN overrides both.
find_bin() {
  if [[ -n "${PG_BIN:-}" ]]; then
    echo "$PG_BIN"
    return 0
  fi
  local dir newest=""
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" ]] || continue
    if [[ -z "$newest" ]] || [[ $(printf '%s\n%s\n' "$newest" "$dir" | sort -V | tail -n1) == "$dir" ]]; then
      newest=$dir
    fi
  done
  if [[ -n "$newest" ]]; then
    echo "$newest"
  elif command -v initdb >/dev/null; then
    dirname "$(command -v initdb)"
  else
    return 1
  fi
}

# initdb and postgres refuse to run as root, so as root (CI) the server runs as the
# `postgres` system user that Debian's package creates. `cd /` because the caller's
# directory may be unreadable to that user, which makes initdb and pg_ctl complain.
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (Debian's postgresql package creates it)."
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
  as_pg() { "$@"; }
fi

# Where the cluster lives. Normally .tmp/pg in the checkout; but when root runs from
# a checkout the postgres user cannot reach (e.g. under /root, mode 700), fall back to
# a directory in /tmp named after the checkout, so start and stop still agree on it.
base_dir() {
  mkdir -p "$STATE"
  if [[ $(id -u) -ne 0 ]]; then
    echo "$STATE"
    return
  fi
  local base="$STATE"
  chown postgres: "$base"
  if ! as_pg test -w "$base"; then
    base="/tmp/nurture-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)"
    mkdir -p "$base"
    chown postgres: "$base"
    chmod 700 "$base"
  fi
  echo "$base"
}

is_running() {
  [[ -f "$DATA/postmaster.pid" ]] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

# The port of the running cluster (recorded at start, always in .tmp/pg even when the
# data lives in /tmp), else the configured one.
current_port() {
  if [[ -f "$STATE/port" ]]; then cat "$STATE/port"; else echo "$PORT"; fi
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

psql_as() {
  local user=$1 db=$2
  shift 2
  "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(current_port)" -U "$user" -d "$db" "$@"
}

ensure_database() {
  if [[ $(psql_as postgres postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'") != 1 ]]; then
    # CREATEDB because tests clone a fresh database per test or module.
    psql_as postgres postgres -c "CREATE ROLE $DB_USER LOGIN CREATEDB"
  fi
  # DROP DATABASE ... WITH (FORCE) ends every session in the database, including a
  # superuser's (an autovacuum worker): the test role may signal them.
  psql_as postgres postgres -c "GRANT pg_signal_backend TO $DB_USER" >/dev/null
  if [[ $(psql_as postgres postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") != 1 ]]; then
    psql_as postgres postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER TEMPLATE template0 ENCODING 'UTF8'"
  fi
}

show_log() {
  if [[ -f "$LOG" ]]; then
    echo "pg.sh: last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2
  fi
}

cmd_start() {
  if is_running; then
    # Left over from an interrupted run (or another run in this checkout): reuse it.
    echo "pg.sh: reusing the cluster already running on 127.0.0.1:$(current_port)"
    ensure_database
    return
  fi
  if port_taken "$PORT"; then
    # Another checkout's test run, most likely. An explicit PG_PORT is a promise to
    # the caller, so only the default moves to the next free port.
    if [[ -n "${PG_PORT:-}" ]]; then
      die "127.0.0.1:$PORT is taken by another server; pick a free port with PG_PORT=<port>."
    fi
    local candidate
    for candidate in $(seq $((PORT + 1)) $((PORT + 50))); do
      if ! port_taken "$candidate"; then
        PORT=$candidate
        break
      fi
    done
    if port_taken "$PORT"; then
      die "no free port in $PORT-$((PORT + 50)); pick one with PG_PORT=<port>."
    fi
  fi
  # Fresh every start: a cluster kept from an earlier run could hold a schema from
  # older migrations, or come from another PostgreSQL major version.
  rm -rf "$DATA"
  rm -f "$STATE/port"
  # One log for initdb and the server; the server (as postgres) appends to it.
  : >"$LOG"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$LOG"
  fi
  if ! as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
    >"$LOG" 2>&1; then
    show_log
    die "initdb failed."
  fi
  cat >>"$DATA/postgresql.conf" <<CONF

# --- scripts/pg.sh: a throwaway test cluster ---
listen_addresses = '127.0.0.1'
# No Unix socket: the default directory (/var/run/postgresql) may be missing or not
# writable; everything connects over TCP loopback.
unix_socket_directories = ''
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = minimal
max_wal_senders = 0
# Test tables are tiny, and containers often have a 64MB /dev/shm that parallel
# query workers can exhaust.
max_parallel_workers_per_gather = 0
timezone = 'UTC'
# Databases live for one test: vacuuming them is wasted work, and an autovacuum
# worker inside one makes DROP DATABASE ... WITH (FORCE) need rights to signal it.
autovacuum = off
log_timezone = 'UTC'
CONF
  if ! as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -o "-p $PORT" -w -t 60 start >/dev/null; then
    show_log
    die "the server did not start."
  fi
  echo "$PORT" >"$STATE/port"
  ensure_database
  echo "pg.sh: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (data in $DATA)"
}

cmd_stop() {
  if [[ ! -d "$DATA" ]]; then
    return 0
  fi
  if is_running; then
    # fast = roll back open transactions and disconnect; immediate if that hangs.
    as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 30 stop >/dev/null \
      || as_pg "$BIN/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >/dev/null \
      || die "could not stop the server in $DATA."
  fi
  rm -rf "$DATA"
  rm -f "$STATE/port"
}

main() {
  local cmd=${1:-}
  case "$cmd" in
    start | stop | url | status | psql) ;;
    *)
      echo "usage: $0 start|stop|url|status|psql" >&2
      exit 2
      ;;
  esac
  if [[ "$cmd" == url ]]; then
    # Does not need the server installed: the URL is known in advance.
    echo "postgresql+psycopg://$DB_USER@127.0.0.1:$(current_port)/$DB_NAME"
    return
  fi
  if ! BIN=$(find_bin); then
    if [[ "$cmd" == stop ]]; then
      return 0
    fi
    die "PostgreSQL is not installed (no initdb found); run scripts/system-deps.sh or set PG_BIN."
  fi
  BASE=$(base_dir)
  DATA="$BASE/data"
  LOG="$BASE/postgres.log"
  case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) is_running ;;
    psql) psql_as "$DB_USER" "$DB_NAME" ;;
  esac
}

main "$@"
