#!/usr/bin/env bash
# Web console benchmark: the image list page (/console/images, server-rendered HTML) over a catalog of
# >= 100,000 images, next to the JSON list of the same page (/v2/images, same principal, same sort and
# limit) in the same run. Issue 22's target: the page renders in <= 20 ms p99.
#
#   bench/console.sh                             # release build, 5 rounds of 10 s per figure
#   IMAGED_BIN=path/to/imaged bench/console.sh   # skip the build
#
# Knobs (environment): RUNS=5 DURATION=10 CONNS=8 THREADS=2 TARGET_IMAGES=100000 LIMIT=50 PORT=19396
#
# Figures, each round in alternating order (console first in odd rounds, JSON first in even ones):
#   console_first / json_first    the first page (newest first), LIMIT rows
#   console_marker / json_marker  a page from a random marker among all images (keyset paging)
#   console_search                a case-insensitive name search matching every image (`q=bench`)
#   console_search_one            a search matching one image: every row is looked at (no index can
#                                 serve a substring); the JSON list has no substring filter, so the
#                                 reference of both searches is the JSON first page
#   healthz                       the HTTP stack alone
# The page and the JSON list come from the same `ImageService.listImages`; the page adds one row (is
# there a next page?) and the HTML. CONNS=8 stands for a handful of operators' browsers; the catalog
# benchmark (bench/catalog.sh) measures the JSON list at 32 connections.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export BENCH_DIR=$BENCH

RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-8}
THREADS=${THREADS:-2}
TARGET_IMAGES=${TARGET_IMAGES:-100000}
LIMIT=${LIMIT:-50}
PORT=${PORT:-19396}
URL=http://127.0.0.1:$PORT


# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, wait_for_healthz, release_imaged, ensure_command, run_wrk, median, col, ratio
latency_results console

latency_tools_and_binary

DATA=$(mktemp -d "${TMPDIR:-/tmp}/imaged-cbench.XXXXXX")
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$DATA"
}
trap cleanup EXIT
curl -s -o /dev/null "$URL/healthz" && die "something already answers on $URL (set PORT=...)"

# The console's user: a local admin account of project p1, the project of the API's static token.
PASSWORD=bench-console-$RANDOM$RANDOM
printf '%s\n' "$PASSWORD" | "$IMAGED_BIN" account create bench --project p1 --role admin --password-stdin \
    --data-dir "$DATA/imaged" > "$OUT/account.log" 2>&1 || die "account create failed; see $OUT/account.log"
echo '{"tokens": [{"token": "benchtok", "user_id": "u1", "project_id": "p1", "roles": ["admin"]}]}' > "$DATA/tokens.json"
"$IMAGED_BIN" serve --data-dir "$DATA/imaged" --listen "127.0.0.1:$PORT" --token-file "$DATA/tokens.json" \
    --log-level warning > "$OUT/server.log" 2>&1 &
SERVER_PID=$!
wait_for_healthz "$URL" "$SERVER_PID" "$OUT/server.log" || die "imaged did not start"
DB=$DATA/imaged/catalog.sqlite
count() { sqlite3 -batch "$DB" 'SELECT count(*) FROM images'; }

log "seeding $TARGET_IMAGES images through POST /v2/images"
while [ "$(count)" -lt "$TARGET_IMAGES" ]; do
    env BENCH_TOKEN=benchtok BENCH_TAG="seed$RANDOM" wrk -t"$THREADS" -c32 -d10s --timeout 10s -s "$BENCH/create.lua" "$URL/" \
        > "$OUT/raw/seed.txt" 2>&1 || die "seeding failed"
    log "  $(count) images"
done
sqlite3 -batch "$DB" "SELECT id FROM images ORDER BY random() LIMIT 20000" > "$OUT/ids.txt"

# Log in as a browser does: the login page's CSRF cookie and field, then the session cookie.
JAR=$DATA/cookies.txt
page=$(curl -sf -c "$JAR" "$URL/console/login")
csrf=$(printf '%s' "$page" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -1)
[ -n "$csrf" ] || die "no CSRF field on the login page"
code=$(curl -s -o /dev/null -w '%{http_code}' -b "$JAR" -c "$JAR" --data-urlencode "csrf=$csrf" --data-urlencode "username=bench" \
    --data-urlencode "password=$PASSWORD" "$URL/console/login")
[ "$code" = 303 ] || die "console login answered $code"
SESSION=$(awk '$6 == "imaged_console" { print $7 }' "$JAR")
[ -n "$SESSION" ] || die "no console session cookie"
COOKIE="imaged_console=$SESSION"

CONSOLE_LIST="/console/images?limit=$LIMIT"
JSON_LIST="/v2/images?limit=$LIMIT&sort=created_at:desc"
SEARCH="/console/images?limit=$LIMIT&q=bench"
one=$(sqlite3 -batch "$DB" "SELECT name FROM images ORDER BY random() LIMIT 1")
SEARCH_ONE="/console/images?limit=$LIMIT&q=$(printf '%s' "${one#bench-}" | tr 'a-z' 'A-Z')"
hits=$(curl -sf -H "Cookie: $COOKIE" "$URL$SEARCH_ONE" | grep -c '<td class="name">') || true
[ "$hits" = 1 ] || die "the search for one image ($SEARCH_ONE) shows $hits rows"
# The page holds LIMIT image rows and a next-page link; the JSON list LIMIT images: the same page.
rows=$(curl -sf -H "Cookie: $COOKIE" "$URL$CONSOLE_LIST" | grep -c '<td class="name">') || true
[ "$rows" = "$LIMIT" ] || die "the console page shows $rows rows, not $LIMIT"
n=$(curl -sf -H "X-Auth-Token: benchtok" "$URL$JSON_LIST" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["images"]))')
[ "$n" = "$LIMIT" ] || die "the JSON list has $n images, not $LIMIT"
first_page=$(curl -sf -H "Cookie: $COOKIE" "$URL$CONSOLE_LIST" | grep -o 'href="/console/images/[0-9a-f-]*"' | head -3 | cut -d/ -f4 | tr -d '"')
first_json=$(curl -sf -H "X-Auth-Token: benchtok" "$URL$JSON_LIST" | python3 -c 'import json,sys; print("\n".join(i["id"] for i in json.load(sys.stdin)["images"][:3]))')
[ "$first_page" = "$first_json" ] || die "the page and the JSON list do not start with the same images"
log "catalog: $(count) images; the page and the JSON list agree on the first page ($LIMIT rows)"

for r in $(seq 1 "$RUNS"); do
    if [ $((r % 2)) -eq 1 ]; then order="console json"; else order="json console"; fi
    run_wrk healthz "$r" healthz.lua
    for mode in $order; do
        if [ "$mode" = console ]; then
            run_wrk console_first "$r" list.lua BENCH_COOKIE="$COOKIE" BENCH_LIST_PATH="$CONSOLE_LIST"
            run_wrk console_marker "$r" list.lua BENCH_COOKIE="$COOKIE" BENCH_LIST_PATH="$CONSOLE_LIST" BENCH_IDS="$OUT/ids.txt"
            run_wrk console_search "$r" list.lua BENCH_COOKIE="$COOKIE" BENCH_LIST_PATH="$SEARCH"
            run_wrk console_search_one "$r" list.lua BENCH_COOKIE="$COOKIE" BENCH_LIST_PATH="$SEARCH_ONE"
        else
            run_wrk json_first "$r" list.lua BENCH_LIST_PATH="$JSON_LIST"
            run_wrk json_marker "$r" list.lua BENCH_LIST_PATH="$JSON_LIST" BENCH_IDS="$OUT/ids.txt"
        fi
    done
done

ms() { awk -v x="$1" 'BEGIN { if (x == "-") print "-"; else printf "%.2f", x / 1000 }'; }
{
    echo "Web console image list vs the JSON list of the same page; $(count) images; $RUNS rounds x ${DURATION}s, $CONNS connections, $THREADS wrk threads; $LIMIT rows; $BUILD"
    printf '%-34s %-12s %-12s %-12s %-14s %-8s %s\n' figure "p99 ms" "p50 ms" "req/s" "reference" "p99 ratio" "target"
    row() { # label figure reference
        local p99 p50 rps ref q verdict=info
        p99=$(col "$2" 5 | median); p50=$(col "$2" 4 | median); rps=$(col "$2" 3 | median)
        ref=$(col "$3" 5 | median); q=$(ratio "$2" "$3" 5)
        if [[ $2 == console_first || $2 == console_marker ]]; then
            verdict=$(awk -v x="$p99" 'BEGIN { print (x / 1000 <= 20 ? "PASS (<= 20 ms)" : "FAIL (> 20 ms)") }')
        fi
        local e; e=$(awk -F'\t' -v f="$2" '$1 == f { s += $6 } END { print s + 0 }' "$RESULTS")
        [ "$e" -gt 0 ] && verdict="FAIL ($e errors)"
        printf '%-34s %-12s %-12s %-12s %-14s %-8s %s\n' "$1" "$(ms "$p99")" "$(ms "$p50")" "$rps" "$3 $(ms "$ref")" "$q" "$verdict"
    }
    row "page, first $LIMIT" console_first json_first
    row "page, random marker" console_marker json_marker
    row "page, search matching all" console_search json_first
    row "page, search matching one image" console_search_one json_first
    row "JSON list, first $LIMIT" json_first healthz
    row "JSON list, random marker" json_marker healthz
    row "/healthz" healthz healthz
    echo "p99 ratio = median over rounds of (p99 / reference p99 in the same round)"
} | tee "$OUT/table.txt"
