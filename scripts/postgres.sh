#!/usr/bin/env bash
# A real PostgreSQL (Debian's package) for the catalog tests: a private cluster per directory, TCP on
# 127.0.0.1 only, never the distribution's cluster.
#   scripts/postgres.sh install          install Debian `postgresql` (bookworm: 15) when missing. On a machine
#                                        with systemd, apt also creates and starts the distribution's cluster
#                                        "main" on 5432; it is not used, and start refuses port 5432.
#   scripts/postgres.sh start DIR PORT   initdb a cluster in DIR/data (first time only; DIR is chowned to the
#                                        `postgres` OS user when run as root, since initdb refuses root), start
#                                        it with pg_ctl -w on 127.0.0.1:PORT (unix socket in DIR), and make sure
#                                        role `imaged` (password `imaged-pw`) owns databases `imaged` and
#                                        `imaged_test`. Prints postgres://imaged:imaged-pw@127.0.0.1:PORT/imaged
#                                        and writes it to DIR/url (DIR/test-url names imaged_test). Re-running
#                                        on a running cluster only re-checks it; on a stopped one it restarts it
#                                        on its data (a new PORT is taken).
#   scripts/postgres.sh stop DIR         pg_ctl stop -m fast (data is kept; rm -rf DIR wipes it)
# Environment: PG_AUTH (default md5: passwords stored and checked as md5; scram-sha-256 or trust also work)
#   for TCP connections from 127.0.0.1; PG_START_TIMEOUT (default 60 s); PG_BINDIR (default: the newest
#   /usr/lib/postgresql/*/bin).
# DIR and every directory above it must be reachable by the `postgres` user: /tmp/x is, a directory under
# /root or pytest's /tmp/pytest-of-root/ (mode 700) is not.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DB_USER=imaged
DB_PASSWORD=imaged-pw
DATABASES=(imaged imaged_test)

die() { echo "postgres.sh: $*" >&2; exit 1; }

cmd_install() {
    [ $# -eq 0 ] || die "usage: postgres.sh install"
    # shellcheck source=SCRIPTDIR/lib/deps.sh
    source "$ROOT/scripts/lib/deps.sh"
    ensure_debian_packages postgresql </dev/null
    local bin
    bin=$(pg_bindir) || die "postgresql is installed but no /usr/lib/postgresql/*/bin/initdb was found"
    echo "postgresql: $("$bin/postgres" --version) in $bin"
}

# The newest installed server's bin directory (or PG_BINDIR).
pg_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        [ -x "$PG_BINDIR/initdb" ] && echo "$PG_BINDIR"
        return
    fi
    local d best=""
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V); do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best=$d
    done
    [ -n "$best" ] && echo "$best"
}

# The OS user the server runs as: `postgres` when we are root (initdb, pg_ctl and postgres refuse root),
# else ourselves.
PGOS_USER=
as_pg() {
    # cd /: the caller's cwd (e.g. /root) may be unreadable for postgres.
    if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u "$PGOS_USER" -- "$@"); else (cd / && "$@"); fi
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pg_ctl status exits 0 when a server runs from this data directory.
is_running() {
    [ -f "$1/data/PG_VERSION" ] && as_pg "$BIN/pg_ctl" status -D "$1/data" >/dev/null 2>&1
}

# The port the running server in DIR listens on (line 4 of postmaster.pid).
running_port() {
    sed -n 4p "$1/data/postmaster.pid" 2>/dev/null
}

show_logs() {
    local dir=$1
    echo "--- $dir/postgres.log" >&2; tail -n 40 "$dir/postgres.log" >&2 2>/dev/null || true
    [ -s "$dir/initdb.log" ] && { echo "--- $dir/initdb.log" >&2; tail -n 20 "$dir/initdb.log" >&2; }
    return 0
}

psql_admin() {  # psql_admin DIR PORT [psql args...]: superuser over the unix socket in DIR
    local dir=$1 port=$2; shift 2
    as_pg "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -d postgres "$@"
}

cmd_start() {
    [ $# -eq 2 ] || die "usage: postgres.sh start DIR PORT"
    local dir=$1 port=$2 auth=${PG_AUTH:-md5}
    case "$port" in ''|*[!0-9]*) die "bad port: $port" ;; esac
    if [ "$port" -lt 1024 ] || [ "$port" -gt 65535 ]; then die "port $port: use 1024-65535"; fi
    [ "$port" != 5432 ] || die "port 5432 belongs to the distribution's cluster; use another port"
    case "$auth" in md5|scram-sha-256|trust) ;; *) die "PG_AUTH must be md5, scram-sha-256 or trust" ;; esac
    BIN=$(pg_bindir) || die "no PostgreSQL server found; run scripts/postgres.sh install first"
    if [ "$(id -u)" -eq 0 ]; then
        PGOS_USER=postgres
        id -u "$PGOS_USER" >/dev/null 2>&1 || die "no OS user $PGOS_USER; run scripts/postgres.sh install first"
    else
        PGOS_USER=$(id -un)
    fi

    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    case "$dir" in *[!A-Za-z0-9_./-]*) die "DIR must be a plain path ([A-Za-z0-9_./-]): $dir" ;; esac
    # unix socket paths are limited to 107 bytes
    [ $(( ${#dir} + ${#port} + 12 )) -le 107 ] || die "DIR path too long for a unix socket: $dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PGOS_USER:" "$dir"
        chmod 700 "$dir"
        as_pg test -w "$dir" \
            || die "user $PGOS_USER cannot reach $dir (a parent directory is not searchable by others, e.g. /root or /tmp/pytest-of-root); use a directory like /tmp/imaged-pg"
    fi

    if is_running "$dir"; then
        local rport
        rport=$(running_port "$dir")
        [ "$rport" = "$port" ] || die "the cluster in $dir is already running on port $rport, not $port"
        echo "postgres in $dir is already running"
    else
        # Something else listening there would make the server fail to bind (or answer for it).
        if port_in_use "$port"; then die "port $port is already in use on 127.0.0.1"; fi
        if [ ! -f "$dir/data/PG_VERSION" ]; then
            # a half-made data dir from an interrupted initdb is ours to remove
            rm -rf "$dir/data"
            # The superuser is named after the OS user; it only logs in over the unix socket (peer/trust
            # there). C.UTF-8: byte-order collation, the same on every machine.
            if ! as_pg "$BIN/initdb" -D "$dir/data" -U "$PGOS_USER" --encoding=UTF8 --locale=C.UTF-8 \
                    --auth-local=trust --auth-host=reject >"$dir/initdb.log" 2>&1; then
                show_logs "$dir"
                rm -rf "$dir/data"
                die "initdb failed (see $dir/initdb.log)"
            fi
            # our settings live in one file, rewritten on every start (port, auth)
            echo "include_if_exists = 'imaged.conf'" >> "$dir/data/postgresql.conf"
        fi
        local pwenc=$auth
        [ "$auth" = trust ] && pwenc=scram-sha-256
        as_pg tee "$dir/data/imaged.conf" >/dev/null <<EOF
# written by scripts/postgres.sh start; rewritten on every start
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
unix_socket_permissions = 0700
shared_buffers = 128MB
max_connections = 200
password_encryption = $pwenc
log_line_prefix = '%m [%p] %q%u@%d '
EOF
        as_pg tee "$dir/data/pg_hba.conf" >/dev/null <<EOF
# written by scripts/postgres.sh start; rewritten on every start
# TYPE  DATABASE  USER  ADDRESS       METHOD
local   all       all                 trust
host    all       all   127.0.0.1/32  $auth
EOF
        local timeout=${PG_START_TIMEOUT:-60}
        if ! as_pg "$BIN/pg_ctl" start -w -t "$timeout" -D "$dir/data" -l "$dir/postgres.log" >"$dir/pg_ctl.log" 2>&1; then
            cat "$dir/pg_ctl.log" >&2
            show_logs "$dir"
            die "postgres did not start on 127.0.0.1:$port within ${timeout}s"
        fi
    fi

    # Role and databases: checked on every start, so an interrupted first start is completed here.
    local sql db
    sql="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD';
  END IF;
END \$\$;"
    psql_admin "$dir" "$port" -c "$sql" >/dev/null || { show_logs "$dir"; die "cannot create role $DB_USER"; }
    # the password is re-set on every start (also re-hashes it when PG_AUTH changed)
    psql_admin "$dir" "$port" -c "ALTER ROLE $DB_USER LOGIN PASSWORD '$DB_PASSWORD'" >/dev/null
    for db in "${DATABASES[@]}"; do
        if [ "$(psql_admin "$dir" "$port" -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
            psql_admin "$dir" "$port" -c "CREATE DATABASE $db OWNER $DB_USER" >/dev/null \
                || { show_logs "$dir"; die "cannot create database $db"; }
        fi
    done

    # The check a client makes: password login over TCP.
    local url=postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$port/${DATABASES[0]}
    if [ "$(as_pg env PGPASSWORD="$DB_PASSWORD" "$BIN/psql" -X -At -h 127.0.0.1 -p "$port" -U "$DB_USER" -d "${DATABASES[0]}" -c 'SELECT 1' 2>&1)" != 1 ]; then
        show_logs "$dir"
        die "password login as $DB_USER over 127.0.0.1:$port failed"
    fi
    echo "$url" > "$dir/url"
    echo "postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$port/${DATABASES[1]}" > "$dir/test-url"
    chmod 644 "$dir/url" "$dir/test-url"
    echo "$url"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: postgres.sh stop DIR"
    local dir=$1
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        echo "no postgres cluster in $dir"
        return 0
    fi
    dir=$(cd "$dir" && pwd)
    BIN=$(pg_bindir) || die "no PostgreSQL server found"
    if [ "$(id -u)" -eq 0 ]; then PGOS_USER=$(stat -c %U "$dir/data"); else PGOS_USER=$(id -un); fi
    if ! is_running "$dir"; then
        echo "postgres in $dir is not running"
        return 0
    fi
    as_pg "$BIN/pg_ctl" stop -w -t "${PG_START_TIMEOUT:-60}" -m fast -D "$dir/data" >/dev/null \
        || { show_logs "$dir"; die "pg_ctl stop failed"; }
    echo "postgres in $dir stopped"
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
