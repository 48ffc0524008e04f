#!/usr/bin/env bash
# A throwaway PostgreSQL cluster and a single-node Garage (S3) on 127.0.0.1, for benchmarks and
# manual runs (the Rust tests start their own: server/tests/common/pg.rs).
#
#   eval "$(scripts/test-services.sh start DIR)"   start both under DIR, print `export` lines
#   scripts/test-services.sh stop DIR               stop both, delete what start put in DIR
#
# `./x setup` installs both. PostgreSQL: the newest /usr/lib/postgresql/*/bin, trust auth,
# fsync and synchronous_commit on (PG_FAST=1 turns them off: say so in benchmark results).
# Garage: $DATAPILOT_TOOLS_DIR/bin/garage (default ~/.cache/datapilot/tools). Optional:
# GARAGE_DEFAULT_ACCESS_KEY, GARAGE_DEFAULT_SECRET_KEY (random when unset), GARAGE_DEFAULT_BUCKET
# (artifacts). DIR/env keeps the export lines.
set -euo pipefail

die() { printf 'test-services: %s\n' "$*" >&2; exit 1; }
rand_hex() {  # N bytes as hex
  if command -v openssl >/dev/null; then openssl rand -hex "$1"
  else od -An -tx1 -N "$1" /dev/urandom | tr -d ' \n'; fi
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 100); do p=$((20000 + RANDOM % 30000)); port_free "$p" && { echo "$p"; return; }; done
  die "no free port found"
}
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

[ $# -eq 2 ] || die "usage: $0 start|stop DIR"
DIR=$(mkdir -p "$2" && cd "$2" && pwd)
PGBIN=${DATAPILOT_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
GARAGE=${DATAPILOT_TOOLS_DIR:-$HOME/.cache/datapilot/tools}/bin/garage

start() {
  [ -x "$PGBIN/initdb" ] || die "no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb): run ./x setup"
  [ -x "$GARAGE" ] || die "no $GARAGE: run ./x setup"
  [ ! -e "$DIR/pg" ] && [ ! -e "$DIR/garage" ] || die "$DIR/pg or $DIR/garage exists: stop $DIR first"
  trap '[ $? -eq 0 ] || { echo "test-services: start failed, stopping what started" >&2; stop; }' EXIT

  # PostgreSQL (cwd = DIR/pg: the postgres user may not be allowed into the caller's cwd).
  local pgport sync=on; pgport=$(free_port)
  [ "${PG_FAST:-0}" = 1 ] && sync=off
  mkdir "$DIR/pg"; [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR/pg"
  as_pg test -w "$DIR/pg" || die "the postgres user cannot write to $DIR/pg (choose a DIR under /tmp)"
  (cd "$DIR/pg" \
   && as_pg "$PGBIN/initdb" -D "$DIR/pg/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null \
   && as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/server.log" -w -t 30 \
     -o "-c listen_addresses=127.0.0.1 -p $pgport -k $DIR/pg -c fsync=$sync -c synchronous_commit=$sync" \
     start >/dev/null) || die "PostgreSQL did not start; $DIR/pg/server.log: $(tail -5 "$DIR/pg/server.log" 2>/dev/null)"
  "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -c 'CREATE DATABASE datapilot' >&2

  # Garage, single node, with a default key and bucket.
  local s3port rpcport; s3port=$(free_port); rpcport=$(free_port)
  while [ "$rpcport" = "$s3port" ]; do rpcport=$(free_port); done
  mkdir -p "$DIR/garage"
  cat >"$DIR/garage/garage.toml" <<EOF
metadata_dir = "$DIR/garage/meta"
data_dir = "$DIR/garage/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpcport"
rpc_public_addr = "127.0.0.1:$rpcport"
rpc_secret = "$(rand_hex 32)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3port"
EOF
  local key=${GARAGE_DEFAULT_ACCESS_KEY:-GK$(rand_hex 12)} secret=${GARAGE_DEFAULT_SECRET_KEY:-$(rand_hex 32)}
  local bucket=${GARAGE_DEFAULT_BUCKET:-artifacts}
  GARAGE_CONFIG_FILE="$DIR/garage/garage.toml" GARAGE_DEFAULT_ACCESS_KEY=$key \
    GARAGE_DEFAULT_SECRET_KEY=$secret GARAGE_DEFAULT_BUCKET=$bucket RUST_LOG=${RUST_LOG:-warn} \
    setsid "$GARAGE" server --single-node --default-bucket </dev/null >"$DIR/garage/garage.log" 2>&1 &
  local gpid=$!; echo "$gpid" >"$DIR/garage/pid"
  for _ in $(seq 100); do port_free "$s3port" && kill -0 "$gpid" 2>/dev/null || break; sleep 0.1; done
  port_free "$s3port" && die "Garage did not start; $DIR/garage/garage.log: $(tail -5 "$DIR/garage/garage.log")"

  cat >"$DIR/env" <<EOF
export DATAPILOT_DATABASE_URL='postgres://postgres@127.0.0.1:$pgport/datapilot'
export DATAPILOT_BLOBS='s3://$bucket?endpoint=http://127.0.0.1:$s3port&region=garage'
export AWS_ACCESS_KEY_ID='$key'
export AWS_SECRET_ACCESS_KEY='$secret'
EOF
  cat "$DIR/env"
  echo "test-services: PostgreSQL on 127.0.0.1:$pgport (fsync=$sync), Garage S3 on 127.0.0.1:$s3port" >&2
}

stop() {
  if [ -f "$DIR/garage/pid" ]; then
    local pid; pid=$(cat "$DIR/garage/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done   # ~1 s to exit
    kill -9 "$pid" 2>/dev/null || true
  fi
  if [ -f "$DIR/pg/data/postmaster.pid" ]; then
    (cd "$DIR/pg" && as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" -m immediate -w stop >/dev/null) || true
  fi
  rm -rf "$DIR/pg" "$DIR/garage" "$DIR/env"
}

case $1 in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop DIR" ;;
esac
