#!/usr/bin/env bash
# Ingest of an xz-compressed image (PUT …/file, decompressed in the stream, digests and the file store
# write included) next to `xz -dc FILE > /dev/null` on the same file, same run (issue 21: target
# >= 0.8x). The image is SIZE_MIB of raw disk: each 1 MiB block is half random, half zeros (xz ratio
# ~2:1), compressed once with `xz -1 -T2` (many blocks, as `xz -T` makes; BLOCKS=one: `xz -1 -T1`, one
# block). The reference is `xz -dc -T1`, what `xz -dc` does in xz 5.4 (Debian 12); imaged decodes the
# blocks of a multi-block file on every core (liblzma's threaded decoder), so `xz -dc -T0` on the same
# file is reported beside it. Each round times all, alternating the order; a ratio is the median over
# rounds of t(reference) / t(ingest). Every upload is checked: size and MD5 of the decompressed image.
#
#   bench/decompress.sh                         # release build, then ~3 min at 1 GiB
#   IMAGED_BIN=path/to/imaged bench/decompress.sh
#
# Knobs: RUNS=5 SIZE_MIB=1024 PORT=19402 BLOCKS=many|one (SIZE_MIB=64 RUNS=1 to try it quickly).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
PORT=${PORT:-19402}
BLOCKS=${BLOCKS:-many}
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
if [ "$BLOCKS" = one ]; then xz -1 -T1 -k "$WORK/image.raw"; else xz -1 -T2 -k "$WORK/image.raw"; fi
FILE=$WORK/image.raw.xz
MD5=$(md5sum "$WORK/image.raw" | cut -d' ' -f1)
rm -f "$WORK/image.raw"
BYTES=$(stat -c %s "$FILE")   # MiB/s below are of the compressed file: the same bytes for both figures
log "$(awk -v b="$BYTES" -v m="$SIZE_MIB" 'BEGIN { printf "%.1f MiB compressed (%.2f:1)", b / 1048576, m * 1048576 / b }')"

reference() {
    timed xz_dc "$1" sh -c 'xz -dc -T1 "$0" > /dev/null' "$FILE"
    timed xz_dc_T0 "$1" sh -c 'xz -dc -T0 "$0" > /dev/null' "$FILE"
}
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

ratio_to() {
    awk -F'\t' -v ref="$1" 'NR > 1 && $1 == "ingest" { x[$2] = $4 } NR > 1 && $1 == ref { y[$2] = $4 }
        END { for (r in x) if (r in y) print x[r] / y[r] }' "$RESULTS" | median_of %.2f
}
q=$(ratio_to xz_dc)
q0=$(ratio_to xz_dc_T0)
{
    echo "${SIZE_MIB} MiB image as .xz ($(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1048576 }') MiB, $BLOCKS block(s)): PUT …/file into a file store vs xz -dc > /dev/null, $RUNS rounds; $BUILD"
    printf '%-14s %-22s %-8s %-16s %-22s %s\n' "ingest MiB/s" "xz -dc (-T1) MiB/s" ratio "target >= 0.80" "xz -dc -T0 MiB/s" "ratio"
    printf '%-14s %-22s %-8s %-16s %-22s %s\n' "$(mibs_of ingest | median_of %.1f)" "$(mibs_of xz_dc | median_of %.1f)" "$q" \
        "$(awk -v q="$q" 'BEGIN { print (q >= 0.80 ? "PASS" : "MISS") }')" "$(mibs_of xz_dc_T0 | median_of %.1f)" "$q0"
    echo "ratio = median over rounds of ingest/xz in the same round (MiB/s of the compressed file); load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
