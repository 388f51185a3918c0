#!/usr/bin/env bash
# 1 GiB upload and download through imaged into S3 (--blob-store s3:BUCKET) next to `aws s3 cp` of
# the same file to the same server, in the same run (a fresh single-node Ceph RGW, scripts/s3.sh).
#
#   bench/s3.sh                         # release build, then ~5 min
#   IMAGED_BIN=path/to/imaged bench/s3.sh
#
# Knobs: RUNS=3 SIZE_MIB=1024 PORT=19396 S3_PORT=19397 PART_MIB=16
# The aws CLI comes from PyPI into .venv-bench (its botocore pins stay out of the test venvs).
# imaged does more than aws s3 cp on the way in: MD5 and SHA-512 of every byte and format inspection.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
PORT=${PORT:-19396}
S3_PORT=${S3_PORT:-19397}
PART_MIB=${PART_MIB:-16}
URL=http://127.0.0.1:$PORT

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, results_dir, start_rgw, serve_imaged, timed, ratio_row, ensure_command...
results_dir s3 figure round seconds MiB_per_s

ensure_command curl curl
scripts/s3.sh install >&2
if ! .venv-bench/bin/aws --version >/dev/null 2>&1; then
    python3 -m venv .venv-bench && .venv-bench/bin/pip install -q 'awscli>=1.36' >&2
fi
release_imaged "$OUT/build.log" || die "no binary"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imaged-s3bench.XXXXXX")
S3_DIR=/tmp/imaged-s3bench-$$
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    stop_rgw "$S3_DIR"
    rm -rf "$WORK"
}
trap cleanup EXIT

start_rgw "$S3_DIR" "$S3_PORT"
# shellcheck disable=SC1091
. "$S3_DIR/s3.env"
AWS=(.venv-bench/bin/aws --endpoint-url "$S3_ENDPOINT" --region "$S3_REGION")

serve_imaged "$WORK" --blob-store "s3:$S3_BUCKET" --s3-endpoint "$S3_ENDPOINT" --s3-region "$S3_REGION" \
    --s3-key-prefix bench/ --s3-part-mib "$PART_MIB"

FILE=$WORK/image.raw
log "making a ${SIZE_MIB} MiB file"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
BYTES=$((SIZE_MIB << 20))

for r in $(seq 1 "$RUNS"); do
    timed aws_put "$r" "${AWS[@]}" s3 cp --only-show-errors "$FILE" "s3://$S3_BUCKET/ref/$r"
    id=$(new_raw_image)
    timed imaged_put "$r" bench_api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$FILE" "$URL/v2/images/$id/file"
    # Both downloads land in a file on the same disk (aws s3 cp to stdout stalled on 1 GiB objects).
    timed aws_get "$r" "${AWS[@]}" s3 cp --only-show-errors "s3://$S3_BUCKET/ref/$r" "$WORK/aws.out"
    timed imaged_get "$r" bench_api -o "$WORK/imaged.out" "$URL/v2/images/$id/file"
    cmp -s "$WORK/imaged.out" "$FILE" || die "imaged returned other bytes than were uploaded"
    rm -f "$WORK/aws.out" "$WORK/imaged.out"
    "${AWS[@]}" s3 rm --only-show-errors "s3://$S3_BUCKET/ref/$r"
    bench_api -X DELETE "$URL/v2/images/$id"
done

{
    echo "${SIZE_MIB} MiB through imaged into S3 (Ceph RGW 16, loopback) vs aws s3 cp, $RUNS rounds, parts of $PART_MIB MiB; $BUILD"
    ratio_header "imaged MiB/s" "aws s3 cp MiB/s"
    for d in put get; do ratio_row "$d" "imaged_$d" "aws_$d"; done
    echo "ratio = median over rounds of imaged/aws in the same round; aws: $(.venv-bench/bin/aws --version 2>&1 | head -1); load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
