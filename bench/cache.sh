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
# Knobs: RUNS=8 SIZE_MIB=1024 PORT=19398 S3_PORT=19399 (SIZE_MIB=64 RUNS=1 to try it quickly);
# S3_ENV=DIR/s3.env uses an RGW that scripts/s3.sh already runs instead of starting one.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-8}
SIZE_MIB=${SIZE_MIB:-1024}
PORT=${PORT:-19398}
S3_PORT=${S3_PORT:-19399}
URL=http://127.0.0.1:$PORT

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, results_dir, start_rgw, serve_imaged, timed, ratio_row, ensure_command...
results_dir cache figure round seconds MiB_per_s

ensure_command curl curl
[ -n "${S3_ENV:-}" ] || scripts/s3.sh install >&2
release_imaged "$OUT/build.log" || die "no binary"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imaged-cachebench.XXXXXX")
S3_DIR=   # set only when this run starts its own RGW (no S3_ENV given)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -z "$S3_DIR" ] || stop_rgw "$S3_DIR"
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${S3_ENV:-}" ]; then
    S3_DIR=/tmp/imaged-cachebench-$$
    start_rgw "$S3_DIR" "$S3_PORT"
    S3_ENV=$S3_DIR/s3.env
fi
# shellcheck disable=SC1090
. "$S3_ENV"

serve_imaged "$WORK" --store file=file --store "s3=s3:$S3_BUCKET" --default-store file \
    --s3-endpoint "$S3_ENDPOINT" --s3-region "$S3_REGION" --s3-key-prefix "cachebench-$$/" \
    --cache-size $(((SIZE_MIB + 64) << 20))

FILE=$WORK/image.raw
log "making a ${SIZE_MIB} MiB file"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
BYTES=$((SIZE_MIB << 20))

on_file=$(new_raw_image)
bench_api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -H 'X-Image-Meta-Store: file' -T "$FILE" "$URL/v2/images/$on_file/file"
on_s3=$(new_raw_image)
bench_api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -H 'X-Image-Meta-Store: s3' -T "$FILE" "$URL/v2/images/$on_s3/file"

log "filling the cache with one download from S3"
bench_api -o "$WORK/fill.out" "$URL/v2/images/$on_s3/file"
cmp -s "$WORK/fill.out" "$FILE" || die "the S3 download returned other bytes than were uploaded"
rm -f "$WORK/fill.out"
for _ in $(seq 1 120); do
    bench_api "$URL/v2/cache" | grep -q "$on_s3" && break
    sleep 1
done
bench_api "$URL/v2/cache" | grep -q "$on_s3" || die "the S3 image was not cached"

# The bytes are checked once, untimed; the timed downloads go to /dev/null: writing 1 GiB to disk made the
# second download of every round pay for the first one's writeback, whichever store it read (0.5x or 2x by
# order alone).
hits_before=$(curl -sf "$URL/metrics" | awk '$1 == "imaged_cache_hits_total" { print $2 }')
bench_api -o "$WORK/cached.out" "$URL/v2/images/$on_s3/file"
cmp -s "$WORK/cached.out" "$FILE" || die "the cached download returned other bytes than were uploaded"
bench_api -o "$WORK/file.out" "$URL/v2/images/$on_file/file"
cmp -s "$WORK/file.out" "$FILE" || die "the file-store download returned other bytes than were uploaded"
rm -f "$WORK/file.out" "$WORK/cached.out"
get_file() { timed file_get "$1" bench_api -o /dev/null "$URL/v2/images/$on_file/file"; }
get_cached() { timed cached_get "$1" bench_api -o /dev/null "$URL/v2/images/$on_s3/file"; }
for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then get_file "$r"; get_cached "$r"; else get_cached "$r"; get_file "$r"; fi
done
hits_after=$(curl -sf "$URL/metrics" | awk '$1 == "imaged_cache_hits_total" { print $2 }')
[ "$(awk -v a="${hits_before:-0}" -v b="$hits_after" 'BEGIN { print b - a }')" = "$((RUNS + 1))" ] \
    || die "expected $((RUNS + 1)) cache hits, /metrics counted ${hits_before:-0} -> $hits_after"

{
    echo "${SIZE_MIB} MiB download: S3 image from the node's cache vs the same bytes from a file store, $RUNS rounds; $BUILD"
    ratio_header "cached MiB/s" "file store MiB/s"
    ratio_row get cached_get file_get
    echo "ratio = median over rounds of cached/file in the same round; load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
