#!/usr/bin/env bash
# A private RabbitMQ (Debian's rabbitmq-server) for the notification tests, run as the current user with its
# own node name, ports, data, logs and Erlang cookie, so it clashes with no other broker on the machine.
#   scripts/rabbitmq.sh start DIR PORT [DIST_PORT]
#                                        start node imaged<PORT>@localhost: AMQP on 127.0.0.1:PORT, Erlang
#                                        distribution on DIST_PORT (default PORT+20000, or PORT-20000 when that
#                                        is above 65535), data and logs under DIR; waits until it
#                                        accepts AMQP (guest/guest from loopback). Prints amqp://guest:guest@127.0.0.1:PORT/
#   scripts/rabbitmq.sh stop DIR         stop that node (data kept; rm -rf DIR wipes it)
# Environment: RABBITMQ_START_TIMEOUT (default 60 s).
set -euo pipefail

die() { echo "rabbitmq.sh: $*" >&2; exit 1; }
SBIN=/usr/lib/rabbitmq/bin
[ -x "$SBIN/rabbitmq-server" ] || SBIN=/usr/sbin

# The node's environment: everything under DIR (HOME too: the Erlang cookie is the node's own).
node_env() {
    local dir=$1 port=$2 dist=${3:-}
    if [ -z "$dist" ]; then
        dist=$((port + 20000)); [ "$dist" -le 65535 ] || dist=$((port - 20000))
    fi
    export HOME="$dir"
    export ERL_CRASH_DUMP="$dir/log/erl_crash.dump"
    export RABBITMQ_NODENAME="imaged$port@localhost"
    export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
    export RABBITMQ_NODE_PORT="$port"
    export RABBITMQ_DIST_PORT="$dist"
    export RABBITMQ_MNESIA_BASE="$dir/mnesia"
    export RABBITMQ_LOG_BASE="$dir/log"
    export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
    export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
    export RABBITMQ_CONFIG_FILE="$dir/rabbitmq"  # rabbitmq.conf (may be absent)
    export RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
}

cmd_start() {
    [ $# -eq 2 ] || [ $# -eq 3 ] || die "usage: rabbitmq.sh start DIR PORT [DIST_PORT]"
    local dir port dist=${3:-}
    mkdir -p "$1"
    dir=$(cd "$1" && pwd); port=$2
    mkdir -p "$dir/mnesia" "$dir/log"
    [ -f "$dir/enabled_plugins" ] || echo "[]." >"$dir/enabled_plugins"
    touch "$dir/rabbitmq-env.conf"
    echo "$port" >"$dir/port"
    echo "$dist" >"$dir/dist-port"
    node_env "$dir" "$port" "$dist"
    nohup "$SBIN/rabbitmq-server" >"$dir/log/console.log" 2>&1 &
    echo $! >"$dir/server.pid"
    local deadline=$((SECONDS + ${RABBITMQ_START_TIMEOUT:-60}))
    until "$SBIN/rabbitmqctl" -q await_startup --timeout 5 >/dev/null 2>&1; do
        kill -0 "$(cat "$dir/server.pid")" 2>/dev/null || { tail -20 "$dir/log/console.log" >&2; die "the broker exited"; }
        [ $SECONDS -lt $deadline ] || { tail -20 "$dir/log/console.log" >&2; die "the broker did not start in time"; }
        sleep 0.5
    done
    echo "amqp://guest:guest@127.0.0.1:$port/"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: rabbitmq.sh stop DIR"
    local dir port
    dir=$(cd "$1" && pwd)
    [ -f "$dir/port" ] || return 0
    port=$(cat "$dir/port")
    node_env "$dir" "$port" "$(cat "$dir/dist-port" 2>/dev/null || true)"
    "$SBIN/rabbitmqctl" -q stop >/dev/null 2>&1 || true
    local pid
    pid=$(cat "$dir/server.pid" 2>/dev/null || true)
    if [ -n "$pid" ]; then
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill "$pid" 2>/dev/null || true
    fi
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) die "usage: rabbitmq.sh start DIR PORT [DIST_PORT] | stop DIR" ;;
esac
