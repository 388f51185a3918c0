#!/usr/bin/env bash
# A real S3 server (Ceph RGW from Debian's packages) for the blob-store tests: a single-node Ceph cluster
# per directory (one ceph-mon, one BlueStore ceph-osd on a sparse file, radosgw with the beast front end),
# everything on 127.0.0.1.
#   scripts/s3.sh install          install Debian ceph-mon, ceph-osd, radosgw (bookworm: 16.2) when missing
#                                  (no recommends: no ceph-mgr). The packages start no daemon (no config).
#   scripts/s3.sh start DIR PORT   first time: create the cluster in DIR (config, keys, data, logs, pid files
#                                  all in DIR), start the daemons, S3 user with fixed keys, bucket; then
#                                  (every time) create the bucket if missing, do a signed PUT+DELETE, write
#                                  DIR/aws-config and DIR/s3.env (S3_ENDPOINT S3_BUCKET S3_REGION
#                                  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION AWS_ENDPOINT_URL
#                                  AWS_CONFIG_FILE; `source` it) and print the endpoint. Re-running while it
#                                  is up only re-checks it; on a stopped DIR it restarts the daemons on their
#                                  data (a new PORT is taken). A DIR whose first start did not finish is
#                                  wiped and rebuilt; a non-empty DIR this script did not create is refused.
#   scripts/s3.sh stop DIR         stop the daemons started from DIR (radosgw, osd, mon; SIGKILL after 20 s
#                                  each). Data is kept; rm -rf DIR wipes it.
# Environment (read when DIR is created, then saved in DIR/settings):
#   S3_BUCKET (imaged-test), S3_REGION (us-east-1), S3_ACCESS_KEY / S3_SECRET_KEY (fixed test keys),
#   S3_CEPH_MON_PORT (default: the first free port in 3301-3399; 3300 is Ceph's own default),
#   S3_CEPH_OSD_SIZE_GB (32: the sparse BlueStore file's apparent size, i.e. the capacity).
# Read on every start: S3_CEPH_PORT_MIN / S3_CEPH_PORT_MAX (6900-6999: the OSD's ports; Ceph's default is
#   6800-7300; instances may share the range, the OSD takes free ports), S3_START_TIMEOUT (300 s a step).
# Clients (RGW 16.2): path-style addressing; SigV4 (any signing region is accepted; sign with us-east-1);
#   CreateBucket with no LocationConstraint (only "default" is accepted); every PUT needs a Content-Length
#   (Transfer-Encoding: chunked gets 411; aws-chunked signed streaming works); the CompleteMultipartUpload
#   response's ETag is empty (HEAD the object for it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
MARK=.imaged-s3
RGW=client.rgw.a

die() { echo "s3.sh: $*" >&2; exit 1; }
log() { echo "s3.sh: $*"; }

cmd_install() {
    [ $# -eq 0 ] || die "usage: s3.sh install"
    # shellcheck source=SCRIPTDIR/lib/deps.sh
    source "$ROOT/scripts/lib/deps.sh"
    # Recommends would add ceph-mgr, ceph-mds, ceph-fuse and ~50 Python packages that we don't run.
    local aptconf
    aptconf=$(mktemp)
    { [ -f /etc/apt/apt.conf ] && echo '#include "/etc/apt/apt.conf";'; echo 'APT::Install-Recommends "false";'; } > "$aptconf"
    APT_CONFIG=$aptconf ensure_debian_packages ceph-mon ceph-osd radosgw curl </dev/null || { rm -f "$aptconf"; exit 1; }
    rm -f "$aptconf"
    local c
    for c in ceph ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool curl python3; do
        command -v "$c" >/dev/null 2>&1 || die "$c is missing after the install"
    done
    echo "ceph: $(ceph --version | sed 's/ (.*//')"
}

# ---------------------------------------------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# alive NAME: the daemon whose pid file is DIR/run/NAME.pid runs, and is ours (its command line names DIR).
alive() {
    local pid
    pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/"
}

show_logs() {
    local f
    for f in "$DIR"/log/*.log; do
        [ -s "$f" ] || continue
        echo "--- $f" >&2
        tail -n 25 "$f" >&2
    done
    return 0
}

fail() { show_logs; die "$*"; }

# wait_for SECONDS WHAT COMMAND...: until COMMAND succeeds
wait_for() {
    local limit=$1 what=$2 t0=$SECONDS; shift 2
    until "$@" >/dev/null 2>&1; do
        [ $((SECONDS - t0)) -lt "$limit" ] || fail "$what: not ready after ${limit}s (logs in $DIR/log)"
        sleep 0.5
    done
}

http_answers() {
    local code
    code=$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' "$ENDPOINT/" 2>/dev/null || true)
    [ -n "$code" ] && [ "$code" != 000 ]
}

osd_up() { "${CEPH[@]}" osd dump 2>/dev/null | grep -q '^osd\.0 up *in'; }

# write_conf: DIR/ceph.conf from DIR/settings and the current PORT (rewritten on every start).
write_conf() {
    cat >"$CONF" <<EOF
# written by scripts/s3.sh start; rewritten on every start
[global]
fsid = $FSID
mon_host = [v2:127.0.0.1:$MON_PORT]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv4 = true
ms_bind_ipv6 = false
ms_bind_msgr1 = false
ms_bind_port_min = ${S3_CEPH_PORT_MIN:-6900}
ms_bind_port_max = ${S3_CEPH_PORT_MAX:-6999}
auth_cluster_required = cephx
auth_service_required = cephx
auth_client_required = cephx
keyring = $DIR/keyring
run_dir = $DIR/run
admin_socket = $DIR/run/\$cluster-\$name.asok
pid_file = $DIR/run/\$name.pid
log_file = $DIR/log/\$name.log
log_to_stderr = false
err_to_stderr = true
crash_dir = $DIR/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_warn_on_insecure_global_id_reclaim_allowed = false
auth_allow_insecure_global_id_reclaim = false

[mon]
mon_data = $DIR/mon/\$cluster-\$id
mon_cluster_log_file = $DIR/log/cluster.log
# percent of free disk below which the mon warns / stops (defaults 30 / 5)
mon_data_avail_warn = 2
mon_data_avail_crit = 1
# commit map changes (pool creation, OSD boot) after 0.1 s instead of 1 s: a first start takes 9 s, not 22 s
paxos_propose_interval = 0.1
paxos_min_wait = 0.01

[osd]
osd_data = $DIR/osd/\$cluster-\$id
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = $((OSD_SIZE_GB * 1024 * 1024 * 1024))
osd_memory_target = 1073741824
# a noisy 2-core machine: the single OSD must not be marked down for a slow heartbeat
osd_heartbeat_grace = 60

[$RGW]
rgw_frontends = beast endpoint=127.0.0.1:$PORT
rgw_data = $DIR/rgw
rgw_thread_pool_size = 64
# free deleted objects' data after ~1 min instead of 2 h (the BlueStore file only grows)
rgw_gc_obj_min_wait = 60
rgw_gc_processor_period = 60
EOF
}

# s3req METHOD PATH [BODY]: a SigV4-signed request (python3 stdlib); prints the HTTP status, body to stderr.
s3req() {
    python3 - "$ENDPOINT" "$REGION" "$ACCESS_KEY" "$SECRET_KEY" "$@" <<'PY'
import datetime, hashlib, hmac, http.client, sys, urllib.parse
ep, region, ak, sk, method, path = sys.argv[1:7]
body = sys.argv[7].encode() if len(sys.argv) > 7 else b""
u = urllib.parse.urlparse(ep)
amz = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
day = amz[:8]
ph = hashlib.sha256(body).hexdigest()
h = {"host": u.netloc, "x-amz-content-sha256": ph, "x-amz-date": amz}
signed = ";".join(sorted(h))
creq = "\n".join([method, urllib.parse.quote(path), "", "".join(f"{k}:{h[k]}\n" for k in sorted(h)), signed, ph])
scope = f"{day}/{region}/s3/aws4_request"
sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(creq.encode()).hexdigest()])
key = ("AWS4" + sk).encode()
for m in (day, region, "s3", "aws4_request"):
    key = hmac.new(key, m.encode(), hashlib.sha256).digest()
sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
h["authorization"] = f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, SignedHeaders={signed}, Signature={sig}"
c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
c.request(method, urllib.parse.quote(path), body=body, headers=h)
r = c.getresponse()
sys.stderr.write(r.read().decode(errors="replace")[:2000] + "\n")
print(r.status)
PY
}

# stop_daemons: radosgw, then the OSD, then the mon (each SIGTERM, SIGKILL after 20 s).
stop_daemons() {
    local name pid n=0
    for name in "$RGW" osd.0 mon.a; do
        if alive "$name"; then
            pid=$(cat "$DIR/run/$name.pid")
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            if kill -0 "$pid" 2>/dev/null; then
                echo "s3.sh: $name (pid $pid) ignored SIGTERM for 20 s: SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
            n=$((n + 1))
        fi
        rm -f "$DIR/run/$name.pid"
    done
    STOPPED=$n
}

cmd_start() {
    [ $# -eq 2 ] || die "usage: s3.sh start DIR PORT"
    DIR=$1 PORT=$2
    case "$PORT" in ''|*[!0-9]*) die "bad port: $PORT" ;; esac
    if [ "$PORT" -lt 1024 ] || [ "$PORT" -gt 65535 ]; then die "port $PORT: use 1024-65535"; fi
    local c
    for c in ceph ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool curl; do
        command -v "$c" >/dev/null 2>&1 || die "$c not found; run scripts/s3.sh install first"
    done
    if [ -e "$DIR" ] && [ ! -e "$DIR/$MARK" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
        die "refusing to use $DIR: not empty and not made by s3.sh"
    fi
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
    case "$DIR" in *[!A-Za-z0-9_./-]*) die "DIR must be a plain path ([A-Za-z0-9_./-]): $DIR" ;; esac
    # the admin sockets DIR/run/ceph-client.rgw.a.asok are unix sockets (107 bytes at most)
    [ ${#DIR} -le 80 ] || die "DIR path too long (admin sockets are unix sockets): $DIR"
    touch "$DIR/$MARK"
    CONF=$DIR/ceph.conf
    ENDPOINT=http://127.0.0.1:$PORT
    CEPH=(ceph -c "$CONF" --connect-timeout 30)
    local timeout=${S3_START_TIMEOUT:-300} t0=$SECONDS

    if [ -e "$DIR/.initialized" ]; then
        # shellcheck source=/dev/null
        source "$DIR/settings"
    else
        if [ -d "$DIR/run" ]; then
            log "$DIR: an earlier first start did not finish; rebuilding"
            stop_daemons
        fi
        find "$DIR" -mindepth 1 -maxdepth 1 ! -name "$MARK" -exec rm -rf {} +
        FSID=$(python3 -c 'import uuid; print(uuid.uuid4())')
        if [ -n "${S3_CEPH_MON_PORT:-}" ]; then
            MON_PORT=$S3_CEPH_MON_PORT
        else
            MON_PORT=
            for c in $(seq 3301 3399); do
                if [ "$c" != "$PORT" ] && ! port_in_use "$c"; then MON_PORT=$c; break; fi
            done
            [ -n "$MON_PORT" ] || die "no free port in 3301-3399 for the ceph monitor; set S3_CEPH_MON_PORT"
        fi
        REGION=${S3_REGION:-us-east-1}
        BUCKET=${S3_BUCKET:-imaged-test}
        ACCESS_KEY=${S3_ACCESS_KEY:-IMAGEDTESTACCESSKEY1}
        SECRET_KEY=${S3_SECRET_KEY:-imagedtestsecretkey000000000000000000001}
        OSD_SIZE_GB=${S3_CEPH_OSD_SIZE_GB:-32}
        for c in "$REGION" "$BUCKET" "$ACCESS_KEY" "$SECRET_KEY" "$MON_PORT" "$OSD_SIZE_GB"; do
            case "$c" in ''|*[!A-Za-z0-9._+/=-]*) die "bad setting value: '$c'" ;; esac
        done
        printf 'FSID=%s\nMON_PORT=%s\nREGION=%s\nBUCKET=%s\nACCESS_KEY=%s\nSECRET_KEY=%s\nOSD_SIZE_GB=%s\n' \
            "$FSID" "$MON_PORT" "$REGION" "$BUCKET" "$ACCESS_KEY" "$SECRET_KEY" "$OSD_SIZE_GB" >"$DIR/settings"
        mkdir -p "$DIR/run" "$DIR/log" "$DIR/mon/ceph-a" "$DIR/osd/ceph-0" "$DIR/crash" "$DIR/rgw"
    fi
    [ "$MON_PORT" != "$PORT" ] || die "port $PORT is the ceph monitor's port in $DIR"

    if alive "$RGW"; then
        # already up: on which port?
        if ! grep -qx "rgw_frontends = beast endpoint=127.0.0.1:$PORT" "$CONF"; then
            die "the S3 server in $DIR is already running on another port ($(grep -o '127.0.0.1:[0-9]*' <<<"$(grep rgw_frontends "$CONF")"))"
        fi
        log "radosgw in $DIR is already running"
    else
        port_in_use "$PORT" && die "port $PORT is already in use on 127.0.0.1"
        alive mon.a || ! port_in_use "$MON_PORT" || die "the ceph monitor's port $MON_PORT is already in use on 127.0.0.1"
        write_conf
    fi
    export CEPH_CONF=$CONF

    if [ ! -e "$DIR/.initialized" ]; then
        log "creating a single-node Ceph cluster in $DIR (mon 127.0.0.1:$MON_PORT)"
        {
            ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *'
            ceph-authtool "$DIR/keyring" --gen-key -n client.admin \
                --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *'
            ceph-authtool "$DIR/keyring" --gen-key -n osd.0 \
                --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *'
            ceph-authtool "$DIR/keyring" --gen-key -n "$RGW" \
                --cap mon 'allow rw' --cap osd 'allow rwx' --cap mgr 'allow rw'
            monmaptool --create --fsid "$FSID" --addv a "[v2:127.0.0.1:$MON_PORT]" "$DIR/monmap"
            ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring"
        } >>"$DIR/log/setup.log" 2>&1 || fail "creating the monitor failed"
    fi
    alive mon.a || ceph-mon -c "$CONF" -i a 2>>"$DIR/log/mon-start.log" || fail "ceph-mon did not start"
    wait_for "$timeout" "ceph monitor" "${CEPH[@]}" -s

    if [ ! -e "$DIR/osd/ceph-0/fsid" ]; then
        local osd_uuid
        osd_uuid=$(python3 -c 'import uuid; print(uuid.uuid4())')
        { "${CEPH[@]}" osd new "$osd_uuid" 0 && ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid"; } \
            >>"$DIR/log/setup.log" 2>&1 || fail "creating the OSD failed"
    fi
    alive osd.0 || ceph-osd -c "$CONF" -i 0 2>>"$DIR/log/osd-start.log" || fail "ceph-osd did not start"
    wait_for "$timeout" "ceph osd.0 up" osd_up

    # radosgw creates its pools on its first start.
    alive "$RGW" || radosgw -c "$CONF" -n "$RGW" 2>>"$DIR/log/rgw-start.log" || fail "radosgw did not start"
    wait_for "$timeout" "radosgw on $ENDPOINT" http_answers

    if ! radosgw-admin -c "$CONF" user info --uid=imaged >/dev/null 2>&1; then
        radosgw-admin -c "$CONF" user create --uid=imaged --display-name="imaged tests" \
            --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >>"$DIR/log/setup.log" 2>&1 \
            || fail "radosgw-admin user create failed"
    fi
    touch "$DIR/.initialized"

    # The bucket (RGW answers 200 for a bucket one already owns), then a PUT and a DELETE: the first PUT
    # of a new cluster creates the data pool (2-3 s), better here than in the first test.
    local code
    code=$(s3req PUT "/$BUCKET" 2>"$DIR/log/bucket.out") || true
    case "$code" in
        200|409) ;;
        *) cat "$DIR/log/bucket.out" >&2; fail "creating bucket $BUCKET: HTTP $code" ;;
    esac
    code=$(s3req PUT "/$BUCKET/.s3-sh-warmup" warm 2>>"$DIR/log/bucket.out") || true
    [ "$code" = 200 ] || { cat "$DIR/log/bucket.out" >&2; fail "warm-up PUT: HTTP $code"; }
    code=$(s3req DELETE "/$BUCKET/.s3-sh-warmup" 2>>"$DIR/log/bucket.out") || true
    [ "$code" = 204 ] || { cat "$DIR/log/bucket.out" >&2; fail "warm-up DELETE: HTTP $code"; }

    # For the aws CLI and boto3 (AWS_CONFIG_FILE): path-style, SigV4, no "flexible checksums" (RGW 16
    # predates the trailing-checksum uploads that newer SDKs send by default).
    cat >"$DIR/aws-config" <<EOF
[default]
region = $REGION
request_checksum_calculation = when_required
response_checksum_validation = when_required
s3 =
    addressing_style = path
    signature_version = s3v4
EOF
    cat >"$DIR/s3.env" <<EOF
export S3_ENDPOINT=$ENDPOINT
export S3_BUCKET=$BUCKET
export S3_REGION=$REGION
export AWS_ACCESS_KEY_ID=$ACCESS_KEY
export AWS_SECRET_ACCESS_KEY=$SECRET_KEY
export AWS_DEFAULT_REGION=$REGION
export AWS_ENDPOINT_URL=$ENDPOINT
export AWS_CONFIG_FILE=$DIR/aws-config
EOF
    log "S3 (Ceph RGW $(ceph --version | awk '{print $3}')) ready on $ENDPOINT in $((SECONDS - t0))s: bucket $BUCKET, region $REGION, env in $DIR/s3.env"
    echo "$ENDPOINT"
}

cmd_stop() {
    [ $# -eq 1 ] || die "usage: s3.sh stop DIR"
    DIR=$1
    if [ ! -e "$DIR/$MARK" ]; then
        echo "no S3 server in $DIR"
        return 0
    fi
    DIR=$(cd "$DIR" && pwd)
    stop_daemons
    if [ "$STOPPED" -eq 0 ]; then echo "S3 server in $DIR is not running"; else echo "S3 server in $DIR stopped ($STOPPED processes)"; fi
}

case "${1:-}" in
    install) shift; cmd_install "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) echo "usage: $0 install | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
