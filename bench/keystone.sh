#!/usr/bin/env bash
# What Keystone token validation costs: the catalog benchmark's figures (GET one image, list 25,
# create) with a static token and with a real Keystone token (warm cache), on the same server and
# catalog, alternating which goes first in each round. The static-token figure is the reference.
#
#   bench/keystone.sh                        # release build, then ~10 min
#   IMAGED_BIN=path/to/imaged bench/keystone.sh
#
# Knobs: RUNS=5 DURATION=10 CONNS=32 THREADS=2 TARGET_IMAGES=20000 PORT=19394 KS_PORT=19395
# Needs .venv (scripts/test.sh makes it) for the provisioning client; installs .venv-keystone,
# wrk, sqlite3 and curl when missing. Results: bench/results/keystone-<UTC time>/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export BENCH_DIR=$BENCH

RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
TARGET_IMAGES=${TARGET_IMAGES:-20000}
PORT=${PORT:-19394}
KS_PORT=${KS_PORT:-19395}
URL=http://127.0.0.1:$PORT
KS_URL=http://127.0.0.1:$KS_PORT/v3


# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, wait_for_healthz, release_imaged, ensure_command
latency_results keystone

ensure_command wrk wrk
ensure_command sqlite3 sqlite3
ensure_command curl curl
[ -x .venv/bin/python ] && .venv/bin/python -c 'import openstack, requests' 2>/dev/null \
    || die ".venv with openstacksdk is missing: run scripts/test.sh once (it creates it)"
scripts/keystone.sh install >&2

release_imaged "$OUT/build.log" || die "no binary"
[ -x "$IMAGED_BIN" ] || die "no executable at $IMAGED_BIN"

DATA=$(mktemp -d "${TMPDIR:-/tmp}/imaged-kbench.XXXXXX")
KS_DIR=$DATA/keystone
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    scripts/keystone.sh stop "$KS_DIR" >/dev/null 2>&1 || true
    rm -rf "$DATA"
}
trap cleanup EXIT
curl -s -o /dev/null "$URL/healthz" && die "something already answers on $URL (set PORT=...)"

log "starting Keystone on $KS_URL"
scripts/keystone.sh start "$KS_DIR" "$KS_PORT" > "$OUT/keystone-start.log" 2>&1 || { cat "$OUT/keystone-start.log" >&2; die "keystone did not start"; }
.venv/bin/python - "$KS_URL" > "$OUT/keystone.json" <<'PY'
import json, sys
sys.path.insert(0, "tests/e2e")
import keystone_env as k
url = sys.argv[1]
info = k.provision(url, "admin-secret")
info["bench_token"] = k.token(url, "alpha-admin", info["users"]["alpha-admin"]["password"], "alpha")
print(json.dumps(info))
PY
field() { .venv/bin/python -c "import json,sys; d=json.load(open('$OUT/keystone.json')); print($1)"; }
KTOKEN=$(field 'd["bench_token"]')
PROJECT=$(field 'd["projects"]["alpha"]')
SERVICE_PASSWORD=$(field 'd["service"]["password"]')
printf '%s\n' "$SERVICE_PASSWORD" > "$DATA/ks-password"; chmod 600 "$DATA/ks-password"
# The static token stands for the same project and role as the Keystone token.
printf '{"tokens": [{"token": "benchtok", "user_id": "u-static", "project_id": "%s", "roles": ["admin"]}]}\n' "$PROJECT" > "$DATA/tokens.json"

"$IMAGED_BIN" serve --data-dir "$DATA/imaged" --listen "127.0.0.1:$PORT" --token-file "$DATA/tokens.json" \
    --keystone-url "$KS_URL" --keystone-password-file "$DATA/ks-password" --keystone-cache-seconds 300 \
    --durability normal --log-level warning > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_for_healthz "$URL" "$SERVER_PID" "$OUT/server.log" || die "imaged did not start"
DB=$DATA/imaged/catalog.sqlite
count() { sqlite3 -batch "$DB" 'SELECT count(*) FROM images'; }

log "seeding $TARGET_IMAGES images (static token)"
while [ "$(count)" -lt "$TARGET_IMAGES" ]; do
    env BENCH_TOKEN=benchtok BENCH_TAG="seed$RANDOM" wrk -t"$THREADS" -c"$CONNS" -d10s --timeout 10s -s "$BENCH/create.lua" "$URL/" \
        > "$OUT/raw/seed.txt" 2>&1 || die "seeding failed"
done
sqlite3 -batch "$DB" "SELECT id FROM images WHERE status = 'queued'" > "$OUT/ids.txt"
log "catalog: $(count) images"

for tok in benchtok "$KTOKEN"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $tok" "$URL/v2/images/$(head -1 "$OUT/ids.txt")")
    [ "$code" = 200 ] || die "probe GET answered $code"
done
sleep 2  # gunicorn writes its access log lines asynchronously: let the probe's validation land first
validations_before=$(grep -c 'GET /v3/auth/tokens' "$KS_DIR/access.log" || true)

LIST='/v2/images?status=queued&sort=created_at:desc&limit=25'
for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then order="static keystone"; else order="keystone static"; fi
    for mode in $order; do
        if [ "$mode" = static ]; then tok=benchtok; else tok=$KTOKEN; fi
        run_wrk "get_$mode" "$r" get_one.lua BENCH_TOKEN="$tok" BENCH_IDS="$OUT/ids.txt"
        run_wrk "list_$mode" "$r" list.lua BENCH_TOKEN="$tok" BENCH_LIST_PATH="$LIST"
        run_wrk "create_$mode" "$r" create.lua BENCH_TOKEN="$tok" BENCH_TAG="$mode$r"
    done
done
sleep 2
validations_after=$(grep -c 'GET /v3/auth/tokens' "$KS_DIR/access.log" || true)

{
    echo "Keystone token (warm cache) vs static token, same server and catalog; $RUNS rounds x ${DURATION}s, $CONNS connections; $BUILD"
    printf '%-30s %-14s %-16s %-10s %s\n' figure "static token" "Keystone token" "ratio" "target (>= 0.90)"
    for fig in get list create; do
        s=$(col "${fig}_static" 3 | median); k=$(col "${fig}_keystone" 3 | median); q=$(ratio "${fig}_keystone" "${fig}_static" 3)
        verdict=$(awk -v q="$q" 'BEGIN { print (q >= 0.90 ? "PASS" : "FAIL") }')
        printf '%-30s %-14s %-16s %-10s %s\n' "$fig req/s (median)" "$s" "$k" "$q" "$verdict"
        s=$(col "${fig}_static" 5 | median); k=$(col "${fig}_keystone" 5 | median); q=$(ratio "${fig}_keystone" "${fig}_static" 5)
        printf '%-30s %-14s %-16s %-10s %s\n' "$fig p99 us (median)" "$s" "$k" "$q" "info"
    done
    echo "errors: $(awk -F'\t' 'NR > 1 { s += $6 } END { print s + 0 }' "$RESULTS"); Keystone validation requests during the measured rounds: $((validations_after - validations_before)) (round trips the cache did not save)"
    echo "ratio = median over rounds of keystone/static in the same round; load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
