#!/usr/bin/env bash
# OpenStack Glance (from PyPI) for bench/compare-glance: SQLite catalog, file store, no auth.
#   bench/glance-server.sh install                 create/refresh .venv-glance from bench/glance-requirements.txt
#                                                  (skipped when the requirements' sha256 stamp matches)
#   bench/glance-server.sh start DIR PORT WORKERS  write DIR/glance-api.conf, DIR/glance-api-paste.ini and
#                                                  DIR/uwsgi.ini, run `glance-manage db_sync`, start uWSGI on
#                                                  127.0.0.1:PORT with WORKERS processes in the background
#                                                  (master pid in DIR/glance.pid) and wait until GET /v2/images
#                                                  answers 200 (GLANCE_START_TIMEOUT, default 120 s)
#   bench/glance-server.sh stop DIR                stop the server started in DIR
#   bench/glance-server.sh pids DIR                the uWSGI master and its children (workers, HTTP router)
#
# How Glance runs (see bench/README.md, "Glance comparison"):
#  - Glance 33 removed the standalone `glance-api` server; its documented deployment is the WSGI module
#    glance.wsgi.api:application under uWSGI. The [uwsgi] settings are devstack's for Glance
#    (lib/apache, write_local_uwsgi_http_config): uWSGI's own HTTP router on a local port, `processes`
#    workers with one thread each, master, lazy-apps, thunder-lock, http-raw-body, http-chunked-input,
#    http-auto-chunked, buffer-size 65535, "Connection: close". devstack puts Apache in front; here
#    clients talk to the router directly. Per-request log lines are off (disable-logging), as imaged
#    runs with --log-level warning.
#  - No auth: [paste_deploy] flavor is empty, so the pipeline is Glance's default one with
#    `unauthenticated-context` (every request is an admin context with no user, project or roles).
#    Glance's new policy defaults need a role, so [oslo_policy] enforce_new_defaults and enforce_scope
#    are off: the legacy rules, which let that admin context through.
#  - SQLite catalog (sqlite:///DIR/glance.sqlite, SQLAlchemy's defaults: rollback journal,
#    synchronous=FULL) and the file store (enabled_backends = fs:file) in DIR/images; staging and
#    tasks stores under DIR too. The hashing algorithm is Glance's default, sha512 (plus md5), like
#    imaged's. Glance's file store does not fsync an upload before answering.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV=$ROOT/.venv-glance
REQ=$ROOT/bench/glance-requirements.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1

die() { echo "glance-server.sh: $*" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/../scripts/lib/deps.sh
source "$ROOT/scripts/lib/deps.sh"

# shellcheck source=SCRIPTDIR/../scripts/lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"

# pip builds uWSGI from source (~2 min): a C compiler and the Python headers of the venv's interpreter.
uwsgi_build_deps() {
    local py=$1
    ensure_command gcc gcc </dev/null
    if ! "$py" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
        [ "$(command -v "$py")" = /usr/bin/python3 ] || die "$py has no Python.h; set PYTHON=/usr/bin/python3"
        ensure_debian_packages python3-dev </dev/null
    fi
}

cmd_install() {
    VENV_BEFORE_BUILD=uwsgi_build_deps ensure_venv glance "$VENV" "$REQ" 'import glance.wsgi, glance_store' \
        '^(glance|glance.store|uwsgi|sqlalchemy|oslo\.db) ' uwsgi glance-manage
}

running_pid() {
    local pid
    pid=$(cat "$1/glance.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

cmd_pids() {
    [ $# -eq 1 ] || die "usage: glance-server.sh pids DIR"
    local pid
    pid=$(running_pid "$1") || return 0
    echo "$pid"
    pgrep -P "$pid" || true
}

cmd_start() {
    [ $# -eq 3 ] || die "usage: glance-server.sh start DIR PORT WORKERS"
    local dir=$1 port=$2 workers=$3
    case "$port" in ''|*[!0-9]*) die "bad port: $port" ;; esac
    case "$workers" in ''|*[!0-9]*|0) die "bad worker count: $workers" ;; esac
    [ -x "$VENV/bin/uwsgi" ] || die "no glance venv; run bench/glance-server.sh install first"
    ensure_command curl curl </dev/null
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if running_pid "$dir" >/dev/null; then die "a glance is already running from $dir (pid $(cat "$dir/glance.pid"))"; fi
    if curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$port/"; then die "port $port is already in use"; fi
    mkdir -p "$dir/images" "$dir/staging" "$dir/tasks"
    cp "$VENV/etc/glance/glance-api-paste.ini" "$dir/glance-api-paste.ini"
    : > "$dir/uwsgi.log"

    cat > "$dir/glance-api.conf" <<EOF
[DEFAULT]
log_file = $dir/glance-api.log
use_stderr = false
debug = false
enabled_backends = fs:file
worker_self_reference_url = http://127.0.0.1:$port

[database]
connection = sqlite:///$dir/glance.sqlite

[paste_deploy]
# empty flavor: Glance's default pipeline, with unauthenticated-context and no keystone
flavor =
config_file = $dir/glance-api-paste.ini

[oslo_policy]
# the unauthenticated context has no roles: the new defaults would refuse it
enforce_new_defaults = false
enforce_scope = false

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = $dir/images/

[os_glance_staging_store]
filesystem_store_datadir = $dir/staging/

[os_glance_tasks_store]
filesystem_store_datadir = $dir/tasks/
EOF

    cat > "$dir/uwsgi.ini" <<EOF
# devstack's uWSGI settings for Glance (lib/apache, write_local_uwsgi_http_config), module instead of
# the removed glance-wsgi-api script, no Apache in front, per-request log lines off.
[uwsgi]
module = glance.wsgi.api:application
http = 127.0.0.1:$port
processes = $workers
master = true
die-on-term = true
exit-on-reload = true
enable-threads = true
thunder-lock = true
buffer-size = 65535
add-header = Connection: close
lazy-apps = true
chmod-socket = 666
http-raw-body = true
http-chunked-input = true
http-auto-chunked = true
disable-logging = true
logto = $dir/uwsgi.log
EOF

    "$VENV/bin/glance-manage" --config-file "$dir/glance-api.conf" db_sync > "$dir/glance-manage.log" 2>&1 \
        || { tail -n 40 "$dir/glance-manage.log" >&2; die "glance-manage db_sync failed (see $dir/glance-manage.log)"; }

    # setsid: its own session, so the caller's signals and terminal don't reach it.
    (cd "$dir" && OS_GLANCE_CONFIG_DIR=$dir exec setsid "$VENV/bin/uwsgi" --ini "$dir/uwsgi.ini" </dev/null >>"$dir/uwsgi.log" 2>&1) &
    local pid=$!
    echo "$pid" > "$dir/glance.pid"

    local timeout=${GLANCE_START_TIMEOUT:-120} t0=$SECONDS code
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $dir/uwsgi.log" >&2; tail -n 40 "$dir/uwsgi.log" >&2 || true
            echo "--- $dir/glance-api.log" >&2; tail -n 40 "$dir/glance-api.log" >&2 || true
            rm -f "$dir/glance.pid"
            die "glance (uWSGI) exited during start-up"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/v2/images?limit=1" 2>/dev/null || true)
        [ "$code" = 200 ] && break
        if [ $((SECONDS - t0)) -ge "$timeout" ]; then
            echo "--- $dir/uwsgi.log" >&2; tail -n 40 "$dir/uwsgi.log" >&2 || true
            echo "--- $dir/glance-api.log" >&2; tail -n 40 "$dir/glance-api.log" >&2 || true
            cmd_stop "$dir" >/dev/null 2>&1 || true
            die "glance did not answer 200 on port $port within ${timeout}s (last status: ${code:-none})"
        fi
        sleep 0.5
    done
    # lazy-apps: each worker loads the application itself after the fork; wait for all of them, so
    # that none is still loading during a measurement.
    while [ "$(grep -c "WSGI app 0 (mountpoint='') ready" "$dir/uwsgi.log" || true)" -lt "$workers" ]; do
        kill -0 "$pid" 2>/dev/null || die "glance (uWSGI) exited during start-up; see $dir/uwsgi.log"
        [ $((SECONDS - t0)) -lt "$timeout" ] || die "not all $workers uWSGI workers loaded Glance within ${timeout}s; see $dir/uwsgi.log"
        sleep 0.5
    done
    echo "glance running: http://127.0.0.1:$port (uWSGI master pid $pid, $workers workers, dir $dir, $((SECONDS - t0))s to answer)"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: glance-server.sh stop DIR"
    local dir=$1 pid
    if ! pid=$(running_pid "$dir"); then
        rm -f "$dir/glance.pid"
        echo "glance in $dir is not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        # uWSGI's master leads its own process group (setsid): take the workers with it.
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/glance.pid"
    echo "glance in $dir stopped (pid $pid)"
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    pids) shift; cmd_pids "$@" ;;
    *) echo "usage: $0 install | start DIR PORT WORKERS | stop DIR | pids DIR" >&2; exit 2 ;;
esac
