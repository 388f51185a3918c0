#!/usr/bin/env bash
# Catalog benchmark: GET one image, list 25, create, at 32 connections over a catalog of
# >= 100,000 images, each figure next to a reference measured in the same run.
#
#   bench/catalog.sh                      # release build, 5 rounds of 10 s, ~15-20 min after the build
#   IMAGED_BIN=path/to/imaged bench/catalog.sh   # skip the build (e.g. .build/debug/imaged to test the script)
#
# Knobs (environment): RUNS=5 DURATION=10 CONNS=32 THREADS=2 TARGET_IMAGES=100000
#   EXTRA_ACTIVE=20000 EXTRA_DEACTIVATED=2000 EXTRA_DELETED=2000 PORT=19393
#   DATA_DIR=<dir> (reuse a seeded catalog; default: a fresh temporary one, removed at the end)
#   KEEP_DATA=1 (keep the temporary data directory)
#
# What it does (see bench/README.md for the reasoning):
#  1. builds `imaged` in release mode (scratch path .build-release), installs wrk/sqlite3/curl if missing;
#  2. seeds TARGET_IMAGES images through POST /v2/images (status queued), then, with the server
#     stopped, adds rows in other statuses (active, deactivated, deleted) with sqlite3 so that a
#     status filter is selective;
#  3. server with --durability normal: RUNS rounds of
#       /healthz (reference) | GET one (random id among all) | GET one (hot 10k ids) | list 25 status=active | list 25 status=queued |
#       list 25 status=queued from a random marker
#     then RUNS rounds of  create | sqlite3 CLI inserts, synchronous=NORMAL, 1 row per transaction
#     (reference) and 32 rows per transaction (what batching commits would allow);
#  4. server with --durability full (the default): RUNS rounds of
#       /healthz | create | the same sqlite3 CLI inserts with synchronous=FULL;
#  5. prints the table (median, min-max, paired ratio to the reference, target) and writes
#     everything raw to bench/results/catalog-<UTC time>/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export BENCH_DIR=$BENCH

RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
TARGET_IMAGES=${TARGET_IMAGES:-100000}
EXTRA_ACTIVE=${EXTRA_ACTIVE:-20000}
EXTRA_DEACTIVATED=${EXTRA_DEACTIVATED:-2000}
EXTRA_DELETED=${EXTRA_DELETED:-2000}
PORT=${PORT:-19393}
SEED_MAX_SECONDS=${SEED_MAX_SECONDS:-3600}
URL=http://127.0.0.1:$PORT

if [ "${1:-}" = --table ]; then
    OUT=$(cd "${2:?usage: bench/catalog.sh --table bench/results/catalog-<time>}" && pwd)
    RESULTS=$OUT/results.tsv
    TABLE_ONLY=1
else
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    OUT=$BENCH/results/catalog-$STAMP
    mkdir -p "$OUT/raw"
    RESULTS=$OUT/results.tsv
    TABLE_ONLY=
    printf 'figure\tround\trps\tmean_us\tp50_us\tp90_us\tp99_us\tmax_us\trequests\terrors\tsrv_cpu_us_per_req\tbusy_pct\tctxsw_per_req\tsteal_ms\n' > "$RESULTS"
fi

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, wait_for_healthz, release_imaged, ensure_command

# ---------------------------------------------------------------- table

# Reads $OUT/results.tsv and $OUT/meta.env; `bench/catalog.sh --table <results dir>` reprints it.

# stat figure column -> "median min max n"
stat() {
    awk -F'\t' -v f="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) col = i; next }
        $1 == f { print $col }' "$RESULTS" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- - - 0"; exit }
        m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        print m, v[1], v[NR], NR }'
}
# paired figure ref column -> median over rounds of figure/ref
paired() {
    awk -F'\t' -v f="$1" -v g="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) col = i; next }
        $1 == f { a[$2] = $col } $1 == g { b[$2] = $col }
        END { for (r in a) if ((r in b) && b[r] > 0) print a[r] / b[r] }' "$RESULTS" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
errors_of() { awk -F'\t' -v f="$1" '$1 == f { s += $10 } END { print s + 0 }' "$RESULTS"; }

print_table() {
    # shellcheck disable=SC1091
    . "$OUT/meta.env"
    local TABLE=$OUT/table.txt
    {
    printf '%-44s %-26s %-30s %-8s %-10s %s\n' "figure" "median (min-max), n=$RUNS" "reference: median" "ratio" "target" "result"
    v() { awk -v x="$1" -v s="$scale" -v f="$fmt" 'BEGIN { if (x == "-") print "-"; else printf f, x / s }'; }
    row() { # label fig column ref refcolumn unit op target
        local label=$1 fig=$2 col=$3 ref=$4 rcol=$5 unit=$6 op=${7:-} target=${8:-}
        local m lo hi n rm ratio scale=1 fmt='%.0f' verdict=info
        read -r m lo hi n <<<"$(stat "$fig" "$col")"
        read -r rm _ <<<"$(stat "$ref" "$rcol")"
        ratio=$(paired "$fig" "$ref" "$col")
        if [ "$unit" = ms ]; then scale=1000; fmt='%.2f'; fi
        if [ -n "$op" ] && [ "$m" != - ]; then
            verdict=$(awk -v x="$m" -v s=$scale -v t="$target" -v op="$op" 'BEGIN { x /= s;
                print ((op == ">=" && x >= t) || (op == "<=" && x <= t)) ? "PASS" : "FAIL" }')
        fi
        local e; e=$(errors_of "$fig"); [ "$e" -gt 0 ] && verdict="FAIL ($e errors)"
        printf '%-44s %-26s %-30s %-8s %-10s %s\n' "$label" "$(v "$m") $unit ($(v "$lo")-$(v "$hi"))" \
            "$ref $(v "$rm") $unit" "$ratio" "${op:+$op $target $unit}" "$verdict"
    }
    row "GET one image (uniform over all ids)" get rps healthz rps req/s ">=" 15000
    row "GET one image (uniform), p99" get p99_us healthz p99_us ms
    row "GET one image (hot set of 10,000 ids)" get_hot rps healthz rps req/s
    row "list 25 status=active sort=created_at, p99" list_active p99_us healthz p99_us ms "<=" 10
    row "list 25 status=active, p50" list_active p50_us healthz p50_us ms
    row "list 25 status=active, throughput" list_active rps healthz rps req/s
    row "list 25 status=queued sort=created_at, p99" list_queued p99_us healthz p99_us ms "<=" 10
    row "list 25 status=queued, throughput" list_queued rps healthz rps req/s
    row "list 25 status=queued random marker, p99" list_marker p99_us healthz p99_us ms "<=" 10
    row "list 25 status=queued random marker, req/s" list_marker rps healthz rps req/s
    row "create, --durability normal" create_normal rps sqlite_normal rps req/s ">=" 3000
    row "create, --durability full (default)" create_full rps sqlite_full rps req/s ">=" 3000
    row "create full, p99" create_full p99_us healthz_full p99_us ms
    row "create normal vs 32 rows/txn sqlite3 CLI" create_normal rps sqlite_normal_b32 rps req/s
    row "create full vs 32 rows/txn sqlite3 CLI" create_full rps sqlite_full_b32 rps req/s
    row "sqlite3 CLI 32 rows/txn, NORMAL (batching)" sqlite_normal_b32 rps sqlite_normal rps rows/s
    row "sqlite3 CLI 32 rows/txn, FULL (batching)" sqlite_full_b32 rps sqlite_full rps rows/s
    row "/healthz (reference), normal server" healthz rps healthz rps req/s
    row "/healthz (reference), full server" healthz_full rps healthz_full rps req/s
    echo
    echo "server CPU per request (median us): healthz $(stat healthz srv_cpu_us_per_req | cut -d' ' -f1), get $(stat get srv_cpu_us_per_req | cut -d' ' -f1), get_hot $(stat get_hot srv_cpu_us_per_req | cut -d' ' -f1), list_active $(stat list_active srv_cpu_us_per_req | cut -d' ' -f1), list_queued $(stat list_queued srv_cpu_us_per_req | cut -d' ' -f1), list_marker $(stat list_marker srv_cpu_us_per_req | cut -d' ' -f1), create_normal $(stat create_normal srv_cpu_us_per_req | cut -d' ' -f1), create_full $(stat create_full srv_cpu_us_per_req | cut -d' ' -f1)"
    echo "server context switches per request (median): healthz $(stat healthz ctxsw_per_req | cut -d' ' -f1), get $(stat get ctxsw_per_req | cut -d' ' -f1), get_hot $(stat get_hot ctxsw_per_req | cut -d' ' -f1), list_active $(stat list_active ctxsw_per_req | cut -d' ' -f1), create_normal $(stat create_normal ctxsw_per_req | cut -d' ' -f1), create_full $(stat create_full ctxsw_per_req | cut -d' ' -f1)"
    echo "machine busy during runs (median %): healthz $(stat healthz busy_pct | cut -d' ' -f1), get $(stat get busy_pct | cut -d' ' -f1), list_active $(stat list_active busy_pct | cut -d' ' -f1), create_normal $(stat create_normal busy_pct | cut -d' ' -f1), create_full $(stat create_full busy_pct | cut -d' ' -f1)"
    echo "hypervisor steal per round (ms; list_active p99 in ms): $(awk -F'\t' 'NR > 1 && $1 == "list_active" { printf "%sr%s %s (p99 %.1f)", (n++ ? ", " : ""), $2, $14, $7 / 1000 }' "$RESULTS"); all rounds: $(awk -F'\t' 'NR > 1 && $14 != "" && $14 != "-" { s += $14 } END { print s + 0 }' "$RESULTS") ms"
    echo "server peak RSS (VmHWM): $(awk -F'\t' '{ printf "%s%s %d MiB", (NR > 1 ? ", " : ""), $1, $2 / 1024 }' "$OUT/rss.tsv")"
    echo "catalog: $API_QUEUED API-created (queued) + $EXTRA_ACTIVE active / $EXTRA_DEACTIVATED deactivated / $EXTRA_DELETED deleted rows added with sqlite3; $(grep 'images during reads' "$OUT/env.txt" | cut -d: -f2 | tr -d ' ') rows during reads, $(grep 'images at the end' "$OUT/env.txt" | cut -d: -f2 | tr -d ' ') at the end"
    echo "ratio = median over rounds of (figure / reference in the same round); reference for create = sqlite3 CLI, one autocommit INSERT per row, WAL, same synchronous; 32 rows/txn rows show what batching commits would allow"
    echo "binary: $BUILD; $RUNS rounds x ${DURATION}s; $CONNS connections, $THREADS wrk threads; $(grep -E '^[0-9:]+ end: ' "$OUT/uptime.txt" | sed 's/.*load average/load average at the end/')"
} | tee "$TABLE"
}

if [ -n "$TABLE_ONLY" ]; then print_table; exit 0; fi

# ---------------------------------------------------------------- tools and binary

need_pkg() { ensure_command "$@"; }  # command package
need_pkg wrk wrk
need_pkg sqlite3 sqlite3
need_pkg curl curl

release_imaged "$OUT/build.log" || die "no binary"
[ -x "$IMAGED_BIN" ] || die "no executable at $IMAGED_BIN"
log "binary: $IMAGED_BIN ($BUILD)"

# ---------------------------------------------------------------- data directory and server

if [ -n "${DATA_DIR:-}" ]; then
    DATA=$DATA_DIR; mkdir -p "$DATA"
else
    DATA=$(mktemp -d "${TMPDIR:-/tmp}/imaged-bench.XXXXXX")
fi
DB=$DATA/catalog.sqlite
TOKENS=$OUT/tokens.json
echo '{"tokens": [{"token": "benchtok", "user_id": "u1", "project_id": "p1", "roles": ["admin"]}]}' > "$TOKENS"
export BENCH_TOKEN=benchtok

SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID" 2>/dev/null || true; fi
    if [ -z "${DATA_DIR:-}" ] && [ -z "${KEEP_DATA:-}" ]; then rm -rf "$DATA"; fi
}
trap cleanup EXIT

curl -s -o /dev/null "$URL/healthz" && die "something already answers on $URL (set PORT=...)"

start_server() { # durability
    SERVER_DURABILITY=$1
    "$IMAGED_BIN" serve --data-dir "$DATA" --listen "127.0.0.1:$PORT" --token-file "$TOKENS" \
        --log-level warning --durability "$1" >> "$OUT/server-$1.log" 2>&1 &
    SERVER_PID=$!
    wait_for_healthz "$URL" "$SERVER_PID" "$OUT/server-$1.log" || die "server did not start"
    log "server up (pid $SERVER_PID, --durability $1)"
}

stop_server() { # label: records peak RSS
    local hwm
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
    printf '%s\t%s\n' "$1" "$hwm" >> "$OUT/rss.tsv"
    # The direct readers map the catalog file: its pages count in RSS as shared page cache (RssFile),
    # not as memory of the server's own (RssAnon).
    log "server peak RSS ($1): $((hwm / 1024)) MiB; now $(awk '/^RssAnon|^RssFile/ { printf "%s %d MiB ", $1, $2 / 1024 }' "/proc/$SERVER_PID/status")"
    kill "$SERVER_PID"
    for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SERVER_PID" 2>/dev/null && { log "server did not stop on TERM; killing"; kill -9 "$SERVER_PID"; }
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

sql() { sqlite3 -batch "$DB" "$@"; }
count_images() { sql 'SELECT count(*) FROM images'; }

# ---------------------------------------------------------------- measurement helpers

server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
# Context switches of all server threads: a thread hop (event loop -> database queue -> executor) costs one or two.
server_ctxsw() { cat /proc/"$SERVER_PID"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s + 0 }'; }
cpu_sample() { awk '/^cpu / {idle = $5 + $6; total = 0; for (i = 2; i <= NF; i++) total += $i; print total, idle}' /proc/stat; }
# steal_ms (lib.sh): a few slices of hypervisor steal in a round decide its p99.
busy_pct() { # "total idle" before, after
    local t0 i0 t1 i1; read -r t0 i0 <<<"$1"; read -r t1 i1 <<<"$2"
    awk -v dt=$((t1 - t0)) -v di=$((i1 - i0)) 'BEGIN { printf "%.0f", (dt > 0 ? 100 * (dt - di) / dt : 0) }'
}

# run_wrk figure round script [env assignments...]: one wrk run, one line in results.tsv
run_wrk() {
    local fig=$1 round=$2 script=$3; shift 3
    local raw=$OUT/raw/$fig-r$round.txt c0 c1 s0 s1 x0 x1 st0 st1
    s0=$(server_ticks); c0=$(cpu_sample); x0=$(server_ctxsw); st0=$(steal_ms)
    env "$@" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$BENCH/$script" "$URL/" > "$raw" 2>&1 \
        || die "wrk failed for $fig; see $raw"
    s1=$(server_ticks); c1=$(cpu_sample); x1=$(server_ctxsw); st1=$(steal_ms)
    local line; line=$(grep '^RESULT ' "$raw") || die "no RESULT line in $raw"
    # shellcheck disable=SC2086
    local $(echo "${line#RESULT }")
    local errors=$((err_connect + err_read + err_write + err_status + err_timeout))
    local cpu_per_req; cpu_per_req=$(awk -v t=$(((s1 - s0) * TICK_US)) -v n="$requests" 'BEGIN { printf "%.0f", (n > 0 ? t / n : 0) }')
    local busy; busy=$(busy_pct "$c0" "$c1")
    local ctxsw; ctxsw=$(awk -v x=$((x1 - x0)) -v n="$requests" 'BEGIN { printf "%.2f", (n > 0 ? x / n : 0) }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fig" "$round" "$rps" "$mean_us" "$p50_us" "$p90_us" \
        "$p99_us" "$max_us" "$requests" "$errors" "$cpu_per_req" "$busy" "$ctxsw" "$((st1 - st0))" >> "$RESULTS"
    log "$(awk -v f="$fig" -v r="$round" -v rps="$rps" -v p50="$p50_us" -v p99="$p99_us" -v e="$errors" -v c="$cpu_per_req" -v b="$busy" -v x="$ctxsw" -v st=$((st1 - st0)) \
        'BEGIN { printf "%-14s r%s %9s req/s  p50 %6.2f ms  p99 %7.2f ms  errors %s  server CPU %s us/req  %s ctxsw/req  machine busy %s%%  steal %s ms", f, r, rps, p50 / 1000, p99 / 1000, e, c, x, b, st }')"
    LAST_REQUESTS=$requests
}

# The reference for create: the sqlite3 CLI inserting rows like the server's, one transaction
# (autocommit) per row, WAL mode, the same synchronous setting, into a copy of the seeded catalog
# (same B-tree sizes, random UUID keys like the server's). One writer, as the server has one.
REF_DB=
prepare_ref_db() {
    REF_DB=$DATA/ref.sqlite
    rm -f "$REF_DB" "$REF_DB-wal" "$REF_DB-shm"
    sql ".backup '$REF_DB'"
}
sqlite_ref() { # figure round synchronous(FULL|NORMAL) [rows per transaction, default 1]
    local fig=$1 round=$2 sync=$3 batch=${4:-1} before after c0 c1
    before=$(sqlite3 -batch "$REF_DB" 'SELECT count(*) FROM images')
    c0=$(cpu_sample)
    {
        printf 'PRAGMA journal_mode=WAL;\nPRAGMA synchronous=%s;\n' "$sync"
        awk -v seed="$RANDOM$round" -v now="$(date +%s)" -v tag="$fig-$round" -v batch="$batch" 'BEGIN {
            srand(seed)
            for (i = 0; ; i++) {
                if (batch > 1 && i % batch == 0) print "BEGIN;"
                if (batch > 1 && i % batch == batch - 1) commit = "COMMIT;\n"; else commit = ""
                id = sprintf("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", rand()*65536, rand()*65536, rand()*65536,
                    rand()*4096, rand()*65536, rand()*65536, rand()*65536, rand()*65536)
                printf "INSERT INTO images (id, name, status, visibility, protected, os_hidden, owner, container_format, disk_format, size, virtual_size, min_disk, min_ram, checksum, os_hash_algo, os_hash_value, created_at, updated_at, deleted_at, tags, properties, version) VALUES (\047%s\047,\047bench-%s-%d\047,\047queued\047,\047shared\047,0,0,\047p1\047,\047bare\047,\047qcow2\047,NULL,NULL,0,0,NULL,NULL,NULL,%d,%d,NULL,\047[\"bench\"]\047,\047{\"os_distro\":\"debian\"}\047,0);\n%s", id, tag, i, now, now, commit
                if (i % 2500 == 2499) now++
            }
        }'
    } 2>/dev/null | timeout "$DURATION" sqlite3 -batch "$REF_DB" > /dev/null 2>&1 || true
    c1=$(cpu_sample)
    after=$(sqlite3 -batch "$REF_DB" 'SELECT count(*) FROM images')
    local n=$((after - before)) rps
    rps=$(awk -v n=$n -v d="$DURATION" 'BEGIN { printf "%.1f", n / d }')
    printf '%s\t%s\t%s\t-\t-\t-\t-\t-\t%s\t0\t-\t%s\t-\t-\n' "$fig" "$round" "$rps" "$n" "$(busy_pct "$c0" "$c1")" >> "$RESULTS"
    log "$(printf '%-14s r%s %9s inserts/s (sqlite3 CLI, synchronous=%s, %s rows/transaction)' "$fig" "$round" "$rps" "$sync" "$batch")"
}

note_load() { echo "$(date -u +%H:%M:%S) $1: $(uptime)" | tee -a "$OUT/uptime.txt" >&2; }

# ---------------------------------------------------------------- run

{
    echo "date: $(date -u)"; echo "host: $(uname -a)"; echo "cpus: $(nproc)"
    echo "git: $(git -C "$ROOT" rev-parse HEAD); uncommitted changes under Sources/ and Package.swift: $(git -C "$ROOT" status --porcelain -- Sources Package.swift | wc -l) files, diff sha1 $(git -C "$ROOT" diff HEAD -- Sources Package.swift | sha1sum | cut -c1-12)"
    echo "binary: $IMAGED_BIN ($BUILD)"; echo "wrk: $(wrk -v 2>&1 | head -1)"; echo "sqlite3: $(sqlite3 --version)"
    echo "settings: RUNS=$RUNS DURATION=${DURATION}s CONNS=$CONNS THREADS=$THREADS TARGET_IMAGES=$TARGET_IMAGES EXTRA_ACTIVE=$EXTRA_ACTIVE EXTRA_DEACTIVATED=$EXTRA_DEACTIVATED EXTRA_DELETED=$EXTRA_DELETED"
    echo "data: $DATA ($(df -T "$DATA" | awk 'NR==2 {print $2, $1}'))"
} > "$OUT/env.txt"
cat "$OUT/env.txt" >&2
note_load start

# 1. Seed through the API (durability normal: seeding speed is not a figure).
start_server normal
have=$(count_images)
if [ "$have" -lt "$TARGET_IMAGES" ]; then
    log "seeding: $have images, target $TARGET_IMAGES (POST /v2/images, $CONNS connections)"
    seed_start=$(date +%s) chunk=0 rate=2000
    while :; do
        have=$(count_images)
        [ "$have" -ge "$TARGET_IMAGES" ] && break
        [ $(($(date +%s) - seed_start)) -lt "$SEED_MAX_SECONDS" ] || die "seeding took over $SEED_MAX_SECONDS s"
        # The first chunk measures the create rate; later ones aim just past the target.
        d=$(( (TARGET_IMAGES - have) * 102 / 100 / rate + 1 )); [ $d -gt 60 ] && d=60
        [ $chunk -eq 0 ] && [ $d -gt 10 ] && d=10
        chunk=$((chunk + 1))
        env BENCH_TAG="seed$chunk" wrk -t"$THREADS" -c"$CONNS" -d"${d}s" --timeout 10s -s "$BENCH/create.lua" "$URL/" \
            > "$OUT/raw/seed-$chunk.txt" 2>&1 || die "seeding wrk failed"
        line=$(grep '^RESULT ' "$OUT/raw/seed-$chunk.txt")
        rate=$(echo "$line" | sed -E 's/.* rps=([0-9]+).*/\1/'); [ "$rate" -gt 0 ] || rate=100
        log "seed chunk $chunk: ${d}s, $(echo "$line" | sed -E 's/.*(requests=[0-9]+).*(err_status=[0-9]+).*/\1 \2/'), now $(count_images) images"
    done
fi
log "catalog: $(count_images) images after API seeding"
stop_server seed-normal

# 2. Other statuses, inserted directly (no API makes an image active before uploads exist).
extra_have=$(sql "SELECT count(*) FROM images WHERE name LIKE 'seed-%'")
if [ "$extra_have" -eq 0 ] && [ $((EXTRA_ACTIVE + EXTRA_DEACTIVATED + EXTRA_DELETED)) -gt 0 ]; then
    log "adding $EXTRA_ACTIVE active, $EXTRA_DEACTIVATED deactivated, $EXTRA_DELETED deleted rows with sqlite3 (server stopped)"
    read -r tmin tmax <<<"$(sqlite3 -batch -separator ' ' "$DB" 'SELECT min(created_at), max(created_at) FROM images')"
    add_rows() { # status count deleted_at_expr
        [ "$2" -gt 0 ] || return 0
        sql "PRAGMA synchronous=NORMAL;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2),
        t(i, ts) AS (SELECT i, $tmin + abs(random()) % ($tmax - $tmin + 1) FROM n)
        INSERT INTO images (id, name, status, visibility, protected, os_hidden, owner, container_format, disk_format,
            size, virtual_size, min_disk, min_ram, checksum, os_hash_algo, os_hash_value, created_at, updated_at,
            deleted_at, tags, properties, version)
        SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'
                     || hex(randomblob(2)) || '-' || hex(randomblob(6))),
            'seed-$1-' || i, '$1', 'shared', 0, 0, 'p1', 'bare', 'qcow2',
            1073741824 + i, 10737418240, 0, 0, lower(hex(randomblob(16))), 'sha512', lower(hex(randomblob(64))),
            ts, ts, $3, '[\"bench\"]', '{\"os_distro\":\"debian\"}', 2
        FROM t;"
    }
    add_rows active "$EXTRA_ACTIVE" NULL
    add_rows deactivated "$EXTRA_DEACTIVATED" NULL
    add_rows deleted "$EXTRA_DELETED" ts
fi
sql 'SELECT status, count(*) FROM images GROUP BY status ORDER BY 2 DESC' | tee "$OUT/catalog-before.txt" >&2
API_QUEUED=$(sql "SELECT count(*) FROM images WHERE status = 'queued'")
[ "$API_QUEUED" -ge "$TARGET_IMAGES" ] || die "only $API_QUEUED API-created images"
# The plans SQLite picks for the list queries (the SQL mirrors Sources/CatalogSQL/ListSQL.swift for an admin).
LIST_SQL="SELECT * FROM images WHERE status NOT IN ('deleted','killed','pending_delete') AND os_hidden = 0 AND (visibility <> 'community' OR owner = 'p1') AND status IN ('active') ORDER BY created_at DESC, id DESC LIMIT 25"
{ echo "list: $LIST_SQL"; sql "EXPLAIN QUERY PLAN $LIST_SQL"; } > "$OUT/query-plans.txt"

# Ids for GET one: every visible image, drawn uniformly by wrk (the default --catalog-cache-size holds
# all ~126k once each was read twice, so the first round warms it), and a hot set of 10,000. Markers
# for paging: queued ids.
sql "SELECT id FROM images WHERE status IN ('queued','active')" > "$OUT/ids-get.txt"
sql "SELECT id FROM images WHERE status IN ('queued','active') ORDER BY random() LIMIT 10000" > "$OUT/ids-hot.txt"
sql "SELECT id FROM images WHERE status = 'queued' ORDER BY random() LIMIT 10000" > "$OUT/ids-marker.txt"

# 3. Reads and create with --durability normal.
start_server normal
note_load "reads start"
probe=$(head -1 "$OUT/ids-get.txt")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: benchtok" "$URL/v2/images/$probe")
[ "$code" = 200 ] || die "GET /v2/images/$probe answered $code"
LIST_ACTIVE='/v2/images?status=active&sort=created_at:desc&limit=25'
LIST_QUEUED='/v2/images?status=queued&sort=created_at:desc&limit=25'
for r in $(seq 1 "$RUNS"); do
    run_wrk healthz "$r" healthz.lua
    run_wrk get "$r" get_one.lua BENCH_IDS="$OUT/ids-get.txt"
    run_wrk get_hot "$r" get_one.lua BENCH_IDS="$OUT/ids-hot.txt"
    run_wrk list_active "$r" list.lua BENCH_LIST_PATH="$LIST_ACTIVE"
    run_wrk list_queued "$r" list.lua BENCH_LIST_PATH="$LIST_QUEUED"
    run_wrk list_marker "$r" list.lua BENCH_LIST_PATH="$LIST_QUEUED" BENCH_IDS="$OUT/ids-marker.txt"
done
note_load "reads end"
echo "images during reads: $(count_images)" >> "$OUT/env.txt"
prepare_ref_db
for r in $(seq 1 "$RUNS"); do
    run_wrk create_normal "$r" create.lua BENCH_TAG="normal$r"
    sqlite_ref sqlite_normal "$r" NORMAL
    sqlite_ref sqlite_normal_b32 "$r" NORMAL 32
done
note_load "create normal end"
stop_server normal

# 4. Create with --durability full (the default).
start_server full
prepare_ref_db
for r in $(seq 1 "$RUNS"); do
    run_wrk healthz_full "$r" healthz.lua
    run_wrk create_full "$r" create.lua BENCH_TAG="full$r"
    sqlite_ref sqlite_full "$r" FULL
    sqlite_ref sqlite_full_b32 "$r" FULL 32
done
note_load "create full end"
stop_server full
rm -f "$REF_DB" "$REF_DB-wal" "$REF_DB-shm"
sql 'SELECT status, count(*) FROM images GROUP BY status ORDER BY 2 DESC' > "$OUT/catalog-after.txt"
echo "images at the end: $(count_images)" >> "$OUT/env.txt"
note_load end

cat > "$OUT/meta.env" <<META
RUNS=$RUNS
DURATION=$DURATION
CONNS=$CONNS
THREADS=$THREADS
API_QUEUED=$API_QUEUED
EXTRA_ACTIVE=$EXTRA_ACTIVE
EXTRA_DEACTIVATED=$EXTRA_DEACTIVATED
EXTRA_DELETED=$EXTRA_DELETED
BUILD="$BUILD"
META
print_table
log "raw results in ${OUT#"$ROOT"/}"
