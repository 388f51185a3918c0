#!/usr/bin/env bash
# Ingest of an xz-compressed image (PUT …/file, decompressed in the stream, digests and the file store
# write included) next to `xz -dc -T1 FILE > /dev/null` on the same file, same run (issue 21: target
# >= 0.8x). The image is SIZE_MIB of raw disk: each 1 MiB block is half random, half zeros (xz ratio
# ~2:1), compressed once with `xz -1 -T2`. imaged decodes one stream on one thread, so the reference is
# xz's single-threaded decoder (xz >= 5.4 would otherwise decode the blocks of a -T2 file in parallel).
# Each round times both, alternating which goes first; the ratio is the median over rounds of
# t(xz -dc) / t(ingest). Every upload is checked: size and MD5 of the decompressed image.
#
#   bench/decompress.sh                         # release build, then ~3 min at 1 GiB
#   IMAGED_BIN=path/to/imaged bench/decompress.sh
#
# Knobs: RUNS=5 SIZE_MIB=1024 PORT=19402 (SIZE_MIB=64 RUNS=1 to try it quickly).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
PORT=${PORT:-19402}
URL=http://127.0.0.1:$PORT

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, results_dir, serve_imaged, timed, median_of, ensure_command...
results_dir decompress figure round seconds MiB_per_s

ensure_command curl curl
ensure_command xz xz-utils
release_imaged "$OUT/build.log" || die "no binary"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imaged-decompressbench.XXXXXX")
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# A large cap: the default quota/size limits do not apply to the admin's bench project anyway.
serve_imaged "$WORK"

log "making a ${SIZE_MIB} MiB image and its .xz"
python3 - "$WORK/image.raw" "$SIZE_MIB" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(os.urandom(512 << 10) + bytes(512 << 10))
PY
xz -1 -T2 -k "$WORK/image.raw"
FILE=$WORK/image.raw.xz
MD5=$(md5sum "$WORK/image.raw" | cut -d' ' -f1)
rm -f "$WORK/image.raw"
BYTES=$(stat -c %s "$FILE")   # MiB/s below are of the compressed file: the same bytes for both figures
log "$(awk -v b="$BYTES" -v m="$SIZE_MIB" 'BEGIN { printf "%.1f MiB compressed (%.2f:1)", b / 1048576, m * 1048576 / b }')"

reference() { timed xz_dc "$1" sh -c 'xz -dc -T1 "$0" > /dev/null' "$FILE"; }
ingest() {
    local id
    id=$(new_raw_image)
    timed ingest "$1" bench_api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$FILE" "$URL/v2/images/$id/file"
    bench_api "$URL/v2/images/$id" | python3 -c '
import json, sys
image = json.load(sys.stdin)
want = (int(sys.argv[1]) << 20, sys.argv[2], "xz")
got = (image["size"], image["checksum"], image.get("imaged_source_compression"))
sys.exit(0 if got == want else f"stored {got}, expected {want}")' "$SIZE_MIB" "$MD5" || die "the ingest stored other bytes"
    bench_api -X DELETE "$URL/v2/images/$id"
}
for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then reference "$r"; ingest "$r"; else ingest "$r"; reference "$r"; fi
done

q=$(awk -F'\t' 'NR > 1 && $1 == "ingest" { x[$2] = $4 } NR > 1 && $1 == "xz_dc" { y[$2] = $4 }
    END { for (r in x) if (r in y) print x[r] / y[r] }' "$RESULTS" | median_of %.2f)
{
    echo "${SIZE_MIB} MiB image as .xz ($(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }') MiB): PUT …/file into a file store vs xz -dc -T1 > /dev/null, $RUNS rounds; $BUILD"
    printf '%-18s %-18s %-8s %s\n' "ingest MiB/s" "xz -dc MiB/s" ratio "target >= 0.80"
    printf '%-18s %-18s %-8s %s\n' "$(mibs_of ingest | median_of %.1f)" "$(mibs_of xz_dc | median_of %.1f)" "$q" \
        "$(awk -v q="$q" 'BEGIN { print (q >= 0.80 ? "PASS" : "MISS") }')"
    echo "ratio = median over rounds of ingest/xz in the same round (MiB/s of the compressed file); load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
