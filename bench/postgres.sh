#!/usr/bin/env bash
# PostgreSQL catalog benchmark: metadata GET (one image by id) and list 25 over the same 100,000-image
# catalog on SQLite (the embedded default) and on PostgreSQL (a private Debian PostgreSQL cluster on
# loopback), in the same rounds, with /healthz as the HTTP reference.
#
#   bench/postgres.sh                          # release build, then ~10 min
#   IMAGED_BIN=path/to/imaged bench/postgres.sh
#
# Knobs: RUNS=5 DURATION=10 CONNS=32 THREADS=2 IMAGES=100000 PORT=19494 (SQLite server; PostgreSQL server PORT+1)
#        WARMUP=1 (a cold first pass of GETs on each server before round 1, reported apart from the medians)
#        PG_OPTIONS=read_lease_ms=0 (catalog URL options for the PostgreSQL server, e.g. to compare a check on every GET)
#        PROFILE=get_postgres (any figure): perf samples the server under that figure's last round (warm) and writes
#        profile.sh's reports (flat.txt, by-dso.txt, children.txt) to profile-<figure>/ beside the results
#
#  1. seeds IMAGES rows (random UUIDs, 4 owners, tags and properties) into a fresh SQLite catalog with the sqlite3
#     CLI, creates the PostgreSQL schema by starting imaged on it once, and copies the same rows in with psql \copy;
#  2. both servers up (release, --log-level warning); a cold pass of GET one on each (WARMUP); each round:
#     /healthz, GET one on SQLite, GET one on PostgreSQL, list 25 from a random marker on SQLite and on
#     PostgreSQL, the first page of that list on SQLite and on PostgreSQL (wrk, CONNS connections); after
#     the rounds, one round of create on each;
#  3. prints medians, min-max and the paired ratio PostgreSQL / SQLite; raw output in bench/results/postgres-<time>/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export BENCH_DIR=$BENCH
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
IMAGES=${IMAGES:-100000}
PORT=${PORT:-19494}
PG_PORT_SERVER=$((PORT + 1))
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$BENCH/results/postgres-$STAMP
mkdir -p "$OUT/raw"
RESULTS=$OUT/results.tsv
printf 'figure\tround\trps\tp50_us\tp99_us\terrors\tserver_us\tpostgres_us\tserver_cs\tpostgres_cs\n' > "$RESULTS"

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"
ensure_command wrk wrk
ensure_command sqlite3 sqlite3
ensure_command curl curl
scripts/postgres.sh install >/dev/null

release_imaged "$OUT/build.log" || die "no binary"
log "binary: $IMAGED_BIN ($BUILD)"

WORK=$(mktemp -d /tmp/imaged-bench-pg.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    scripts/postgres.sh stop "$WORK/pg" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

TOKENS=$WORK/tokens.json
echo '{"tokens": [{"token": "benchtok", "user_id": "u1", "project_id": "p1", "roles": ["admin"]}]}' > "$TOKENS"
export BENCH_TOKEN=benchtok

PG_DB_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
scripts/postgres.sh start "$WORK/pg" "$PG_DB_PORT" >> "$OUT/postgres.log" 2>&1 || die "PostgreSQL did not start; see $OUT/postgres.log"
PG_URL="$(cat "$WORK/pg/url")?schema=bench&sslmode=disable${PG_OPTIONS:+&$PG_OPTIONS}"
PSQL_URL=$(cat "$WORK/pg/url")
PSQL=$(ls /usr/lib/postgresql/*/bin/psql | sort -V | tail -1)
log "PostgreSQL $("$PSQL" --version | awk '{print $3}') on 127.0.0.1:$PG_DB_PORT"

start() { # name port catalog
    "$IMAGED_BIN" serve --data-dir "$WORK/$1" --listen "127.0.0.1:$2" --token-file "$TOKENS" --log-level warning \
        --catalog "$3" >> "$OUT/server-$1.log" 2>&1 &
    PIDS+=($!)
    wait_for_healthz "http://127.0.0.1:$2" "$!" "$OUT/server-$1.log" || die "$1 server did not start"
}
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; PIDS=(); }

# ---- seed: schemas first (each server migrates its catalog), then the same rows in both
start sqlite "$PORT" sqlite
start postgres "$PG_PORT_SERVER" "$PG_URL"
stop_all
DB=$WORK/sqlite/catalog.sqlite
log "seeding $IMAGES images into SQLite"
sqlite3 -batch "$DB" "
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $IMAGES)
    INSERT INTO images (id, name, status, visibility, protected, os_hidden, owner, container_format, disk_format,
        size, virtual_size, min_disk, min_ram, checksum, os_hash_algo, os_hash_value, created_at, updated_at,
        deleted_at, tags, properties, version)
    SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-'
                 || hex(randomblob(2)) || '-' || hex(randomblob(6))),
        'seed-' || i, CASE WHEN i % 5 = 0 THEN 'queued' ELSE 'active' END, 'shared', 0, 0, 'p' || (i % 4), 'bare', 'qcow2',
        1073741824 + i, 10737418240, 0, 0, lower(hex(randomblob(16))), 'sha512', lower(hex(randomblob(64))),
        1700000000 + i / 10, 1700000000 + i / 10, NULL, '[\"bench\",\"t' || (i % 7) || '\"]',
        '{\"os_distro\":\"debian\",\"n\":\"' || i || '\"}', 2
    FROM n;"
sqlite3 -batch "$DB" "SELECT id FROM images" > "$WORK/ids.txt"
log "copying the same rows into PostgreSQL"
sqlite3 -batch -csv "$DB" "SELECT * FROM images" > "$WORK/images.csv"
"$PSQL" -q "$PSQL_URL" -c "\\copy bench.images FROM '$WORK/images.csv' WITH (FORMAT csv)" \
    -c "ANALYZE bench.images" >> "$OUT/postgres.log" 2>&1 || die "psql copy failed; see $OUT/postgres.log"
n_sqlite=$(sqlite3 -batch "$DB" "SELECT count(*) FROM images")
n_pg=$("$PSQL" -tA "$PSQL_URL" -c "SELECT count(*) FROM bench.images")
log "images: SQLite $n_sqlite, PostgreSQL $n_pg"
[ "$n_sqlite" = "$n_pg" ] && [ "$n_pg" -ge "$IMAGES" ] || die "catalogs differ in size"

start sqlite "$PORT" sqlite
start postgres "$PG_PORT_SERVER" "$PG_URL"
# Same answer from both before measuring anything.
id=$(head -1 "$WORK/ids.txt")
a=$(curl -s -H "X-Auth-Token: benchtok" "http://127.0.0.1:$PORT/v2/images/$id")
b=$(curl -s -H "X-Auth-Token: benchtok" "http://127.0.0.1:$PG_PORT_SERVER/v2/images/$id")
[ "$a" = "$b" ] && [ -n "$a" ] || die "the two servers answer differently for $id: $a / $b"
export BENCH_IDS=$WORK/ids.txt

# The PostgreSQL server's processes: the postmaster and its children (the pool's backends stay connected).
pg_pids() { local pm; pm=$(head -1 "$WORK/pg/data/postmaster.pid"); echo "$pm" $(pgrep -P "$pm"); }

run() { # figure round port script server-pid
    local raw=$OUT/raw/$1-r$2.txt line pids s p
    pids=$(pg_pids)
    cpu_ticks "$5" > "$WORK/cpu-s0"; cpu_ticks $pids > "$WORK/cpu-p0"
    context_switches "$5" > "$WORK/cs-s0"; context_switches $pids > "$WORK/cs-p0"
    local perf_pid= prof=$OUT/profile-$1
    if [ "${PROFILE:-}" = "$1" ] && [ "$2" = "$RUNS" ]; then
        mkdir -p "$prof"
        perf_record "$5" "$DURATION" "$prof"
        perf_pid=$!
    fi
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$BENCH/$4" "http://127.0.0.1:$3/" > "$raw" 2>&1 \
        || die "wrk failed; see $raw"
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid" || true
        perf_reports "$prof" || true
        rm -f "$prof/perf.data"  # tens of MiB; the reports are what is kept
    fi
    cpu_ticks "$5" > "$WORK/cpu-s1"; cpu_ticks $pids > "$WORK/cpu-p1"
    context_switches "$5" > "$WORK/cs-s1"; context_switches $pids > "$WORK/cs-p1"
    s=$(counter_delta "$WORK/cpu-s0" "$WORK/cpu-s1"); p=$(counter_delta "$WORK/cpu-p0" "$WORK/cpu-p1")
    local scs pcs; scs=$(counter_delta "$WORK/cs-s0" "$WORK/cs-s1"); pcs=$(counter_delta "$WORK/cs-p0" "$WORK/cs-p1")
    line=$(grep '^RESULT ' "$raw") || die "no RESULT in $raw"
    # shellcheck disable=SC2086
    local $(echo "${line#RESULT }")
    # CPU and context switches per request: the imaged server measured's, and PostgreSQL's (which only the
    # PostgreSQL server uses).
    local per; per=$(awk -v n="$rps" -v d="$DURATION" -v t="$TICK_US" -v s="$s" -v p="$p" -v a="$scs" -v b="$pcs" \
        'BEGIN { r = n * d; if (r < 1) r = 1; printf "%.1f\t%.1f\t%.3f\t%.3f", s * t / r, p * t / r, a / r, b / r }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$rps" "$p50_us" "$p99_us" \
        $((err_connect + err_read + err_write + err_status + err_timeout)) "$per" >> "$RESULTS"
    local su pu sc pc; IFS=$'\t' read -r su pu sc pc <<<"$per"
    log "$(printf '%-16s r%s %9s req/s  p50 %6.2f ms  p99 %7.2f ms  CPU/req imaged %s us, PostgreSQL %s us; context switches/req %s, %s' "$1" "$2" "$rps" \
        "$(awk -v x="$p50_us" 'BEGIN{print x/1000}')" "$(awk -v x="$p99_us" 'BEGIN{print x/1000}')" "$su" "$pu" "$sc" "$pc")"
}

SQLITE_PID=${PIDS[0]} POSTGRES_PID=${PIDS[1]}
# One pass of GETs over the ids on each server before the rounds: both start with nothing cached, and
# a first pass measures filling the caches (a PostgreSQL miss is a round trip, a SQLite one a page
# read), not serving. Reported on its own line, kept out of the medians; WARMUP=0 skips it.
if [ "${WARMUP:-1}" = 1 ]; then
    run cold_get_sqlite 0 "$PORT" get_one.lua "$SQLITE_PID"
    run cold_get_postgres 0 "$PG_PORT_SERVER" get_one.lua "$POSTGRES_PID"
fi
for r in $(seq 1 "$RUNS"); do
    run healthz "$r" "$PORT" healthz.lua "$SQLITE_PID"
    run get_sqlite "$r" "$PORT" get_one.lua "$SQLITE_PID"
    run get_postgres "$r" "$PG_PORT_SERVER" get_one.lua "$POSTGRES_PID"
    BENCH_LIST_PATH="/v2/images?status=active&sort=created_at:desc&limit=25" run list_sqlite "$r" "$PORT" list.lua "$SQLITE_PID"
    BENCH_LIST_PATH="/v2/images?status=active&sort=created_at:desc&limit=25" run list_postgres "$r" "$PG_PORT_SERVER" list.lua "$POSTGRES_PID"
    # The first page, as a dashboard or `openstack image list --limit 25` asks it again and again.
    BENCH_IDS= BENCH_LIST_PATH="/v2/images?status=active&sort=created_at:desc&limit=25" run first_sqlite "$r" "$PORT" list.lua "$SQLITE_PID"
    BENCH_IDS= BENCH_LIST_PATH="/v2/images?status=active&sort=created_at:desc&limit=25" run first_postgres "$r" "$PG_PORT_SERVER" list.lua "$POSTGRES_PID"
done
# Create, one round on each after all the others (new images would change the lists' first page): a
# write on PostgreSQL returns only once the nodes' read leases are out (`read_lease_ms`), so this is
# what that wait costs writers.
BENCH_TAG=sqlite run create_sqlite 1 "$PORT" create.lua "$SQLITE_PID"
BENCH_TAG=postgres run create_postgres 1 "$PG_PORT_SERVER" create.lua "$POSTGRES_PID"
stop_all

stat() { awk -F'\t' -v f="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) col = i; next } $1 == f { print $col }' "$RESULTS" \
    | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s %s %s", m, v[1], v[NR] }'; }
paired() { awk -F'\t' -v f="$1" -v g="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) col = i; next }
    $1 == f { a[$2] = $col } $1 == g { b[$2] = $col } END { for (r in a) if (b[r] > 0) print a[r] / b[r] }' "$RESULTS" \
    | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
errs() { awk -F'\t' -v f="$1" '$1 == f { s += $6 } END { print s + 0 }' "$RESULTS"; }
{
    printf '%-34s %-28s %-28s %-14s %s\n' "figure" "PostgreSQL median (min-max)" "SQLite median (min-max)" "PG/SQLite" "errors"
    for pair in "get:GET one image (req/s):rps:1" "get:GET one image p99 (ms):p99_us:1000" "get:GET one image p50 (ms):p50_us:1000" \
                "list:list 25 active, random marker (req/s):rps:1" "list:list 25 active, random marker p99 (ms):p99_us:1000" \
                "first:list 25 active, first page (req/s):rps:1" "first:list 25 active, first page p99 (ms):p99_us:1000" \
                "create:create, one round after the rest (req/s):rps:1" "create:create p50 (ms):p50_us:1000"; do
        IFS=: read -r fig label col scale <<<"$pair"
        read -r pm plo phi <<<"$(stat "${fig}_postgres" "$col")"
        read -r sm slo shi <<<"$(stat "${fig}_sqlite" "$col")"
        f() { awk -v x="$1" -v s="$scale" 'BEGIN { printf (s == 1 ? "%.0f" : "%.2f"), x / s }'; }
        printf '%-34s %-28s %-28s %-14s %s\n' "$label" "$(f "$pm") ($(f "$plo")-$(f "$phi"))" "$(f "$sm") ($(f "$slo")-$(f "$shi"))" \
            "$(paired "${fig}_postgres" "${fig}_sqlite" "$col")" "$(( $(errs "${fig}_postgres") + $(errs "${fig}_sqlite") ))"
    done
    # per_request TITLE SERVER_COLUMN POSTGRES_COLUMN DECIMALS: per figure, the median per request of the
    # PostgreSQL server's imaged + database (and their sum) beside the SQLite server's imaged.
    per_request() {
        printf '%-34s %-28s %-28s\n' "$1" "PostgreSQL: imaged + database" "SQLite: imaged"
        local fig pi pd si
        for fig in get list first; do
            read -r pi _ <<<"$(stat "${fig}_postgres" "$2")"; read -r pd _ <<<"$(stat "${fig}_postgres" "$3")"
            read -r si _ <<<"$(stat "${fig}_sqlite" "$2")"
            printf '%-34s %-28s %-28s\n' "  $fig" \
                "$(awk -v a="$pi" -v b="$pd" -v d="$4" 'BEGIN { f = "%." d "f"; printf f " + " f " = " f, a, b, a + b }')" \
                "$(printf "%.${4}f" "$si")"
        done
    }
    # Where the CPU of one request goes: the imaged server's, and PostgreSQL's for the PostgreSQL figures.
    # The machine's cores serve wrk, imaged and PostgreSQL together, so a PostgreSQL figure pays both.
    per_request "CPU per request (us, medians)" server_us postgres_us 0
    # A request that waits on the database sleeps and is woken: each context switch is kernel time
    # on the same two cores (imaged's threads, and PostgreSQL's backends for the PostgreSQL figures).
    per_request "context switches per request" server_cs postgres_cs 2
    read -r hm _ <<<"$(stat healthz rps)"
    echo "/healthz reference: $hm req/s (median). $n_pg images in each catalog; $RUNS rounds x ${DURATION}s, $CONNS connections, $THREADS wrk threads."
    if [ "${WARMUP:-1}" = 1 ]; then
        read -r cp _ <<<"$(stat cold_get_postgres rps)"; read -r cs _ <<<"$(stat cold_get_sqlite rps)"
        echo "cold first pass of GET one (before round 1, not in the medians): PostgreSQL $cp, SQLite $cs req/s," \
            "$(paired cold_get_postgres cold_get_sqlite rps); $(( $(errs cold_get_postgres) + $(errs cold_get_sqlite) )) errors"
    fi
    [ -z "${PG_OPTIONS:-}" ] || echo "PostgreSQL catalog URL options: $PG_OPTIONS"
    echo "binary: $BUILD; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/table.txt"
