#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and benchmarks.
#   scripts/pg-cluster.sh start DIR PORT   -> initdb (if needed) + start; prints the connection URL
#   scripts/pg-cluster.sh standby DIR PORT PRIMARY_PORT
#                                          -> a streaming standby of the cluster on PRIMARY_PORT
#                                             (pg_basebackup -R), started; prints its URL
#   scripts/pg-cluster.sh promote DIR      -> the standby becomes a primary (pg_ctl promote)
#   scripts/pg-cluster.sh stop DIR [MODE]  -> pg_ctl stop -m MODE (fast by default; immediate = crash)
# PostgreSQL refuses to run as root, so when run as root the cluster belongs to the `postgres` user.
set -euo pipefail

cmd=${1:?usage: pg-cluster.sh start|standby|promote|stop DIR [PORT]}
dir=${2:?usage: pg-cluster.sh start|standby|promote|stop DIR [PORT]}
port=${3:-55432}

bindir=""
for candidate in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$candidate/pg_ctl" ]; then bindir=$candidate; break; fi
done
if [ -z "$bindir" ]; then
    echo "pg-cluster.sh: no PostgreSQL server found; install it with: apt-get install postgresql" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case "$cmd" in
start)
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # Roles in the group statehouse_password_auth must log in with a password (SCRAM) even
    # though everything else is trusted: tests of wrong-password errors and of created roles.
    hba="$dir/data/pg_hba.conf"
    if ! grep -q '+statehouse_password_auth' "$hba"; then
        as_owner sh -c '{ echo "host all +statehouse_password_auth 127.0.0.1/32 scram-sha-256"; cat "$1"; } >"$1.new" && mv "$1.new" "$1"' sh "$hba"
    fi
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
standby)
    primary_port=${4:?usage: pg-cluster.sh standby DIR PORT PRIMARY_PORT}
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_owner "$bindir/pg_basebackup" -D "$dir/data" -R -X stream -c fast \
            -h 127.0.0.1 -p "$primary_port" -U postgres >"$dir/basebackup.log" 2>&1 \
            || { cat "$dir/basebackup.log" >&2; exit 1; }
    fi
    exec "$0" start "$dir" "$port"
    ;;
promote)
    as_owner "$bindir/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    mode=${3:-fast}
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w stop >/dev/null || true
    fi
    ;;
*)
    echo "usage: pg-cluster.sh start|standby|promote|stop DIR [PORT] [PRIMARY_PORT|MODE]" >&2
    exit 2
    ;;
esac
