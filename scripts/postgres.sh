#!/usr/bin/env bash
# Makes sure a local PostgreSQL server runs for the API tests and prints the line
#   export KETANG_TEST_DATABASE_URL=postgres://ketang_test:...@127.0.0.1:PORT/ketang_test
# for `eval "$(./scripts/postgres.sh)"`. Idempotent: installs PostgreSQL (Debian) if missing,
# creates and starts a cluster if none runs, (re)creates the test role, and recreates the test
# database empty (each test then makes its own schema in it). Progress goes to stderr.
set -euo pipefail

ROLE=ketang_test
PASSWORD=ketang_test
DATABASE=ketang_test

say() { printf '%s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    say "need root to run: $*"; return 1; fi
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  say "installing PostgreSQL"
  as_root apt-get update >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql >&2
fi

# The newest installed major version.
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if [ -z "$(pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v')" ]; then
  say "creating PostgreSQL $version cluster main"
  as_root pg_createcluster "$version" main >&2
fi
read -r cluster port status < <(pg_lsclusters -h | awk -v v="$version" '$1 == v {print $2, $3, $4; exit}')
if [ "$status" != online ]; then
  say "starting PostgreSQL $version/$cluster on port $port"
  as_root pg_ctlcluster "$version" "$cluster" start >&2
fi
for _ in $(seq 1 50); do
  as_postgres pg_isready -q -p "$port" && break
  sleep 0.2
done
as_postgres pg_isready -q -p "$port" || { say "PostgreSQL did not become ready on port $port"; exit 1; }

psql_admin() { as_postgres psql -p "$port" -v ON_ERROR_STOP=1 -qAt "$@"; }
psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN PASSWORD '$PASSWORD';
  END IF;
END \$\$;" >&2
# A fresh, empty database per run: schemas left by failed tests go with it.
psql_admin -c "DROP DATABASE IF EXISTS $DATABASE WITH (FORCE)" >&2
psql_admin -c "CREATE DATABASE $DATABASE OWNER $ROLE" >&2
say "PostgreSQL $version/$cluster ready on 127.0.0.1:$port, database $DATABASE"
echo "export KETANG_TEST_DATABASE_URL=postgres://$ROLE:$PASSWORD@127.0.0.1:$port/$DATABASE"
