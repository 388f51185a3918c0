#!/usr/bin/env bash
# OpenStack's own conformance suite against imaged: Tempest's tempest.api.image and glance-tempest-plugin
# (Glance's secure-RBAC tests), both from PyPI, against a real Keystone.
#   scripts/tempest.sh install          create/refresh .venv-tempest from tests/tempest/requirements.txt
#                                       (skipped when the requirements' sha256 stamp matches)
#   scripts/tempest.sh run [REGEX...]   start Keystone (scripts/keystone.sh), PostgreSQL (scripts/postgres.sh),
#                                       imaged A (RegionOne, two file stores: fast + cheap) and A2 (a second
#                                       node on A's PostgreSQL catalog and store directories, devstack's
#                                       `image_remote` service: Tempest's cross-worker tests), imaged B
#                                       (RegionTwo, SQLite, one store: the remote region for glance-download),
#                                       a local HTTP server for web-download,
#                                       write tempest.conf, run the tests matching any REGEX (default: all of
#                                       tempest.api.image and glance_tempest_plugin, concurrency 2) and print
#                                       passed / failed / skipped, every skip's reason, every failure's first
#                                       error line. Exit status 1 when any test failed.
#   scripts/tempest.sh ci               install + run; failures listed in tests/tempest/known-failures.txt
#                                       (regex a line, `# reason`) are expected: exit 1 only on others, and
#                                       listed tests that now pass are reported; a skip not matched by
#                                       tests/tempest/allowed-skips.txt (Nova, an HTTP store, options Glance
#                                       leaves off by default) also fails
# Environment: IMAGED_BIN (default .build/debug/imaged), TEMPEST_DIR (an empty or new directory to work in and
#   keep; default: a new temp dir, removed at the end unless TEMPEST_KEEP=1), TEMPEST_CONCURRENCY (default 2), TEMPEST_BUILD_TIMEOUT (default 60: seconds
#   Tempest waits for an image state).
# Every server started here is stopped on exit (trap).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV=$ROOT/.venv-tempest
REQ=$ROOT/tests/tempest/requirements.txt
KNOWN=$ROOT/tests/tempest/known-failures.txt
ALLOWED_SKIPS=$ROOT/tests/tempest/allowed-skips.txt
ADMIN_PASSWORD=tempest-admin-secret
SERVICE_PASSWORD=imaged-tempest-service-secret
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1

die() { echo "tempest.sh: $*" >&2; exit 1; }
log() { echo "[tempest.sh $(date -u +%H:%M:%S)] $*"; }

# shellcheck source=SCRIPTDIR/lib/venv.sh
source "$ROOT/scripts/lib/venv.sh"
cmd_install() {
    ensure_venv tempest "$VENV" "$REQ" 'import tempest, glance_tempest_plugin, subunit, testtools' \
        '^(tempest|glance-tempest-plugin) ' tempest
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The pids of what we started, stopped by cleanup (never by name).
PIDS=()
WORK=""
KS_DIR=""
PG_DIR=""
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "$KS_DIR" ]; then "$ROOT/scripts/keystone.sh" stop "$KS_DIR" >/dev/null 2>&1 || true; fi
    if [ -n "$PG_DIR" ]; then
        "$ROOT/scripts/postgres.sh" stop "$PG_DIR" >/dev/null 2>&1 || true
        [ "${TEMPEST_KEEP:-0}" = 1 ] || rm -rf "$PG_DIR"
    fi
    if [ -n "$WORK" ] && [ -z "${TEMPEST_DIR:-}" ] && [ "${TEMPEST_KEEP:-0}" != 1 ]; then rm -rf "$WORK"; fi
}

# start_imaged NAME PORT ARGS...: imaged in Keystone mode, data under $WORK/NAME, log in $WORK/NAME.log
start_imaged() {
    local name=$1 port=$2; shift 2
    mkdir -p "$WORK/$name"
    setsid "$IMAGED" serve --data-dir "$WORK/$name/data" --listen "127.0.0.1:$port" --log-level info \
        --keystone-url "$KS_URL" --keystone-user imaged --keystone-project service \
        --keystone-password-file "$WORK/keystone-password" "$@" </dev/null >"$WORK/$name.log" 2>&1 &
    PIDS+=($!)
    local pid=$! t0=$SECONDS
    until curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz"; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$WORK/$name.log" >&2; die "imaged $name exited during start-up"; }
        [ $((SECONDS - t0)) -lt 60 ] || { tail -n 30 "$WORK/$name.log" >&2; die "imaged $name not ready in 60 s"; }
        sleep 0.2
    done
}

write_tempest_conf() {
    local conf=$1
    cat > "$conf" <<EOF
[DEFAULT]
log_file = $WORK/tempest.log
use_stderr = false

[auth]
# Tempest creates a project and users per test class from the Keystone admin, as in the gate.
use_dynamic_credentials = true
admin_username = admin
admin_password = $ADMIN_PASSWORD
admin_project_name = admin
admin_domain_name = Default
admin_system = all
create_isolated_networks = false

[identity]
uri_v3 = $KS_URL
auth_version = v3
region = RegionOne
# keystone.sh's Keystone speaks plain HTTP on loopback
disable_ssl_certificate_validation = true

[identity-feature-enabled]
api_v2 = false

[service_available]
glance = true
nova = false
cinder = false
neutron = false
swift = false
horizon = false

[image]
region = RegionOne
endpoint_type = publicURL
# devstack's second Glance worker: imaged A2, on A's catalog and stores
alternate_image_endpoint = image_remote
alternate_image_endpoint_type = publicURL
build_timeout = ${TEMPEST_BUILD_TIMEOUT:-60}
build_interval = 1
# web-download and task imports read these from the local HTTP server (no internet in CI)
http_image = $HTTP_URL/cirros.qcow2
http_qcow2_image = $HTTP_URL/cirros-disk.qcow2
# imaged has a node-local cache (Glance: image_cache_dir set)
image_caching_enabled = true
container_formats = bare,ami,ari,aki,ovf,ova
disk_formats = qcow2,raw,ami,ari,aki,vhd,vmdk,vdi,iso,vhdx
hashing_algorithm = sha512

[image-feature-enabled]
import_image = true
os_glance_reserved = true
# Glance's defaults: show_multiple_locations off, no conversion, no store weights
manage_locations = false
# Glance's http store: imaged serves the bytes of an image whose location is an http(s) URL (locations API)
http_store_enabled = true
image_conversion = false
store_weight_enabled = false
image_format_enforcement = true
do_secure_hash = true

[enforce_scope]
# Glance's secure RBAC (enforce_new_defaults + enforce_scope), which glance-tempest-plugin's tests need
glance = true
keystone = false

[glance_api]
# Glance 33 has no system scope for images either
system_scope_supported = false
EOF
}

cmd_run() {
    IMAGED=${IMAGED_BIN:-.build/debug/imaged}
    case "$IMAGED" in /*) ;; *) IMAGED=$ROOT/$IMAGED ;; esac
    [ -x "$IMAGED" ] || die "imaged binary not found at $IMAGED (set IMAGED_BIN or run swift build)"
    [ -x "$VENV/bin/tempest" ] || die "no tempest venv; run scripts/tempest.sh install first"
    # shellcheck source=SCRIPTDIR/lib/deps.sh
    source "$ROOT/scripts/lib/deps.sh"
    ensure_command curl curl </dev/null
    ensure_command qemu-img qemu-utils </dev/null
    local regex known_arg=()
    if [ $# -gt 0 ]; then regex=$(IFS='|'; echo "$*"); else regex='^(tempest\.api\.image|glance_tempest_plugin\.tests)'; fi
    if [ "${TEMPEST_CI:-0}" = 1 ]; then known_arg=(--known-failures "$KNOWN" --allowed-skips "$ALLOWED_SKIPS"); fi

    if [ -n "${TEMPEST_DIR:-}" ]; then
        # a used directory holds another run's Keystone database and workspace
        [ -z "$(ls -A "$TEMPEST_DIR" 2>/dev/null)" ] || die "TEMPEST_DIR $TEMPEST_DIR is not empty"
        WORK=$TEMPEST_DIR; mkdir -p "$WORK"
    else WORK=$(mktemp -d /tmp/imaged-tempest.XXXXXX); fi
    WORK=$(cd "$WORK" && pwd)
    trap cleanup EXIT
    trap 'exit 130' INT TERM
    log "working in $WORK (IMAGED_BIN=$IMAGED)"

    "$ROOT/scripts/keystone.sh" install >/dev/null
    "$ROOT/scripts/postgres.sh" install >/dev/null
    local ks_port a_port a2_port b_port http_port pg_port
    ks_port=$(free_port); a_port=$(free_port); a2_port=$(free_port); b_port=$(free_port); http_port=$(free_port)
    pg_port=$(free_port)
    KS_DIR=$WORK/keystone
    KS_URL=http://127.0.0.1:$ks_port/v3
    # one thread: Tempest creates and deletes projects in parallel, and SQLite refuses concurrent writers
    KEYSTONE_THREADS=1 KEYSTONE_ADMIN_PASSWORD=$ADMIN_PASSWORD "$ROOT/scripts/keystone.sh" start "$KS_DIR" "$ks_port"
    local a_url=http://127.0.0.1:$a_port a2_url=http://127.0.0.1:$a2_port b_url=http://127.0.0.1:$b_port
    python3 "$ROOT/tests/tempest/keystone_setup.py" "$KS_URL" "$ADMIN_PASSWORD" "$SERVICE_PASSWORD" \
        "RegionOne=$a_url" "RegionTwo=$b_url" "image_remote:RegionOne=$a2_url"
    # postgres.sh's directory must be reachable by the postgres user, which a mktemp -d $WORK is not
    PG_DIR=$(mktemp -d /tmp/imaged-tempest-pg.XXXXXX)
    chmod 755 "$PG_DIR"
    "$ROOT/scripts/postgres.sh" start "$PG_DIR" "$pg_port" >/dev/null
    local catalog
    catalog=$(cat "$PG_DIR/url")
    (umask 077; echo "$SERVICE_PASSWORD" > "$WORK/keystone-password")

    # What web-download and the task API fetch: small qcow2 images on a local HTTP server.
    mkdir -p "$WORK/http"
    qemu-img create -q -f qcow2 "$WORK/http/cirros.qcow2" 64M
    qemu-img create -q -f qcow2 "$WORK/http/cirros-disk.qcow2" 32M
    (cd "$WORK/http" && exec setsid python3 -m http.server --bind 127.0.0.1 "$http_port" </dev/null >"$WORK/http.log" 2>&1) &
    PIDS+=($!)
    HTTP_URL=http://127.0.0.1:$http_port
    local guard=(--import-allow-cidr 127.0.0.1/32 --import-allow-port "$http_port" --import-allow-port "$a_port"
                 --import-allow-port "$a2_port" --import-allow-port "$b_port")
    # A and A2: one catalog, one pair of store directories (a shared file system, as two Glance workers
    # with one filesystem_store_datadir); each keeps its own cache and audit log under its data directory.
    local region_one=(--catalog "$catalog" --store "fast=file:$WORK/stores/fast" --store "cheap=file:$WORK/stores/cheap"
                      --default-store fast "${guard[@]}")
    mkdir -p "$WORK/stores/fast" "$WORK/stores/cheap"
    start_imaged region-two "$b_port" "${guard[@]}"
    # A first: it migrates the catalog and loads the shipped metadefs before A2 opens it
    start_imaged region-one "$a_port" "${region_one[@]}"
    start_imaged region-one-worker2 "$a2_port" "${region_one[@]}"
    for _ in $(seq 1 50); do curl -sf -o /dev/null "$HTTP_URL/cirros.qcow2" && break; sleep 0.1; done
    log "keystone $KS_URL, postgres $pg_port, imaged A $a_url + A2 $a2_url (RegionOne: fast, cheap), imaged B $b_url (RegionTwo), http $HTTP_URL"

    # tempest keeps a registry of workspace names in ~/.tempest and refuses a name it holds: a HOME of our
    # own keeps runs (and the operator's own workspaces) apart
    (cd "$WORK" && HOME=$WORK "$VENV/bin/tempest" init ws >"$WORK/tempest-init.log" 2>&1) \
        || { tail -n 5 "$WORK/tempest-init.log" >&2; die "tempest init failed"; }
    write_tempest_conf "$WORK/ws/etc/tempest.conf"
    log "tempest run --regex '$regex' --concurrency ${TEMPEST_CONCURRENCY:-2}"
    local t0=$SECONDS rc=0
    (cd "$WORK/ws" && "$VENV/bin/tempest" run --regex "$regex" --concurrency "${TEMPEST_CONCURRENCY:-2}") \
        >"$WORK/tempest-run.log" 2>&1 || rc=$?
    log "tempest run exited $rc after $((SECONDS - t0)) s (full output: $WORK/tempest-run.log, log: $WORK/tempest.log)"
    local summary_rc=0
    (cd "$WORK/ws" && "$VENV/bin/stestr" last --subunit) \
        | "$VENV/bin/python" "$ROOT/tests/tempest/summary.py" --summary-file "$WORK/summary.txt" "${known_arg[@]}" \
        || summary_rc=$?
    if [ "${TEMPEST_CI:-0}" = 1 ]; then return "$summary_rc"; fi
    return "$rc"
}

cmd_ci() {
    local t0=$SECONDS rc=0
    cmd_install
    TEMPEST_CI=1 cmd_run "$@" || rc=$?
    log "scripts/tempest.sh ci took $((SECONDS - t0)) s (exit $rc)"
    return "$rc"
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    run) shift; cmd_run "$@" ;;
    ci) shift; cmd_ci "$@" ;;
    *) echo "usage: $0 install | run [REGEX...] | ci" >&2; exit 2 ;;
esac
