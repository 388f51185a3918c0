#!/usr/bin/env bash
# Resumable uploads (tus 1.0.0 under /v2/images/{id}/uploads) next to a plain `PUT …/file` of the same file,
# into a file store, same run (target: resumable >= 0.9 x plain). Each round times, in alternating order:
#   plain   PUT /v2/images/{id}/file with curl -T
#   tus     POST …/uploads (Upload-Length), then one PATCH of the whole file with curl -T
#   tus64   POST …/uploads, then PATCHes of 64 MiB (CHUNK_MIB) each, by a small http.client client
#           (socket.sendfile from the file; every answer checked: 204 and the new Upload-Offset)
# Every upload is checked afterwards: the image is active with the file's size and MD5; then it is deleted.
# The figure per variant is the median MiB/s over rounds; the ratio is the median over rounds of
# resumable/plain in the same round.
#
#   bench/resumable.sh                          # release build, then ~2-3 min at 1 GiB
#   IMAGED_BIN=path/to/imaged bench/resumable.sh
#
# Knobs: RUNS=5 SIZE_MIB=1024 CHUNK_MIB=64 PORT=19403 (SIZE_MIB=64 RUNS=1 to try it quickly).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1024}
CHUNK_MIB=${CHUNK_MIB:-64}
PORT=${PORT:-19403}
URL=http://127.0.0.1:$PORT

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, results_dir, serve_imaged, timed, median_of, ratio_row, ensure_command...
results_dir resumable figure round seconds MiB_per_s

ensure_command curl curl
ensure_command python3 python3
release_imaged "$OUT/build.log" || die "no binary"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/imaged-resumablebench.XXXXXX")
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

serve_imaged "$WORK"

log "making a ${SIZE_MIB} MiB random file"
FILE=$WORK/image.raw
python3 - "$FILE" "$SIZE_MIB" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(os.urandom(1 << 20))
PY
sync "$FILE"
MD5=$(md5sum "$FILE" | cut -d' ' -f1)
BYTES=$(stat -c %s "$FILE")

# The chunked client: POST, then PATCHes of CHUNK bytes sent with sendfile(2); fails on any unexpected answer.
cat > "$WORK/tus_chunks.py" <<'PY'
import http.client, os, sys
port, image_id, path, chunk = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
size = os.stat(path).st_size
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
auth = {"X-Auth-Token": "benchtok", "Tus-Resumable": "1.0.0"}
conn.request("POST", f"/v2/images/{image_id}/uploads", headers={**auth, "Upload-Length": str(size)})
r = conn.getresponse()
r.read()
if r.status != 201:
    sys.exit(f"POST …/uploads: {r.status}")
location = r.getheader("Location")
at = 0
with open(path, "rb") as f:
    while at < size:
        n = min(chunk, size - at)
        conn.putrequest("PATCH", location, skip_accept_encoding=True)
        for k, v in {**auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": str(at),
                     "Content-Length": str(n)}.items():
            conn.putheader(k, v)
        conn.endheaders()
        sent = 0
        while sent < n:
            sent += conn.sock.sendfile(f, offset=at + sent, count=n - sent)
        r = conn.getresponse()
        body = r.read()
        at += n
        if r.status != 204 or r.getheader("Upload-Offset") != str(at):
            sys.exit(f"PATCH at {at - n}: {r.status} Upload-Offset={r.getheader('Upload-Offset')} {body[:300]!r}")
PY

# tus_whole ID: POST …/uploads, then one PATCH of the whole file with curl.
tus_whole() {
    local location
    location=$(bench_api -X POST -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $BYTES" -D - -o /dev/null \
        "$URL/v2/images/$1/uploads" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [ -n "$location" ] || { echo "no Location from POST …/uploads" >&2; return 1; }
    bench_api -X PATCH -H 'Expect:' -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream' \
        -H 'Upload-Offset: 0' -T "$FILE" "$URL$location"
}
tus_chunks() { python3 "$WORK/tus_chunks.py" "$PORT" "$1" "$FILE" $((CHUNK_MIB << 20)); }
plain_put() { bench_api -X PUT -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$FILE" "$URL/v2/images/$1/file"; }

# one FIGURE ROUND FUNCTION: a new image, the timed upload, the check, the delete.
one() {
    local id
    id=$(new_raw_image)
    cat "$FILE" > /dev/null   # page cache: every variant reads the file from memory
    timed "$1" "$2" "$3" "$id"
    bench_api "$URL/v2/images/$id" | python3 -c '
import json, sys
image = json.load(sys.stdin)
want = ("active", int(sys.argv[1]), sys.argv[2])
got = (image["status"], image["size"], image["checksum"])
sys.exit(0 if got == want else f"stored {got}, expected {want}")' "$BYTES" "$MD5" || die "$1 stored other bytes"
    bench_api -X DELETE "$URL/v2/images/$id"
}

for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then
        one plain "$r" plain_put; one tus "$r" tus_whole; one tus64 "$r" tus_chunks
    else
        one tus64 "$r" tus_chunks; one tus "$r" tus_whole; one plain "$r" plain_put
    fi
done

{
    echo "${SIZE_MIB} MiB random file into a file store: resumable (POST + PATCH) vs PUT …/file, $RUNS rounds; $BUILD"
    ratio_header "resumable MiB/s" "PUT …/file MiB/s"
    ratio_row "1 PATCH" tus plain
    ratio_row "${CHUNK_MIB} MiB" tus64 plain
    echo "ratio = median over rounds of resumable/plain in the same round; load at the end: $(uptime | sed 's/.*load average/load average/')"
} | tee "$OUT/table.txt"
