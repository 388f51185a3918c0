#!/usr/bin/env bash
# Many clients at once (issue 23): 1,000 concurrent keep-alive connections doing GET one image, next
# to 16 connections in the same run; then 100 concurrent 64 MiB uploads, next to `dd conv=fsync` of
# the same bytes on the same disk.
#
#   bench/clients.sh                             # release build
#   IMAGED_BIN=path/to/imaged bench/clients.sh   # skip the build
#
# Knobs (environment): RUNS=5 DURATION=10 MANY=1000 FEW=16 THREADS=2 TARGET_IMAGES=10000
#   UPLOADS=100 UPLOAD_MIB=64 UPLOAD_RUNS=1 PORT=19397 (nio-floor: PORT+1) NIO_FLOOR=1
#   SERVER_CPUS= CLIENT_CPUS= (taskset lists: servers and wrk apart during the GET rounds)
#   NIO_SINGLETON_GROUP_LOOP_COUNT=N: imaged and nio-floor on N event loop threads (imaged's
#   --event-loop-threads; default half the cores)
#   WORK=<dir on the disk to measure> (default: $TMPDIR)
#
# Every connection comes from 127.0.0.1, so the server runs with --max-connections-per-client raised to
# MANY + 64 (its default, 256 per client address, is what a real node keeps against one greedy host).
# Also measured, as references: /healthz at both connection counts; SwiftNIO alone answering on the
# event loop (bench/nio-floor, NIO_FLOOR=0 skips it); and the server's CPU per request for each.
# Targets: 1,000 connections >= 0.9x the 16-connection throughput, no errors; uploads aggregate
# >= 0.8x dd, server RSS growth < 256 MiB, every image's digests equal to the bytes sent.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export BENCH_DIR=$BENCH BENCH_TOKEN=benchtok

RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
MANY=${MANY:-1000}
FEW=${FEW:-16}
THREADS=${THREADS:-2}
TARGET_IMAGES=${TARGET_IMAGES:-10000}
UPLOADS=${UPLOADS:-100}
UPLOAD_MIB=${UPLOAD_MIB:-64}
UPLOAD_RUNS=${UPLOAD_RUNS:-1}
PORT=${PORT:-19397}
URL=http://127.0.0.1:$PORT

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, serve_imaged, run_wrk, median, col, ratio, latency_results
latency_results clients

latency_tools_and_binary

# 1,000 sockets on each side, plus files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((MANY + 512)) ] || die "open-file limit $(ulimit -n) is below $((MANY + 512))"

WORK=$(mktemp -d "${WORK:-${TMPDIR:-/tmp}}/imaged-clients.XXXXXX")
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "${FLOOR_PID:-}" ] && kill "$FLOOR_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
curl -s -o /dev/null "$URL/healthz" && die "something already answers on $URL (set PORT=...)"

serve_imaged "$WORK" --max-connections $((MANY + 1024)) --max-connections-per-client $((MANY + 64))
DB=$WORK/data/catalog.sqlite
count() { sqlite3 -batch "$DB" 'SELECT count(*) FROM images'; }
log "seeding $TARGET_IMAGES images through POST /v2/images"
while [ "$(count)" -lt "$TARGET_IMAGES" ]; do
    env BENCH_TAG="seed$RANDOM" wrk -t"$THREADS" -c32 -d2s --timeout 10s -s "$BENCH/create.lua" "$URL/" \
        > "$OUT/raw/seed.txt" 2>&1 || die "seeding failed"
done
sqlite3 -batch "$DB" "SELECT id FROM images" > "$OUT/ids.txt"
log "catalog: $(count) images"

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status"; }

# ---------------------------------------------------------------- GET one, many connections
# Each run also records the server's CPU per request (user + system, µs), and /healthz runs at the same
# connection counts: how much the framework alone (no auth, no catalog) loses at MANY, the reference
# for what GET loses there.
run_wrk_with_cpu() { # FIGURE ROUND SCRIPT [ENV…]: run_wrk, then a "cpu_FIGURE" row: server µs per request
    local t0 t1 n pid=${CPU_PID:-$SERVER_PID}
    t0=$(cpu_ticks "$pid" | awk '{ print $2 }')
    run_wrk "$@"
    t1=$(cpu_ticks "$pid" | awk '{ print $2 }')
    n=$(awk '/requests in/ { print $1; exit }' "$OUT/raw/$1-r$2.txt")
    printf '%s\t%s\t%s\t0\t0\t0\t0\n' "cpu_$1" "$2" \
        "$(awk -v t=$((t1 - t0)) -v u="$TICK_US" -v n="$n" 'BEGIN { printf "%.1f", (n > 0 ? t * u / n : 0) }')" >> "$RESULTS"
}
# The floor under the stack (bench/nio-floor): SwiftNIO alone with imaged's listener settings and
# HTTP/1 codec, answering on the event loop. NIO_FLOOR=0 skips it.
FLOOR_PID=
if [ "${NIO_FLOOR:-1}" != 0 ]; then
    log "building bench/nio-floor (release)"
    flock /tmp/imaged-build.lock swift build -c release --package-path "$BENCH/nio-floor" \
        --scratch-path "$ROOT/.build-nio-floor" > "$OUT/nio-floor.build.log" 2>&1 || die "nio-floor did not build; see $OUT/nio-floor.build.log"
    FLOOR_URL=http://127.0.0.1:$((PORT + 1))
    curl -s -o /dev/null "$FLOOR_URL/" && die "something already answers on $FLOOR_URL (set PORT=...)"
    "$ROOT/.build-nio-floor/release/nio-floor" $((PORT + 1)) > "$OUT/nio-floor.log" 2>&1 &
    FLOOR_PID=$!
    wait_for_healthz "$FLOOR_URL" "$FLOOR_PID" "$OUT/nio-floor.log" || die "nio-floor did not answer"
fi
# SERVER_CPUS / CLIENT_CPUS (taskset lists, e.g. 0 and 1): the servers and wrk on separate CPUs for
# the GET rounds, as when the clients are other machines; unset, they share every CPU.
pin_servers() { # CPU list: every thread of imaged (and of nio-floor) on those CPUs
    local pid
    for pid in $SERVER_PID $FLOOR_PID; do taskset -a -p -c "$1" "$pid" > /dev/null; done
}
[ -n "${SERVER_CPUS:-}" ] && pin_servers "$SERVER_CPUS"
for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then order="$FEW $MANY"; else order="$MANY $FEW"; fi
    for c in $order; do
        CONNS=$c run_wrk_with_cpu "get_c$c" "$r" get_one.lua BENCH_IDS="$OUT/ids.txt"
        CONNS=$c run_wrk_with_cpu "healthz_c$c" "$r" healthz.lua
        if [ -n "$FLOOR_PID" ]; then URL=$FLOOR_URL CPU_PID=$FLOOR_PID CONNS=$c run_wrk_with_cpu "floor_c$c" "$r" healthz.lua; fi
    done
done

[ -n "${SERVER_CPUS:-}" ] && pin_servers "0-$(($(nproc) - 1))"

# ---------------------------------------------------------------- concurrent uploads
# One random base file; upload i sends a 16-byte header naming i, then the base, so every image has its
# own digests. The expected digests are computed from the same bytes, apart from the server.
BASE=$WORK/base.bin
head -c $((UPLOAD_MIB * 1024 * 1024 - 16)) /dev/urandom > "$BASE"
expected() { # i -> "md5 sha512"
    (printf '%016d' "$1"; cat "$BASE") | python3 -c '
import hashlib, sys
m, s = hashlib.md5(), hashlib.sha512()
for chunk in iter(lambda: sys.stdin.buffer.read(1 << 20), b""):
    m.update(chunk); s.update(chunk)
print(m.hexdigest(), s.hexdigest())'
}
bytes_total=$((UPLOADS * UPLOAD_MIB * 1024 * 1024))
upload_errors=0
for r in $(seq 1 "$UPLOAD_RUNS"); do
    # dd reference: the same number of bytes written and fsynced on the same disk (the data dir's).
    sync
    t0=$(date +%s.%N)
    dd if=/dev/zero of="$WORK/data/dd.bin" bs=4M count=$((bytes_total / 4194304)) conv=fsync status=none
    t1=$(date +%s.%N)
    rm -f "$WORK/data/dd.bin"
    dd_mibs=$(awk -v b="$bytes_total" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / 1048576 / (z - a) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' dd_fsync "$r" "$dd_mibs" 0 0 0 >> "$RESULTS"

    ids=()
    for i in $(seq 1 "$UPLOADS"); do ids+=("$(new_raw_image)"); done
    rss0=$(rss_kib)
    peak=$rss0
    t0=$(date +%s.%N)
    pids=()
    for i in $(seq 1 "$UPLOADS"); do
        (printf '%016d' "$i"; cat "$BASE") | curl -sf -o /dev/null -X PUT -H "X-Auth-Token: benchtok" \
            -H 'Content-Type: application/octet-stream' -T - "$URL/v2/images/${ids[$((i - 1))]}/file" &
        pids+=($!)
    done
    while :; do
        running=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && running=1 && break; done
        rss=$(rss_kib); [ "$rss" -gt "$peak" ] && peak=$rss
        [ $running -eq 0 ] && break
        sleep 0.2
    done
    failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
    t1=$(date +%s.%N)
    mibs=$(awk -v b="$bytes_total" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.1f", b / 1048576 / (z - a) }')
    # Every image active, with the digests of the bytes its upload sent.
    wrong=0
    for i in $(seq 1 "$UPLOADS"); do
        read -r md5 sha <<<"$(expected "$i")"
        got=$(bench_api "$URL/v2/images/${ids[$((i - 1))]}" | python3 -c '
import json, sys; d = json.load(sys.stdin); print(d["status"], d["checksum"], d["os_hash_value"], d["size"])')
        [ "$got" = "active $md5 $sha $((UPLOAD_MIB * 1024 * 1024))" ] || { wrong=$((wrong + 1)); log "image $i: $got"; }
    done
    upload_errors=$((upload_errors + failed + wrong))
    growth=$(((peak - rss0) / 1024))
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' uploads "$r" "$mibs" "$growth" 0 $((failed + wrong)) >> "$RESULTS"
    log "uploads r$r: $UPLOADS x $UPLOAD_MIB MiB at $mibs MiB/s (dd $dd_mibs MiB/s); RSS $((rss0 / 1024)) -> peak $((peak / 1024)) MiB; failed $failed, wrong digests $wrong"
    for id in "${ids[@]}"; do bench_api -X DELETE "$URL/v2/images/$id" > /dev/null || true; done
done

# ---------------------------------------------------------------- table
ms() { awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.2f", x / 1000 }'; }
errs() { awk -F'\t' -v f="$1" '$1 == f { s += $6 } END { print s + 0 }' "$RESULTS"; }
{
    echo "Many clients: $(count) images; GET one at $FEW and $MANY keep-alive connections, $RUNS rounds x ${DURATION}s, $THREADS wrk threads; $UPLOADS concurrent ${UPLOAD_MIB} MiB uploads x $UPLOAD_RUNS; $BUILD; event loop threads: ${NIO_SINGLETON_GROUP_LOOP_COUNT:-the default, half the cores}${SERVER_CPUS:+; GET rounds: servers on CPUs $SERVER_CPUS}${CLIENT_CPUS:+, wrk on CPUs $CLIENT_CPUS}"
    few_rps=$(col "get_c$FEW" 3 | median); many_rps=$(col "get_c$MANY" 3 | median); q=$(ratio "get_c$MANY" "get_c$FEW" 3)
    verdict=$(awk -v q="$q" 'BEGIN { print (q >= 0.9 ? "PASS" : "FAIL") }'); [ "$(errs "get_c$MANY")" -gt 0 ] && verdict="FAIL ($(errs "get_c$MANY") errors)"
    printf '%-40s %-14s %-14s %-10s %s\n' figure median reference ratio "target / result"
    printf '%-40s %-14s %-14s %-10s %s\n' "GET one, $MANY connections (req/s)" "$many_rps" "$FEW: $few_rps" "$q" ">= 0.90 $verdict"
    printf '%-40s %-14s %-14s %-10s %s\n' "GET one, $MANY connections, p99 (ms)" "$(ms "$(col "get_c$MANY" 5 | median)")" "$FEW: $(ms "$(col "get_c$FEW" 5 | median)")" "" "errors $(errs "get_c$MANY")"
    printf '%-40s %-14s %-14s %-10s %s\n' "GET one, $MANY connections, p50 (ms)" "$(ms "$(col "get_c$MANY" 4 | median)")" "$FEW: $(ms "$(col "get_c$FEW" 4 | median)")" "" ""
    # LABEL FIGURE NOTE: FIGURE's median at MANY, at FEW, and the median ratio of the two
    many_few() { printf '%-40s %-14s %-14s %-10s %s\n' "$1" "$(col "${2}_c$MANY" 3 | median)" "$FEW: $(col "${2}_c$FEW" 3 | median)" "$(ratio "${2}_c$MANY" "${2}_c$FEW" 3)" "$3"; }
    many_few "  server CPU per GET (us)" cpu_get info
    many_few "  /healthz, $MANY connections (req/s)" healthz "reference: the framework alone"
    many_few "  server CPU per /healthz (us)" cpu_healthz info
    if [ -n "$FLOOR_PID" ]; then
        many_few "  NIO alone, $MANY connections (req/s)" floor "reference: the floor (bench/nio-floor)"
        many_few "  CPU per request, NIO alone (us)" cpu_floor info
    fi
    up=$(col uploads 3 | median); dd=$(col dd_fsync 3 | median); q=$(ratio uploads dd_fsync 3); growth=$(col uploads 4 | median)
    verdict=$(awk -v q="$q" -v g="$growth" 'BEGIN { print (q >= 0.8 && g < 256 ? "PASS" : "FAIL") }'); [ "$upload_errors" -gt 0 ] && verdict="FAIL ($upload_errors failed or wrong)"
    printf '%-40s %-14s %-14s %-10s %s\n' "$UPLOADS concurrent uploads (MiB/s)" "$up" "dd: $dd" "$q" ">= 0.80, RSS < 256 MiB: $verdict"
    printf '%-40s %-14s\n' "server RSS growth during uploads (MiB)" "$growth"
    echo "ratio = median over rounds of (figure / reference in the same round); dd = dd bs=4M conv=fsync of the same byte count"
} | tee "$OUT/table.txt"
