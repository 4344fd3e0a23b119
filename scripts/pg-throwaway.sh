#!/usr/bin/env bash
# Run a command with a throwaway PostgreSQL on 127.0.0.1, then stop and delete it.
#
#   bash scripts/pg-throwaway.sh .venv/bin/pytest tests/store
#
# initdb in a fresh temp directory (as the `postgres` user when run as root: the server
# refuses to run as root), listen on 127.0.0.1 only, on a free port, password auth with a
# random password, durability off (it is thrown away).  The command runs with
# KDIAG_TEST_PG_URL=postgresql+psycopg://kdiag:<pw>@127.0.0.1:<port>/kdiag and its exit
# status is this script's.  The server is stopped and the directory removed on any exit.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

pgbin=""
for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" ]] && pgbin="$dir"
done
if [[ -z "$pgbin" ]]; then
    echo "pg-throwaway: PostgreSQL is not installed (Debian package 'postgresql'; make test installs it)" >&2
    exit 1
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/kdiag-pg.XXXXXX")"
# The server's tools run from inside the temp directory: the unprivileged user may not be
# allowed into the caller's working directory.
run_pg() { (cd "$tmp" && "$@"); }
if [[ "$(id -u)" -eq 0 ]]; then
    chown postgres: "$tmp"
    run_pg() { (cd "$tmp" && runuser -u postgres -- "$@"); }
fi

cleanup() {
    if [[ -f "$tmp/data/postmaster.pid" ]]; then
        run_pg "$pgbin/pg_ctl" -D "$tmp/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
printf '%s\n' "$password" >"$tmp/pwfile"
chmod 600 "$tmp/pwfile"
[[ "$(id -u)" -eq 0 ]] && chown postgres: "$tmp/pwfile"

if ! run_pg "$pgbin/initdb" -D "$tmp/data" -U kdiag --pwfile="$tmp/pwfile" \
    --auth-host=scram-sha-256 --auth-local=scram-sha-256 -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1; then
    cat "$tmp/initdb.log" >&2
    exit 1
fi
rm -f "$tmp/pwfile"
if ! run_pg "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null; then
    cat "$tmp/server.log" >&2
    exit 1
fi
PGPASSWORD="$password" "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U kdiag kdiag

export KDIAG_TEST_PG_URL="postgresql+psycopg://kdiag:${password}@127.0.0.1:${port}/kdiag"
set +e
"$@"
status=$?
set -e
exit "$status"
