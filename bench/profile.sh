#!/usr/bin/env bash
# Profiles the server under one of the catalog benchmark's loads with perf (Debian: linux-perf).
#
#   KEEP_DATA=1 bench/catalog.sh          # once, to get a seeded catalog (its path is in env.txt)
#   DATA_DIR=/tmp/imaged-bench.XXXX bench/profile.sh get|get_hot|list_active|list_queued|list_marker|marker_walk|create|healthz [seconds]
#   (KEEP_DATA=1 bench/growth.sh keeps its catalogs too; marker_walk is its figure: list 25 by
#   created_at from a marker drawn among 100,000 images of any status)
#
# IMAGED_BIN defaults to the release build; DURABILITY=normal|full (default normal). perf samples
# the server process only (cpu-clock, frame-pointer call graphs) while wrk runs the same script,
# connections and threads as catalog.sh. Writes perf.data, a flat and a call-graph report
# (Swift symbols demangled) to bench/results/profile-<figure>-<UTC time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export BENCH_DIR=$ROOT/bench BENCH_TOKEN=benchtok
FIG=${1:?figure: get, get_hot, list_active, list_queued, list_marker, marker_walk, create, healthz}
SECS=${2:-10}
: "${DATA_DIR:?DATA_DIR must name a catalog seeded by bench/catalog.sh (KEEP_DATA=1)}"
IMAGED_BIN=${IMAGED_BIN:-$ROOT/.build-release/release/imaged}
DURABILITY=${DURABILITY:-normal}
CONNS=${CONNS:-32} THREADS=${THREADS:-2} PORT=${PORT:-19394}
URL=http://127.0.0.1:$PORT
OUT=$ROOT/bench/results/profile-$FIG-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT"
# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"

echo '{"tokens": [{"token": "benchtok", "user_id": "u1", "project_id": "p1", "roles": ["admin"]}]}' > "$OUT/tokens.json"
"$IMAGED_BIN" serve --data-dir "$DATA_DIR" --listen "127.0.0.1:$PORT" --token-file "$OUT/tokens.json" \
    --log-level warning --durability "$DURABILITY" > "$OUT/server.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do curl -s -o /dev/null "$URL/healthz" && break; sleep 0.2; done

sqlite3 -batch "$DATA_DIR/catalog.sqlite" "SELECT id FROM images WHERE status IN ('queued','active')" > "$OUT/ids.txt"
case $FIG in
    get) script=get_one.lua; envs=(BENCH_IDS="$OUT/ids.txt") ;;
    get_hot) script=get_one.lua
        sqlite3 -batch "$DATA_DIR/catalog.sqlite" "SELECT id FROM images WHERE status IN ('queued','active') ORDER BY random() LIMIT 10000" > "$OUT/ids.txt"
        envs=(BENCH_IDS="$OUT/ids.txt") ;;
    list_active) script=list.lua; envs=(BENCH_LIST_PATH='/v2/images?status=active&sort=created_at:desc&limit=25') ;;
    list_queued) script=list.lua; envs=(BENCH_LIST_PATH='/v2/images?status=queued&sort=created_at:desc&limit=25') ;;
    list_marker) script=list.lua
        sqlite3 -batch "$DATA_DIR/catalog.sqlite" "SELECT id FROM images WHERE status = 'queued' ORDER BY random() LIMIT 10000" > "$OUT/ids.txt"
        envs=(BENCH_LIST_PATH='/v2/images?status=queued&sort=created_at:desc&limit=25' BENCH_IDS="$OUT/ids.txt") ;;
    marker_walk) script=list.lua
        sqlite3 -batch "$DATA_DIR/catalog.sqlite" "SELECT id FROM images ORDER BY random() LIMIT 100000" > "$OUT/ids.txt"
        envs=(BENCH_LIST_PATH='/v2/images?limit=25&sort_key=created_at&sort_dir=desc' BENCH_IDS="$OUT/ids.txt") ;;
    create) script=create.lua; envs=(BENCH_TAG=profile) ;;
    healthz) script=healthz.lua; envs=() ;;
    *) echo "unknown figure $FIG" >&2; exit 2 ;;
esac

# Warm up, then sample the server while wrk runs.
env "${envs[@]}" wrk -t"$THREADS" -c"$CONNS" -d2s -s "bench/$script" "$URL/" > /dev/null
perf_record "$PID" "$SECS" "$OUT"
PERF=$!
env "${envs[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${SECS}s" -s "bench/$script" "$URL/" | tee "$OUT/wrk.txt" | grep -E 'RESULT|Requests/sec'
wait $PERF || true

perf_reports "$OUT"
echo "profile in ${OUT#"$ROOT"/}: flat.txt (self time), by-dso.txt, children.txt (inclusive)"
grep -v '^#' "$OUT/by-dso.txt" | grep -v '^$' | head -15
grep -v '^#' "$OUT/flat.txt" | grep -v '^$' | head -40
