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

OUT=$ROOT/bench/results/s3-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
printf 'figure\tround\tseconds\tMiB_per_s\n' > "$RESULTS"
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, wait_for_healthz, release_imaged, ensure_command

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
    scripts/s3.sh stop "$S3_DIR" >/dev/null 2>&1 || true
    rm -rf "$WORK" "$S3_DIR"
}
trap cleanup EXIT

log "starting Ceph RGW on 127.0.0.1:$S3_PORT"
scripts/s3.sh start "$S3_DIR" "$S3_PORT" > "$OUT/s3-start.log" 2>&1 || { cat "$OUT/s3-start.log" >&2; die "S3 did not start"; }
# shellcheck disable=SC1091
. "$S3_DIR/s3.env"
AWS=(.venv-bench/bin/aws --endpoint-url "$S3_ENDPOINT" --region "$S3_REGION")

echo '{"tokens": [{"token": "benchtok", "user_id": "u1", "project_id": "p1", "roles": ["admin"]}]}' > "$WORK/tokens.json"
"$IMAGED_BIN" serve --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --token-file "$WORK/tokens.json" \
    --blob-store "s3:$S3_BUCKET" --s3-endpoint "$S3_ENDPOINT" --s3-region "$S3_REGION" --s3-key-prefix bench/ \
    --s3-part-mib "$PART_MIB" --log-level warning > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_for_healthz "$URL" "$SERVER_PID" "$OUT/server.log" || die "imaged did not start"

FILE=$WORK/image.raw
log "making a ${SIZE_MIB} MiB file"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$FILE"
BYTES=$((SIZE_MIB << 20))

timed() { # figure round command...
    local fig=$1 round=$2; shift 2
    local t0 t1 s
    t0=$(date +%s.%N); "$@" > /dev/null 2>> "$OUT/commands.log" || die "$fig failed (see $OUT/commands.log)"; t1=$(date +%s.%N)
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    printf '%s\t%s\t%s\t%s\n' "$fig" "$round" "$s" "$(awk -v s="$s" -v n="$BYTES" 'BEGIN { printf "%.1f", n / 1048576 / s }')" >> "$RESULTS"
    log "$(printf '%-16s r%s %8s s %8s MiB/s' "$fig" "$round" "$s" "$(awk -v s="$s" -v n="$BYTES" 'BEGIN { printf "%.1f", n / 1048576 / s }')")"
}

api() { curl -sf -H "X-Auth-Token: benchtok" "$@"; }
for r in $(seq 1 "$RUNS"); do
    timed aws_put "$r" "${AWS[@]}" s3 cp --only-show-errors "$FILE" "s3://$S3_BUCKET/ref/$r"
    id=$(api -H 'Content-Type: application/json' -d '{"name":"b","disk_format":"raw","container_format":"bare"}' "$URL/v2/images" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    timed imaged_put "$r" api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$FILE" "$URL/v2/images/$id/file"
    # Both downloads land in a file on the same disk (aws s3 cp to stdout stalled on 1 GiB objects).
    timed aws_get "$r" "${AWS[@]}" s3 cp --only-show-errors "s3://$S3_BUCKET/ref/$r" "$WORK/aws.out"
    timed imaged_get "$r" api -o "$WORK/imaged.out" "$URL/v2/images/$id/file"
    cmp -s "$WORK/imaged.out" "$FILE" || die "imaged returned other bytes than were uploaded"
    rm -f "$WORK/aws.out" "$WORK/imaged.out"
    "${AWS[@]}" s3 rm --only-show-errors "s3://$S3_BUCKET/ref/$r"
    api -X DELETE "$URL/v2/images/$id"
done

median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v f="$1" 'NR > 1 && $1 == f { print $4 }' "$RESULTS"; }
ratio() { awk -F'\t' -v a="$1" -v b="$2" 'NR > 1 && $1 == a { x[$2] = $4 } NR > 1 && $1 == b { y[$2] = $4 }
    END { for (r in x) if (r in y) print x[r] / y[r] }' "$RESULTS" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
{
    echo "${SIZE_MIB} MiB through imaged into S3 (Ceph RGW 16, loopback) vs aws s3 cp, $RUNS rounds, parts of $PART_MIB MiB; $BUILD"
    printf '%-10s %-18s %-18s %-8s %s\n' "" "imaged MiB/s" "aws s3 cp MiB/s" ratio "target >= 0.90"
    for d in put get; do
        q=$(ratio "imaged_$d" "aws_$d")
        printf '%-10s %-18s %-18s %-8s %s\n' "$d" "$(col "imaged_$d" | median)" "$(col "aws_$d" | median)" "$q" \
            "$(awk -v q="$q" 'BEGIN { print (q >= 0.90 ? "PASS" : "MISS") }')"
    done
    echo "ratio = median over rounds of imaged/aws in the same round; aws: $(.venv-bench/bin/aws --version 2>&1 | head -1); load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
