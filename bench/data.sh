#!/usr/bin/env bash
# Data-path benchmark: upload and download of 1 GiB and 4 GiB images over loopback, server RSS
# during a 4 GiB upload, and 16 concurrent 256 MiB uploads, each figure next to a physical
# reference measured on the same machine and disk, in the same round.
#
#   bench/data.sh                               # release build; ~10-15 min after the build
#   QUICK=1 bench/data.sh                       # smoke test: 64 + 256 MiB, 16 x 16 MiB, 1 round each (~1-2 min)
#   IMAGED_BIN=path/to/imaged bench/data.sh     # skip the build (e.g. .build/debug/imaged to try the script)
#
# Knobs (environment):
#   SIZES="1024 4096"   upload/download sizes in MiB; the largest one is the RSS figure
#   RUNS=3              rounds for sizes > 1 GiB and for the concurrent uploads
#   SMALL_RUNS=5        rounds for sizes <= 1 GiB
#   CONC=16 CONC_MIB=256  concurrent uploads and the size of each
#   HASH=sha512         --hash-algorithm of the server (sha512|sha256); the digest reference follows it
#   BLOB_STORE=file     --blob-store of the server (file?direct=false: uploads through the page cache, for A/B runs)
#   SPEED_SECONDS=3     duration of each `openssl speed` run
#   PORT=19395          WORK_DIR=<dir> (default: a fresh directory under ${TMPDIR:-/tmp}; data dir and test files live there)
#   KEEP_DATA=1         keep the work directory (test files + data dir) at the end
#
# Each round of a size S:  openssl speed md5 + HASH (slowest digest, 16 KiB blocks)  |  dd of S with
# conv=fsync into the data dir's filesystem  |  PUT S (curl -T, until 204)  |  first GET of the blob as
# the upload left it (information)  |  cat of the test file from page cache  |  GET S of the warmed
# blob (curl -o /dev/null)  |  DELETE.  Ratios are paired per round: upload /
# min(dd, digest), download / cat.  The concurrent phase does the same with CONC parallel PUTs
# against dd of CONC x CONC_MIB.  RSS is sampled every 100 ms from /proc (and VmHWM after
# clear_refs).  Information only: the same curl commands against bench/loopback.py (loopback +
# curl ceiling), the digests in the BoringSSL that imaged links (bench/digest_speed.c), server CPU
# per GB, machine-wide dirty page cache.  Everything raw goes to bench/results/data-<UTC time>/;
# summary.md is the table (bench/data-summary.sh <dir> prints it again).  Exit 1 on any error.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench

if [ -n "${QUICK:-}" ]; then
    SIZES=${SIZES:-"64 256"} RUNS=${RUNS:-1} SMALL_RUNS=${SMALL_RUNS:-1} CONC_MIB=${CONC_MIB:-16} SPEED_SECONDS=${SPEED_SECONDS:-1}
fi
SIZES=${SIZES:-"1024 4096"}
RUNS=${RUNS:-3}
SMALL_RUNS=${SMALL_RUNS:-5}
CONC=${CONC:-16}
CONC_MIB=${CONC_MIB:-256}
HASH=${HASH:-sha512}
BLOB_STORE=${BLOB_STORE:-file}
SPEED_SECONDS=${SPEED_SECONDS:-3}
PORT=${PORT:-19395}
URL=http://127.0.0.1:$PORT
TOKEN=bench
MIB=1048576
RSS_LIMIT_MIB=64
TARGET_RATIO=0.80
LARGEST=$(printf '%s\n' $SIZES | sort -n | tail -1)

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH/results/data-$STAMP
mkdir -p "$OUT/raw"
RESULTS=$OUT/results.tsv
RSS_TSV=$OUT/rss.tsv
CHECKS=$OUT/checks.tsv
printf 'phase\tround\tfigure\tvalue\tunit\tbytes\tseconds\tnote\n' > "$RESULTS"
printf 'phase\tround\twhat\tbaseline_kib\tpeak_sampled_kib\thwm_kib\tsamples\tbefore_kib\n' > "$RSS_TSV"
printf 'phase\tround\tcheck\tresult\tdetail\n' > "$CHECKS"

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, wait_for_healthz, release_imaged, ensure_command
note_load() { echo "$(date -u +%H:%M:%S) $1: $(cat /proc/loadavg)" >> "$OUT/uptime.txt"; log "load $1: $(cut -d' ' -f1-3 /proc/loadavg)"; }

# ---------------------------------------------------------------- tools and binary

need_pkg() { ensure_command "$@"; }  # command package
need_pkg curl curl
need_pkg openssl openssl
need_pkg fincore util-linux
need_pkg python3 python3-minimal

release_imaged "$OUT/build.log" || die "no binary"
[ -x "$IMAGED_BIN" ] || die "no executable at $IMAGED_BIN"

# ---------------------------------------------------------------- work directory and server

if [ -n "${WORK_DIR:-}" ]; then WORK=$WORK_DIR; mkdir -p "$WORK"; else WORK=$(mktemp -d "${TMPDIR:-/tmp}/imaged-databench.XXXXXX"); fi
DATA=$WORK/data
FILES=$WORK/files
rm -rf "$DATA"; mkdir -p "$DATA" "$FILES"
# Run a copy, so a rebuild by someone else during the run changes nothing.
cp "$IMAGED_BIN" "$WORK/imaged"; IMAGED_SRC=$IMAGED_BIN; IMAGED_BIN=$WORK/imaged

SERVER_PID= SAMPLER_PID=
stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            log "server (pid $SERVER_PID) still running 10 s after SIGTERM; SIGKILL"
            echo "server ignored SIGTERM for 10 s (pid $SERVER_PID)" >> "$OUT/problems.txt"
            kill -9 "$SERVER_PID" 2>/dev/null || true
        fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
cleanup() {
    [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null || true
    [ -n "${LOOP_PID:-}" ] && kill "$LOOP_PID" 2>/dev/null || true
    local j; for j in $(jobs -p); do [ "$j" = "$SERVER_PID" ] || kill "$j" 2>/dev/null || true; done
    stop_server
    if [ -z "${KEEP_DATA:-}" ]; then rm -rf "$DATA" "$FILES" "$WORK/imaged" "$WORK/digest_speed"; [ -n "${WORK_DIR:-}" ] || rmdir "$WORK" 2>/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

curl -s -o /dev/null "$URL/healthz" && die "something already answers on $URL (set PORT=...)"

# bench/digest_speed.c against the BoringSSL objects of the build that made the binary (information;
# skipped when they or a C compiler are missing).
DIGEST_SPEED=
build_digest_speed() {
    local bin objs scratch inc cc
    bin=$(realpath "$IMAGED_SRC"); objs=$(dirname "$bin")/CCryptoBoringSSL.build
    scratch=$(dirname "$(dirname "$(dirname "$bin")")"); inc=$scratch/checkouts/swift-crypto/Sources/CCryptoBoringSSL/include
    cc=$(command -v cc || command -v gcc || true)
    if [ ! -d "$objs" ] || [ ! -d "$inc" ] || [ -z "$cc" ] || ! command -v ar >/dev/null; then
        log "no BoringSSL objects, headers or C compiler next to $bin: skipping bench/digest_speed.c"; return 0
    fi
    rm -f "$WORK/libbssl.a"
    find "$objs" -name '*.o' -print0 | xargs -0 ar rcs "$WORK/libbssl.a" \
        && "$cc" -O2 -I"$inc" "$BENCH/digest_speed.c" "$WORK/libbssl.a" -lstdc++ -lpthread -o "$WORK/digest_speed" 2> "$OUT/digest_speed.build.log" \
        && DIGEST_SPEED=$WORK/digest_speed || log "bench/digest_speed.c did not build (see digest_speed.build.log); skipping it"
    rm -f "$WORK/libbssl.a"
}
build_digest_speed

SERVER_N=0
start_server() { # label
    SERVER_N=$((SERVER_N + 1))
    "$IMAGED_BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --no-auth --log-level warning \
        --hash-algorithm "$HASH" --blob-store "$BLOB_STORE" >> "$OUT/server-$1.log" 2>&1 &
    SERVER_PID=$!
    wait_for_healthz "$URL" "$SERVER_PID" "$OUT/server-$1.log" || die "server did not start"
    log "server up (pid $SERVER_PID) for $1"
}

api() { curl -sS -H "X-Auth-Token: $TOKEN" "$@"; }
json_field() { # field: first "field": "value" of the JSON on stdin
    grep -o "\"$1\" *: *\"[^\"]*\"" | head -1 | sed -E 's/.*: *"([^"]*)"/\1/'
}
create_image() { # name -> id
    local body id
    body=$(api -X POST -H 'Content-Type: application/json' \
        -d "{\"name\":\"$1\",\"disk_format\":\"raw\",\"container_format\":\"bare\"}" "$URL/v2/images") || die "create failed"
    id=$(echo "$body" | json_field id)
    [ -n "$id" ] || die "create answered: $body"
    echo "$id"
}
delete_image() { # id
    local code; code=$(api -o /dev/null -w '%{http_code}' -X DELETE "$URL/v2/images/$1")
    [ "$code" = 204 ] || problem "DELETE /v2/images/$1 answered $code"
}
problem() { log "PROBLEM: $*"; echo "$*" >> "$OUT/problems.txt"; }

# ---------------------------------------------------------------- measurement helpers

# elapsed seconds between two $EPOCHREALTIME values; MB/s = 10^6 bytes per second
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", b - a }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? n / s / 1e6 : 0) }'; }
record() { # phase round figure value unit bytes seconds [note]
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "${8:-}" >> "$RESULTS"
}
check() { # phase round check result detail
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >> "$CHECKS"
    [ "$4" = OK ] || problem "check $3 ($1 r$2): $4 $5"
}
resident() { fincore -nb -o RES "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
TICK=$(getconf CLK_TCK)
cpu_sample() { awk '/^cpu / { idle = $5 + $6; t = 0; for (i = 2; i <= NF; i++) t += $i; print t, idle }' /proc/stat; }
busy_pct() {
    local t0 i0 t1 i1; read -r t0 i0 <<<"$1"; read -r t1 i1 <<<"$2"
    awk -v dt=$((t1 - t0)) -v di=$((i1 - i0)) 'BEGIN { printf "%.0f", (dt > 0 ? 100 * (dt - di) / dt : 0) }'
}
rss_now() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }

# RSS: clear the high-water mark, sample VmRSS every 100 ms in the background, read both at the end.
# The samples also hold the machine's Dirty and Writeback page cache (KiB): time, rss, dirty, writeback.
rss_begin() { # file
    echo 5 > "/proc/$SERVER_PID/clear_refs" 2>/dev/null || true
    RSS_BEFORE=$(rss_now)
    local pid=$SERVER_PID
    ( while [ -r "/proc/$pid/status" ]; do
          r=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null) || break
          awk -v t="$EPOCHREALTIME" -v r="$r" '/^Dirty:/ { d = $2 } /^Writeback:/ { w = $2 } END { print t "\t" r "\t" d "\t" w }' /proc/meminfo
          sleep 0.1
      done ) > "$1" &
    SAMPLER_PID=$!
}
rss_end() { # phase round what baseline file
    kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=
    local peak n hwm
    local dirty
    read -r peak n dirty <<<"$(awk -F'\t' '$2 > m { m = $2 } $3 + $4 > d { d = $3 + $4 } END { print m + 0, NR, d + 0 }' "$5")"
    record "$1" "$2" "dirty_$3" "$dirty" KiB - - "peak Dirty+Writeback in /proc/meminfo during the transfer"
    hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$SERVER_PID/status")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$peak" "$hwm" "$n" "$RSS_BEFORE" >> "$RSS_TSV"
    log "$(printf 'RSS %-8s %-4s baseline %d MiB, before %d MiB, peak sampled %d MiB (growth %d MiB), VmHWM %d MiB, %d samples' \
        "$3" "r$2" $(($4 / 1024)) $((RSS_BEFORE / 1024)) $((peak / 1024)) $(((peak - $4) / 1024)) $((hwm / 1024)) "$n")"
}

# Baseline RSS: after start, one small request (1 MiB upload + download + delete), 1 s to settle.
baseline_rss() { # phase
    local id f=$FILES/small
    [ -f "$f" ] || head -c $MIB /dev/urandom > "$f"
    id=$(create_image "bench-baseline")
    api -o /dev/null -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$f" "$URL/v2/images/$id/file"
    api -o /dev/null "$URL/v2/images/$id/file"
    delete_image "$id"
    sleep 1
    BASELINE=$(rss_now)
    log "baseline RSS ($1): $((BASELINE / 1024)) MiB"
}

warm() { cat "$@" > /dev/null; } # the test files must come from page cache (DAMON pages out cold ones here)

ref_digest() { # phase round -> DIGEST (MB/s, the slower of md5 and HASH)
    local alg v out=() 
    for alg in md5 "$HASH"; do
        v=$(openssl speed -evp "$alg" -bytes 16384 -seconds "$SPEED_SECONDS" 2>/dev/null | tee "$OUT/raw/openssl-$alg-$1-r$2.txt" \
            | awk -v a="$alg" '$1 == a { v = $NF; sub(/k$/, "", v); printf "%.1f", v / 1000 }')
        [ -n "$v" ] || die "cannot parse openssl speed -evp $alg"
        record "$1" "$2" "$alg" "$v" MB/s 16384 - "openssl speed -evp $alg -bytes 16384"
        out+=("$v")
    done
    DIGEST=$(awk -v a="${out[0]}" -v b="${out[1]}" 'BEGIN { print (a < b ? a : b) }')
    record "$1" "$2" digest "$DIGEST" MB/s 16384 - "min(md5, $HASH)"
    # Information: the same digests in the BoringSSL that imaged links (swift-crypto), see bench/digest_speed.c.
    if [ -n "$DIGEST_SPEED" ]; then
        out=()
        for alg in md5 "$HASH"; do
            v=$("$DIGEST_SPEED" "$alg" "$SPEED_SECONDS" | awk '{ print $2 }')
            record "$1" "$2" "bssl_$alg" "$v" MB/s 16384 - "bench/digest_speed.c $alg (swift-crypto BoringSSL)"
            out+=("$v")
        done
        record "$1" "$2" bssl_digest "$(awk -v a="${out[0]}" -v b="${out[1]}" 'BEGIN { print (a < b ? a : b) }')" MB/s 16384 - "min(md5, $HASH), BoringSSL"
    fi
}

ref_dd() { # phase round bytes files... -> DD (MB/s): sequential write + fsync into the data dir's filesystem
    local phase=$1 round=$2 bytes=$3 t0 t1 s; shift 3
    warm "$@"
    rm -f "$DATA/ddtest"
    t0=$EPOCHREALTIME
    if [ $# -eq 1 ]; then
        dd if="$1" of="$DATA/ddtest" bs=1M conv=fsync 2> "$OUT/raw/dd-$phase-r$round.txt"
    else
        cat "$@" | dd of="$DATA/ddtest" bs=1M iflag=fullblock conv=fsync 2> "$OUT/raw/dd-$phase-r$round.txt"
    fi
    t1=$EPOCHREALTIME
    [ "$(stat -c %s "$DATA/ddtest")" = "$bytes" ] || die "dd wrote $(stat -c %s "$DATA/ddtest") bytes, not $bytes"
    rm -f "$DATA/ddtest"
    s=$(secs "$t0" "$t1"); DD=$(mbps "$bytes" "$s")
    record "$phase" "$round" dd "$DD" MB/s "$bytes" "$s" "dd bs=1M conv=fsync"
}

ref_cat() { # phase round figure bytes files... -> CAT (MB/s)
    local phase=$1 round=$2 fig=$3 bytes=$4 t0 t1 s res; shift 4
    warm "$@"
    res=$(resident "$@")
    t0=$EPOCHREALTIME
    cat "$@" > /dev/null
    t1=$EPOCHREALTIME
    s=$(secs "$t0" "$t1"); CAT=$(mbps "$bytes" "$s")
    record "$phase" "$round" "$fig" "$CAT" MB/s "$bytes" "$s" "resident $res bytes"
}

# One PUT with curl; sets UP (MB/s) and CODE. Upload throughput = bytes / curl's time_total (until 204).
put_file() { # phase round figure id file
    local raw=$OUT/raw/$3-$1-r$2-$4.txt
    curl -sS -o "$raw.body" -w '%{http_code} %{time_total} %{size_upload}\n' -H "X-Auth-Token: $TOKEN" \
        -H 'Expect:' -H 'Content-Type: application/octet-stream' -T "$5" "$URL/v2/images/$4/file" > "$raw" 2>&1 || true
    [ -s "$raw.body" ] || rm -f "$raw.body"
}

# Information: the same curl commands against bench/loopback.py (PUT discarded, GET by sendfile).
LOOP_PORT=$((PORT + 1)) LOOP_PID=
loopback_round() { # phase round bytes file
    local code t n
    python3 "$BENCH/loopback.py" "$LOOP_PORT" "$4" 2>> "$OUT/loopback.log" &
    LOOP_PID=$!
    for _ in $(seq 1 50); do curl -s -o /dev/null -X PUT -d '' "http://127.0.0.1:$LOOP_PORT/" 2>/dev/null && break; sleep 0.1; done
    warm "$4"
    read -r code t n <<<"$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_upload}' -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -T "$4" "http://127.0.0.1:$LOOP_PORT/x" 2>&1 || true)"
    [ "$code" = 204 ] && record "$1" "$2" loop_upload "$(mbps "$3" "$t")" MB/s "$3" "$t" "curl -T to bench/loopback.py"
    read -r code t n <<<"$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}' \
        "http://127.0.0.1:$LOOP_PORT/x" 2>&1 || true)"
    [ "$code" = 200 ] && record "$1" "$2" loop_download "$(mbps "$3" "$t")" MB/s "$3" "$t" "curl GET from bench/loopback.py (sendfile)"
    kill "$LOOP_PID" 2>/dev/null || true; wait "$LOOP_PID" 2>/dev/null || true; LOOP_PID=
}

blob_files() { find "$DATA" -type f -size +1M ! -name 'catalog.sqlite*' ! -name ddtest 2>/dev/null; }

# ---------------------------------------------------------------- one size

size_phase() { # MiB
    local mib=$1 bytes=$(($1 * MIB)) phase=s$1 rounds file r id code t n s c0 c1 k0 k1 up down blob res
    file=$FILES/f$mib
    [ "$mib" -le 1024 ] && rounds=$SMALL_RUNS || rounds=$RUNS
    log "== $mib MiB: $rounds rounds"
    start_server "$phase"
    baseline_rss "$phase"
    local base=$BASELINE
    for r in $(seq 1 "$rounds"); do
        ref_digest "$phase" "$r"
        ref_dd "$phase" "$r" "$bytes" "$file"
        id=$(create_image "bench-$phase-$r")
        warm "$file"
        res=$(resident "$file")
        k0=$(server_ticks); c0=$(cpu_sample)
        rss_begin "$OUT/raw/rss-upload-$phase-r$r.tsv"
        put_file "$phase" "$r" upload "$id" "$file"
        rss_end "$phase" "$r" upload "$base" "$OUT/raw/rss-upload-$phase-r$r.tsv"
        k1=$(server_ticks); c1=$(cpu_sample)
        read -r code t n < "$OUT/raw/upload-$phase-r$r-$id.txt" || true
        if [ "$code" != 204 ] || [ "${n%.*}" != "$bytes" ]; then
            problem "upload $phase r$r: HTTP $code, $n bytes sent: $(head -c 300 "$OUT/raw/upload-$phase-r$r-$id.txt.body" 2>/dev/null)"
            record "$phase" "$r" upload_error 1 count "$bytes" "$t"
            delete_image "$id"; continue
        fi
        up=$(mbps "$bytes" "$t")
        record "$phase" "$r" upload "$up" MB/s "$bytes" "$t" "file resident $res bytes"
        record "$phase" "$r" upload_server_cpu "$(awk -v k=$((k1 - k0)) -v hz="$TICK" -v b="$bytes" 'BEGIN { printf "%.2f", k / hz / (b / 1e9) }')" s/GB "$bytes" "$t"
        record "$phase" "$r" upload_busy "$(busy_pct "$c0" "$c1")" % "$bytes" "$t"
        [ -z "$(find "$DATA/.tmp" -type f 2>/dev/null)" ] || problem "temporary files left after upload $phase r$r: $(find "$DATA/.tmp" -type f | head -3)"

        # Correctness, once per size: catalog digests vs md5sum/sha*sum, download digest vs sha512sum.
        if [ "$r" = 1 ]; then
            local img; img=$(api "$URL/v2/images/$id")
            echo "$img" > "$OUT/raw/image-$phase.json"
            [ "$(echo "$img" | json_field checksum)" = "$(cat "$file.md5")" ] && check "$phase" "$r" checksum OK "md5 $(cat "$file.md5")" \
                || check "$phase" "$r" checksum FAIL "server $(echo "$img" | json_field checksum) vs md5sum $(cat "$file.md5")"
            [ "$(echo "$img" | json_field os_hash_algo)" = "$HASH" ] && [ "$(echo "$img" | json_field os_hash_value)" = "$(cat "$file.$HASH")" ] \
                && check "$phase" "$r" os_hash_value OK "$HASH" \
                || check "$phase" "$r" os_hash_value FAIL "server $(echo "$img" | json_field os_hash_algo) $(echo "$img" | json_field os_hash_value | cut -c1-32)... vs ${HASH}sum $(cut -c1-32 "$file.$HASH")..."
            [ "$(echo "$img" | json_field status)" = active ] && check "$phase" "$r" status OK active \
                || check "$phase" "$r" status FAIL "status $(echo "$img" | json_field status)"
            local dsum; dsum=$(api "$URL/v2/images/$id/file" | sha512sum | cut -d' ' -f1)
            [ "$dsum" = "$(cat "$file.sha512")" ] && check "$phase" "$r" download_sha512 OK "sha512 of GET = sha512sum of the file" \
                || check "$phase" "$r" download_sha512 FAIL "GET sha512 $dsum"
        fi

        blob=$(blob_files | head -1)
        if [ -n "$blob" ]; then
            # Information: the first GET after the upload, as a hypervisor right after it would see it
            # (a blob written direct is not in page cache: this reads the disk).
            record "$phase" "$r" blob_resident_cold "$(resident "$blob")" bytes "$bytes" - "stored blob in page cache after the upload"
            read -r code t n <<<"$(curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}' \
                -H "X-Auth-Token: $TOKEN" "$URL/v2/images/$id/file" 2>/dev/null || true)"
            [ "$code" = 200 ] && [ "${n%.*}" = "$bytes" ] && record "$phase" "$r" download_cold "$(mbps "$bytes" "$t")" MB/s "$bytes" "$t"
            # The measured GET compares with cat from page cache: the blob comes from there too.
            warm "$blob"
        fi
        ref_cat "$phase" "$r" cat "$bytes" "$file"
        local catf=$CAT
        if [ -n "$blob" ]; then
            record "$phase" "$r" blob_resident "$(resident "$blob")" bytes "$bytes" - "stored blob in page cache before GET"
        fi
        rss_begin "$OUT/raw/rss-download-$phase-r$r.tsv"
        curl -sS -o /dev/null -w '%{http_code} %{time_total} %{size_download}\n' -H "X-Auth-Token: $TOKEN" \
            "$URL/v2/images/$id/file" > "$OUT/raw/download-$phase-r$r.txt" 2>&1 || true
        rss_end "$phase" "$r" download "$base" "$OUT/raw/rss-download-$phase-r$r.tsv"
        read -r code t n < "$OUT/raw/download-$phase-r$r.txt" || true
        if [ "$code" = 200 ] && [ "${n%.*}" = "$bytes" ]; then
            down=$(mbps "$bytes" "$t")
            record "$phase" "$r" download "$down" MB/s "$bytes" "$t"
        else
            problem "download $phase r$r: HTTP $code, $n bytes"; record "$phase" "$r" download_error 1 count "$bytes" "$t"; down=-
        fi
        if [ -n "$blob" ]; then  # information: the same read from the server's own file
            ref_cat "$phase" "$r" cat_blob "$bytes" "$blob"
        fi
        loopback_round "$phase" "$r" "$bytes" "$file"
        delete_image "$id"
        [ -z "$(blob_files)" ] || problem "blob still on disk after DELETE ($phase r$r): $(blob_files | head -3)"
        log "$(printf '%-6s r%s  upload %7s MB/s  (dd fsync %s, digest %s)  download %7s MB/s  (cat %s)' "$phase" "$r" "$up" "$DD" "$DIGEST" "$down" "$catf")"
    done
    stop_server
}

# ---------------------------------------------------------------- concurrent uploads

conc_phase() {
    local bytes=$((CONC_MIB * MIB)) total=$((CONC * CONC_MIB * MIB)) phase=conc r i ids t0 t1 s errors code t n pids
    local parts=(); for i in $(seq 1 "$CONC"); do parts+=("$FILES/p$i"); done
    log "== $CONC concurrent uploads of $CONC_MIB MiB: $RUNS rounds"
    start_server "$phase"
    baseline_rss "$phase"
    local base=$BASELINE
    for r in $(seq 1 "$RUNS"); do
        ref_digest "$phase" "$r"
        ref_dd "$phase" "$r" "$total" "${parts[@]}"
        ids=(); for i in $(seq 1 "$CONC"); do ids+=("$(create_image "bench-conc-$r-$i")"); done
        warm "${parts[@]}"
        rss_begin "$OUT/raw/rss-conc-r$r.tsv"
        pids=()
        t0=$EPOCHREALTIME
        for i in $(seq 1 "$CONC"); do
            put_file "$phase" "$r" upload "${ids[$((i - 1))]}" "${parts[$((i - 1))]}" &
            pids+=($!)
        done
        for p in "${pids[@]}"; do wait "$p" || true; done
        t1=$EPOCHREALTIME
        rss_end "$phase" "$r" upload "$base" "$OUT/raw/rss-conc-r$r.tsv"
        errors=0
        for i in $(seq 1 "$CONC"); do
            read -r code t n < "$OUT/raw/upload-$phase-r$r-${ids[$((i - 1))]}.txt" || true
            if [ "$code" != 204 ] || [ "${n%.*}" != "$bytes" ]; then
                errors=$((errors + 1))
                problem "concurrent upload r$r #$i: HTTP $code, $n bytes: $(head -c 300 "$OUT/raw/upload-$phase-r$r-${ids[$((i - 1))]}.txt.body" 2>/dev/null)"
            fi
        done
        s=$(secs "$t0" "$t1")
        record "$phase" "$r" upload "$(mbps "$total" "$s")" MB/s "$total" "$s" "$CONC x $CONC_MIB MiB, wall time of all PUTs"
        record "$phase" "$r" upload_errors "$errors" count "$total" "$s"
        # Digests of every image against md5sum / sha*sum of its part (cross-talk between uploads would show here).
        local bad=0 img
        for i in $(seq 1 "$CONC"); do
            img=$(api "$URL/v2/images/${ids[$((i - 1))]}")
            if [ "$(echo "$img" | json_field checksum)" != "$(cat "${parts[$((i - 1))]}.md5")" ] \
               || [ "$(echo "$img" | json_field os_hash_value)" != "$(cat "${parts[$((i - 1))]}.$HASH")" ] \
               || [ "$(echo "$img" | json_field status)" != active ]; then
                bad=$((bad + 1)); echo "$img" > "$OUT/raw/image-conc-r$r-$i.json"
            fi
        done
        [ "$bad" = 0 ] && check "$phase" "$r" checksums OK "$CONC images: checksum = md5sum, os_hash_value = ${HASH}sum, active" \
            || check "$phase" "$r" checksums FAIL "$bad of $CONC images differ (raw/image-conc-r$r-*.json)"
        for i in "${ids[@]}"; do delete_image "$i"; done
        [ -z "$(blob_files)" ] || problem "blobs still on disk after DELETE (conc r$r): $(blob_files | wc -l) files"
        log "$(printf 'conc   r%s  %d x %d MiB: %7s MB/s aggregate, %d errors  (dd fsync %s, digest %s)' "$r" "$CONC" "$CONC_MIB" "$(mbps "$total" "$s")" "$errors" "$DD" "$DIGEST")"
    done
    stop_server
}

# ---------------------------------------------------------------- test data

make_file() { # path bytes: random data on the same disk, with md5, sha512 (and sha256) digests next to it
    openssl rand -out "$1" "$2" 2>/dev/null || head -c "$2" /dev/urandom > "$1"
    [ "$(stat -c %s "$1")" = "$2" ] || die "could not write $2 random bytes to $1"
    sync "$1"  # clean pages: the Dirty samples then show what the server writes
}
digest_files() { # files...: md5sum and sha*sum of each, two at a time
    local f algs=(md5 sha512); [ "$HASH" = sha512 ] || algs+=("$HASH")
    for a in "${algs[@]}"; do
        ( for f in "$@"; do "${a}sum" "$f" | cut -d' ' -f1 > "$f.$a"; done ) &
    done
    wait
}

# ---------------------------------------------------------------- run

{
    echo "date: $(date -u)"; echo "host: $(uname -a)"; echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
    echo "memory: $(awk '/MemTotal/ { printf "%d MiB", $2 / 1024 }' /proc/meminfo)"
    echo "git: $(git -C "$ROOT" rev-parse HEAD); uncommitted changes under Sources/ and Package.swift: $(git -C "$ROOT" status --porcelain -- Sources Package.swift | wc -l) files, diff sha1 $(git -C "$ROOT" diff HEAD -- Sources Package.swift | sha1sum | cut -c1-12)"
    echo "binary: $IMAGED_SRC ($BUILD, sha1 $(sha1sum "$IMAGED_BIN" | cut -c1-12), $(date -u -r "$IMAGED_SRC" +%FT%TZ)), run as a copy in the work dir"; echo "curl: $(curl --version | head -1)"; echo "openssl: $(openssl version)"
    echo "settings: SIZES=\"$SIZES\" RUNS=$RUNS SMALL_RUNS=$SMALL_RUNS CONC=$CONC CONC_MIB=$CONC_MIB HASH=$HASH SPEED_SECONDS=$SPEED_SECONDS"
    echo "work dir: $WORK ($(df -T "$WORK" | awk 'NR == 2 { print $2, $1, $7 }'), $(df -h "$WORK" | awk 'NR == 2 { print $4 }') free)"
    echo "mount: $(findmnt -no OPTIONS -T "$WORK" 2>/dev/null || true)"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2
[ "$(df --output=source "$DATA" | tail -1)" = "$(df --output=source "$FILES" | tail -1)" ] || die "data dir and test files are on different filesystems"
need=$(( (LARGEST * 3 + CONC * CONC_MIB * 2) / 1024 + 2 ))
avail=$(df --output=avail -BG "$WORK" | tail -1 | tr -dc 0-9)
[ "$avail" -ge "$need" ] || die "need about $need GiB free in $WORK, have $avail GiB"
note_load start
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

log "generating test files: $SIZES MiB (random)"
for mib in $SIZES; do make_file "$FILES/f$mib" $((mib * MIB)); done
digest_files $(for mib in $SIZES; do echo "$FILES/f$mib"; done)

for mib in $SIZES; do
    size_phase "$mib"
    [ -n "${KEEP_DATA:-}" ] || rm -f "$FILES/f$mib"
done

log "generating $CONC test files of $CONC_MIB MiB"
for i in $(seq 1 "$CONC"); do make_file "$FILES/p$i" $((CONC_MIB * MIB)); done
digest_files $(for i in $(seq 1 "$CONC"); do echo "$FILES/p$i"; done)
conc_phase
[ -n "${KEEP_DATA:-}" ] || rm -f "$FILES"/p[0-9]*

note_load end
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
cat > "$OUT/meta.env" <<META
SIZES="$SIZES"
LARGEST=$LARGEST
CONC=$CONC
CONC_MIB=$CONC_MIB
HASH=$HASH
BLOB_STORE="$BLOB_STORE"
BUILD="$BUILD"
LOAD_START="$LOAD_START"
LOAD_END="$LOAD_END"
META
"$BENCH/data-summary.sh" "$OUT"
log "raw results in ${OUT#"$ROOT"/}"
[ ! -s "$OUT/problems.txt" ] || { log "problems (see problems.txt):"; cat "$OUT/problems.txt" >&2; exit 1; }
