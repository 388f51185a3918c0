#!/usr/bin/env bash
# Download of an image served from the node's cache (its store is S3) next to the download of the same
# bytes from a file store, same server, same run (issue 20: target >= 0.9x). One imaged with two named
# stores (--store file=file --store s3=s3:BUCKET on a fresh single-node Ceph RGW, scripts/s3.sh); the S3
# image is downloaded once to fill the cache, then each round downloads both (alternating which goes
# first) into a file on the same disk with curl. A cache hit checks a CRC-32C of every 1 MiB block before
# sending it; the file store sends without checking.
#
#   bench/cache.sh                         # release build, then ~5 min
#   IMAGED_BIN=path/to/imaged bench/cache.sh
#
# Knobs: RUNS=5 SIZE_MIB=1024 PORT=19398 S3_PORT=19399 (SIZE_MIB=64 RUNS=1 to try it quickly);
# S3_ENV=DIR/s3.env uses an RGW that scripts/s3.sh already runs instead of starting one.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
PORT=${PORT:-19398}
S3_PORT=${S3_PORT:-19399}
URL=http://127.0.0.1:$PORT

OUT=$ROOT/bench/results/cache-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf 'figure\tround\tseconds\tMiB_per_s\n' > "$RESULTS"
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, wait_for_healthz, release_imaged, ensure_command

ensure_command curl curl
[ -n "${S3_ENV:-}" ] || scripts/s3.sh install >&2
release_imaged "$OUT/build.log" || die "no binary"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imaged-cachebench.XXXXXX")
S3_DIR=/tmp/imaged-cachebench-$$
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "${S3_ENV:-}" ] || scripts/s3.sh stop "$S3_DIR" >/dev/null 2>&1 || true
    [ -n "${S3_ENV:-}" ] || rm -rf "$S3_DIR"
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${S3_ENV:-}" ]; then
    log "starting Ceph RGW on 127.0.0.1:$S3_PORT"
    scripts/s3.sh start "$S3_DIR" "$S3_PORT" > "$OUT/s3-start.log" 2>&1 || { cat "$OUT/s3-start.log" >&2; die "S3 did not start"; }
    S3_ENV=$S3_DIR/s3.env
fi
# shellcheck disable=SC1090
. "$S3_ENV"

echo '{"tokens": [{"token": "benchtok", "user_id": "u1", "project_id": "p1", "roles": ["admin"]}]}' > "$WORK/tokens.json"
"$IMAGED_BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --token-file "$WORK/tokens.json" \
    --store file=file --store "s3=s3:$S3_BUCKET" --default-store file \
    --s3-endpoint "$S3_ENDPOINT" --s3-region "$S3_REGION" --s3-key-prefix "cachebench-$$/" \
    --cache-size $(((SIZE_MIB + 64) << 20)) --log-level warning > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_for_healthz "$URL" "$SERVER_PID" "$OUT/server.log" || die "imaged did not start"

FILE=$WORK/image.raw
log "making a ${SIZE_MIB} MiB file"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
BYTES=$((SIZE_MIB << 20))

api() { curl -sf -H "X-Auth-Token: benchtok" "$@"; }
create() {
    api -H 'Content-Type: application/json' -d '{"name":"b","disk_format":"raw","container_format":"bare"}' "$URL/v2/images" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}
on_file=$(create)
api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -H 'X-Image-Meta-Store: file' -T "$FILE" "$URL/v2/images/$on_file/file"
on_s3=$(create)
api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -H 'X-Image-Meta-Store: s3' -T "$FILE" "$URL/v2/images/$on_s3/file"

log "filling the cache with one download from S3"
api -o "$WORK/fill.out" "$URL/v2/images/$on_s3/file"
cmp -s "$WORK/fill.out" "$FILE" || die "the S3 download returned other bytes than were uploaded"
rm -f "$WORK/fill.out"
for _ in $(seq 1 120); do
    api "$URL/v2/cache" | grep -q "$on_s3" && break
    sleep 1
done
api "$URL/v2/cache" | grep -q "$on_s3" || die "the S3 image was not cached"

timed() { # figure round command...
    local fig=$1 round=$2; shift 2
    local t0 t1 s
    t0=$(date +%s.%N); "$@" > /dev/null 2>> "$OUT/commands.log" || die "$fig failed (see $OUT/commands.log)"; t1=$(date +%s.%N)
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$fig" "$round" "$s" "$(awk -v s="$s" -v n="$BYTES" 'BEGIN { printf "%.1f", n / 1048576 / s }')" >> "$RESULTS"
    log "$(printf '%-12s r%s %8s s %8s MiB/s' "$fig" "$round" "$s" "$(awk -v s="$s" -v n="$BYTES" 'BEGIN { printf "%.1f", n / 1048576 / s }')")"
}
get_file() { timed file_get "$1" api -o "$WORK/file.out" "$URL/v2/images/$on_file/file"; }
get_cached() { timed cached_get "$1" api -o "$WORK/cached.out" "$URL/v2/images/$on_s3/file"; }
hits_before=$(curl -sf "$URL/metrics" | awk '$1 == "imaged_cache_hits_total" { print $2 }')
for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then get_file "$r"; get_cached "$r"; else get_cached "$r"; get_file "$r"; fi
    cmp -s "$WORK/cached.out" "$FILE" || die "the cached download returned other bytes than were uploaded"
    cmp -s "$WORK/file.out" "$FILE" || die "the file-store download returned other bytes than were uploaded"
    rm -f "$WORK/file.out" "$WORK/cached.out"
done
hits_after=$(curl -sf "$URL/metrics" | awk '$1 == "imaged_cache_hits_total" { print $2 }')
[ "$(awk -v a="${hits_before:-0}" -v b="$hits_after" 'BEGIN { print b - a }')" = "$RUNS" ] \
    || die "expected $RUNS cache hits, /metrics counted ${hits_before:-0} -> $hits_after"

median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v f="$1" 'NR > 1 && $1 == f { print $4 }' "$RESULTS"; }
ratio() { awk -F'\t' -v a="$1" -v b="$2" 'NR > 1 && $1 == a { x[$2] = $4 } NR > 1 && $1 == b { y[$2] = $4 }
    END { for (r in x) if (r in y) print x[r] / y[r] }' "$RESULTS" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
{
    echo "${SIZE_MIB} MiB download: S3 image from the node's cache vs the same bytes from a file store, $RUNS rounds; $BUILD"
    printf '%-10s %-18s %-18s %-8s %s\n' "" "cached MiB/s" "file store MiB/s" ratio "target >= 0.90"
    q=$(ratio cached_get file_get)
    printf '%-10s %-18s %-18s %-8s %s\n' get "$(col cached_get | median)" "$(col file_get | median)" "$q" \
        "$(awk -v q="$q" 'BEGIN { print (q >= 0.90 ? "PASS" : "MISS") }')"
    echo "ratio = median over rounds of cached/file in the same round; load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
