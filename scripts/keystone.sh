#!/usr/bin/env bash
# A real OpenStack Keystone (from PyPI) for the end-to-end tests.
#   scripts/keystone.sh install          create/refresh .venv-keystone from tests/e2e/keystone-requirements.txt
#                                        (skipped when the requirements' sha256 stamp matches)
#   scripts/keystone.sh start DIR PORT   write DIR/keystone.conf (SQLite, fernet tokens, keys in DIR), run
#                                        db_sync / fernet_setup / credential_setup / bootstrap, start gunicorn on
#                                        127.0.0.1:PORT in the background (pid in DIR/keystone.pid) and wait
#                                        until GET /v3 answers 200 (120 s at most)
#   scripts/keystone.sh stop DIR         stop the server started in DIR
# Environment: KEYSTONE_ADMIN_PASSWORD (default admin-secret), KEYSTONE_START_TIMEOUT (default 120),
#   KEYSTONE_CACHE (default 1: in-process cache, 1 process x KEYSTONE_THREADS (default 4) threads; 0: no cache,
#   2 processes). KEYSTONE_THREADS=1 serialises requests: SQLite answers concurrent writers (Tempest creating
#   and deleting projects in parallel) with "database is locked" (500).
# Keystone lives in its own venv so its server dependencies never meet the client versions in .venv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV=$ROOT/.venv-keystone
REQ=$ROOT/tests/e2e/keystone-requirements.txt
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1

die() { echo "keystone.sh: $*" >&2; exit 1; }

# shellcheck source=SCRIPTDIR/lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"
cmd_install() {
    ensure_venv keystone "$VENV" "$REQ" \
        'import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ("keystone", "gunicorn")))' \
        '^(keystone|gunicorn) ' keystone-manage gunicorn
}

# The process in DIR/keystone.pid, if it is alive.
running_pid() {
    local pid
    pid=$(cat "$1/keystone.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

cmd_start() {
    [ $# -eq 2 ] || die "usage: keystone.sh start DIR PORT"
    local dir=$1 port=$2
    case "$port" in ''|*[!0-9]*) die "bad port: $port" ;; esac
    [ -x "$VENV/bin/keystone-manage" ] || die "no keystone venv; run scripts/keystone.sh install first"
    # shellcheck source=SCRIPTDIR/lib/deps.sh
    source "$ROOT/scripts/lib/deps.sh"
    ensure_command curl curl </dev/null
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if running_pid "$dir" >/dev/null; then die "a keystone is already running from $dir (pid $(cat "$dir/keystone.pid"))"; fi

    local conf=$dir/keystone.conf url=http://127.0.0.1:$port/v3
    # Something else answering there would pass the readiness probe below for ours.
    if curl -s -o /dev/null --max-time 3 "http://127.0.0.1:$port/"; then die "port $port is already in use"; fi
    # KEYSTONE_CACHE=1 (default): keystone's in-process cache (dogpile memory) in ONE process with 4
    # threads; cached token validation takes milliseconds instead of ~0.5 s of SQL, and a revocation
    # is seen at once because the cache that revoke invalidates is the only one.
    # KEYSTONE_CACHE=0: no cache, 2 worker processes (every validation hits SQLite).
    local cache_conf server_conf
    if [ "${KEYSTONE_CACHE:-1}" = 1 ]; then
        cache_conf=$'enabled = true\nbackend = dogpile.cache.memory'
        server_conf="workers = 1"$'\n'"threads = ${KEYSTONE_THREADS:-4}"
    else
        cache_conf='enabled = false'
        server_conf='workers = 2'
    fi
    local user group
    user=$(id -un); group=$(id -gn)
    cat > "$conf" <<EOF
[DEFAULT]
log_file = $dir/keystone.log
use_stderr = false
debug = false

[database]
connection = sqlite:///$dir/keystone.db

[token]
provider = fernet
# expiration: keystone's default (3600 s)

[fernet_tokens]
key_repository = $dir/fernet-keys

[fernet_receipts]
key_repository = $dir/fernet-keys

[credential]
key_repository = $dir/credential-keys

[identity]
# bcrypt's minimum cost: users are created and tokens issued fast (the default 12 costs ~0.3 s a hash)
password_hash_rounds = 4
# bcrypt's own limit; keystone warns on every password check when this is above it
max_password_length = 72

[cache]
$cache_conf
EOF
    local km=("$VENV/bin/keystone-manage" --config-file "$conf")
    {
        "${km[@]}" db_sync
        "${km[@]}" fernet_setup --keystone-user "$user" --keystone-group "$group"
        "${km[@]}" credential_setup --keystone-user "$user" --keystone-group "$group"
        "${km[@]}" bootstrap --bootstrap-password "${KEYSTONE_ADMIN_PASSWORD:-admin-secret}" \
            --bootstrap-admin-url "$url" --bootstrap-internal-url "$url" --bootstrap-public-url "$url" \
            --bootstrap-region-id RegionOne
    } >"$dir/keystone-manage.log" 2>&1 || { tail -n 40 "$dir/keystone-manage.log" >&2; die "keystone-manage failed (see $dir/keystone-manage.log)"; }

    # keystone.wsgi.api:application builds the app at import time: it reads the files named in
    # OS_KEYSTONE_CONFIG_FILES (else it looks in /etc/keystone) and lets oslo.config parse sys.argv,
    # which fails on gunicorn's options. So gunicorn gets no arguments at all and reads its settings
    # from ./gunicorn.conf.py (cwd = DIR). gunicorn >= 25.1 would also open a control socket shared by
    # every instance under ~/.gunicorn: disabled.
    cat > "$dir/gunicorn.conf.py" <<EOF
wsgi_app = "keystone.wsgi.api:application"
bind = ["127.0.0.1:$port"]
$server_conf
timeout = 120
graceful_timeout = 5
accesslog = "$dir/access.log"
errorlog = "$dir/gunicorn.log"
control_socket_disable = True
EOF
    # setsid: its own session, so the caller's signals and terminal don't reach it; all its output goes
    # to a file, so a caller that captures our output doesn't wait on it.
    (cd "$dir" && OS_KEYSTONE_CONFIG_FILES=$conf exec setsid "$VENV/bin/gunicorn" </dev/null >>"$dir/gunicorn.log" 2>&1) &
    local pid=$!
    echo "$pid" > "$dir/keystone.pid"

    local timeout=${KEYSTONE_START_TIMEOUT:-120} t0=$SECONDS code
    while :; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "--- $dir/gunicorn.log" >&2; tail -n 40 "$dir/gunicorn.log" >&2 || true
            echo "--- $dir/keystone.log" >&2; tail -n 40 "$dir/keystone.log" >&2 || true
            rm -f "$dir/keystone.pid"
            die "keystone (gunicorn) exited during start-up"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" 2>/dev/null || true)
        [ "$code" = 200 ] && break
        if [ $((SECONDS - t0)) -ge "$timeout" ]; then
            echo "--- $dir/gunicorn.log" >&2; tail -n 40 "$dir/gunicorn.log" >&2 || true
            echo "--- $dir/keystone.log" >&2; tail -n 40 "$dir/keystone.log" >&2 || true
            cmd_stop "$dir" >/dev/null 2>&1 || true
            die "keystone did not answer 200 on $url within ${timeout}s (last status: ${code:-none})"
        fi
        sleep 0.5
    done
    echo "keystone running: $url (pid $pid, dir $dir, $((SECONDS - t0))s to answer)"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: keystone.sh stop DIR"
    local dir=$1 pid
    if ! pid=$(running_pid "$dir"); then
        rm -f "$dir/keystone.pid"
        echo "keystone in $dir is not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        # gunicorn is the leader of its own process group (setsid): take the workers with it.
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/keystone.pid"
    echo "keystone in $dir stopped (pid $pid)"
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
