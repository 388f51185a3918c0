#!/usr/bin/env bash
# Growth (issue 23): the catalog figures at 10,000, 100,000 and 1,000,000 images, to show whether
# they stay flat as the catalog grows. Target: every figure at 1M within 1.25x of its 10k value.
#
#   bench/growth.sh                             # release build
#   IMAGED_BIN=path/to/imaged bench/growth.sh   # skip the build
#   bench/growth.sh --table bench/results/growth-<time>   # the table and plot of a past run again
#
# Knobs (environment): SCALES="10000 100000 1000000" RUNS=3 DURATION=5 WARMUP=20 CONNS=32 THREADS=2 PORT=19398
#   KEEP_DATA=1: keep each scale's catalog (for bench/profile.sh; the log names the directories)
#
# Per scale, on a fresh SQLite catalog (the embedded default, --durability full):
#  1. one image is created through the API (the template row, in this binary's schema); the other
#     rows are added by sqlite3 in one transaction, copies of the template with their own ids, names,
#     sizes, disk formats and creation times (4 in 5 active, 1 in 5 queued); seeding through the API would take
#     minutes per 1M rows and measure nothing more;
#  2. WARMUP s of GET one, not in the figures (the cache then holds the GET set at every scale);
#     RUNS rounds of DURATION s each: GET one (uniform over a sample of 100,000 ids, or all of them),
#     list 25 sorted by each sort key (created_at, updated_at, name, size, status, disk_format,
#     container_format, id), a marker walk (list 25 by created_at from a random marker), create.
# Writes table.txt (req/s and p99 per scale, the slowdown 1M vs 10k) and growth.svg (each figure's
# req/s relative to its 10k value, against the 1/1.25 line) to bench/results/growth-<UTC time>/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BENCH=$ROOT/bench
export BENCH_DIR=$BENCH BENCH_TOKEN=benchtok

SCALES=${SCALES:-"10000 100000 1000000"}
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-20}
CONNS=${CONNS:-32}
SORT_KEYS=${SORT_KEYS:-"created_at updated_at name size status disk_format container_format id"}
THREADS=${THREADS:-2}
PORT=${PORT:-19398}
URL=http://127.0.0.1:$PORT

# shellcheck source=lib.sh
. "$ROOT/bench/lib.sh"   # log, die, serve_imaged, run_wrk, median, col, bench_api, latency_tools_and_binary
if [ "${1:-}" = --table ]; then
    # The table and plot of a past run, again (e.g. after the figures list changed).
    OUT=$(cd "${2:?usage: bench/growth.sh --table bench/results/growth-<time>}" && pwd)
    RESULTS=$OUT/results.tsv
    SCALES=$(awk -F'\t' 'NR > 1 { split($1, a, "@"); print a[2] }' "$RESULTS" | sort -un | tr '\n' ' ' | sed 's/ $//')
    SORT_KEYS=$(awk -F'\t' 'NR > 1 && $1 ~ /^list_/ { split($1, a, "@"); print substr(a[1], 6) }' "$RESULTS" | awk '!seen[$0]++' | tr '\n' ' ')
    RUNS=$(awk -F'\t' 'NR > 1 && $2 > n { n = $2 } END { print n }' "$RESULTS")
    BUILD="the run's own binary (table made again by --table)"
else
    latency_results growth   # figures are named FIGURE@SCALE

    latency_tools_and_binary

    WORK=$(mktemp -d "${TMPDIR:-/tmp}/imaged-growth.XXXXXX")
    SERVER_PID=
    stop_server() {
        [ -n "$SERVER_PID" ] || return 0
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    }
    cleanup() { stop_server; [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$WORK"; }
    trap cleanup EXIT
    curl -s -o /dev/null "$URL/healthz" && die "something already answers on $URL (set PORT=...)"

    LIST='/v2/images?limit=25&sort_key='
    for scale in $SCALES; do
        dir=$WORK/$scale
        mkdir -p "$dir"
        serve_imaged "$dir"
        DB=$dir/data/catalog.sqlite
        template=$(bench_api -H 'Content-Type: application/json' \
            -d '{"name":"growth-0","disk_format":"qcow2","container_format":"bare","tags":["bench"],"os_distro":"debian","min_ram":512}' \
            "$URL/v2/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
        stop_server
        # Every column copied from the template but those a row makes its own.
        cols=$(sqlite3 -batch "$DB" "SELECT group_concat(name, ' ') FROM pragma_table_info('images')")
        select=""
        for c in $cols; do
            case $c in
                id) e="lower(hex(randomblob(4)))||'-'||lower(hex(randomblob(2)))||'-4'||substr(lower(hex(randomblob(2))),2)||'-'||substr('89ab',1+abs(random())%4,1)||substr(lower(hex(randomblob(2))),2)||'-'||lower(hex(randomblob(6)))" ;;
                name) e="'growth-'||c.i" ;;
                status) e="CASE WHEN c.i % 5 = 0 THEN 'queued' ELSE 'active' END" ;;
                size) e="CASE WHEN c.i % 5 = 0 THEN NULL ELSE abs(random()) % 10000000000 END" ;;
                disk_format) e="CASE c.i % 4 WHEN 0 THEN 'raw' WHEN 1 THEN 'qcow2' WHEN 2 THEN 'iso' ELSE 'vmdk' END" ;;
                created_at|updated_at) e="t.created_at - ($scale - c.i)" ;;
                *) e="t.$c" ;;
            esac
            select+="${select:+, }$e"
        done
        log "seeding $scale images (sqlite3, one transaction)"
        sqlite3 -batch "$DB" "BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $scale - 1)
            INSERT INTO images SELECT $select FROM c, images t WHERE t.id = '$template'; COMMIT;" \
            || die "seeding failed"
        [ "$(sqlite3 -batch "$DB" 'SELECT count(*) FROM images')" -ge "$scale" ] || die "seeding left too few rows"
        sqlite3 -batch "$DB" "SELECT id FROM images ORDER BY random() LIMIT 100000" > "$WORK/ids-$scale.txt"
        serve_imaged "$dir"
        # The server agrees with what was seeded: a sample image reads back, and a full page lists.
        sample=$(head -1 "$WORK/ids-$scale.txt")
        bench_api "$URL/v2/images/$sample" | grep -q "\"id\": *\"$sample\"" || die "seeded image $sample does not read back"
        n=$(bench_api "$URL${LIST}name&sort_dir=asc" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["images"]))')
        [ "$n" = 25 ] || die "a list of 25 at $scale images returned $n"
        # Warm-up, not in the figures: WARMUP s of the GET load, so every scale's rounds read a cache
        # holding the GET set, as a serving node's would (a row enters it on its second read). Without
        # it, the figure compared a cold cache at 1M with a warm one at 100k: there the lists and walks
        # of round 1 had read the whole catalog, hence the GET set, and warmed it; at 1M they do not.
        # Its req/s is recorded as round 0 of warmup_get and printed under the table.
        (DURATION=$WARMUP; run_wrk "warmup_get@$scale" 0 get_one.lua BENCH_IDS="$WORK/ids-$scale.txt")
        for r in $(seq 1 "$RUNS"); do
            run_wrk "get@$scale" "$r" get_one.lua BENCH_IDS="$WORK/ids-$scale.txt"
            for key in $SORT_KEYS; do
                run_wrk "list_$key@$scale" "$r" list.lua BENCH_LIST_PATH="$LIST$key&sort_dir=desc"
            done
            run_wrk "marker_walk@$scale" "$r" list.lua BENCH_LIST_PATH="${LIST}created_at&sort_dir=desc" BENCH_IDS="$WORK/ids-$scale.txt"
            run_wrk "create@$scale" "$r" create.lua BENCH_TAG="g$scale-$r"
        done
        stop_server
        if [ "${KEEP_DATA:-0}" = 1 ]; then log "kept the $scale-image catalog: DATA_DIR=$dir/data"; else rm -rf "$dir"; fi
    done
fi

# ---------------------------------------------------------------- table and plot
stat() { # figure scale column -> median
    local k; case $3 in rps) k=3 ;; p50_us) k=4 ;; p99_us) k=5 ;; esac
    col "$1@$2" "$k" | median
}
FIGURES="get $(for k in $SORT_KEYS; do printf 'list_%s ' "$k"; done)marker_walk create"
first=${SCALES%% *}; last=${SCALES##* }
{
    echo "Growth: median of $RUNS rounds x ${DURATION}s at $CONNS connections per scale; SQLite, --durability full; $BUILD"
    printf "%-22s" figure
    for s in $SCALES; do printf ' %-22s' "$s: req/s (p99 ms)"; done
    printf ' %-12s %s\n' "slowdown" "target <= 1.25 ($first -> $last)"
    for f in $FIGURES; do
        printf "%-22s" "$f"
        for s in $SCALES; do
            printf ' %-22s' "$(stat "$f" "$s" rps) ($(awk -v x="$(stat "$f" "$s" p99_us)" 'BEGIN { printf "%.2f", x / 1000 }'))"
        done
        slow=$(awk -v a="$(stat "$f" "$first" rps)" -v b="$(stat "$f" "$last" rps)" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 999) }')
        e=$(awk -F'\t' -v f="$f@" 'index($1, f) == 1 { s += $6 } END { print s + 0 }' "$RESULTS")
        verdict=$(awk -v x="$slow" 'BEGIN { print (x <= 1.25 ? "PASS" : "FAIL") }'); [ "$e" -gt 0 ] && verdict="FAIL ($e errors)"
        printf ' %-12s %s\n' "$slow" "$verdict"
    done
    echo "slowdown = req/s at $first / req/s at $last (medians); create adds rows while it runs"
    # Runs before the warm-up have no warmup_get rows: then this line says nothing.
    if awk -F'\t' 'index($1, "warmup_get@") == 1 { found = 1 } END { exit !found }' "$RESULTS"; then
        printf 'GET during the warm-up before round 1 (cache filling; req/s):'
        for s in $SCALES; do printf ' %s %s' "$s" "$(col "warmup_get@$s" 3 | median)"; done
        echo
    fi
    # Older runs have no steal column (7): then this line says nothing.
    if awk -F'\t' 'NR > 1 && NF >= 7 { found = 1 } END { exit !found }' "$RESULTS"; then
        printf 'hypervisor steal during the runs (ms, all rounds and figures):'
        for s in $SCALES; do
            printf ' %s %s' "$s" "$(awk -F'\t' -v s="@$s" 'NR > 1 && substr($1, length($1) - length(s) + 1) == s { t += $7 } END { print t + 0 }' "$RESULTS")"
        done
        echo " (slices of up to ~100 ms, each stalling the requests in flight)"
    fi
} | tee "$OUT/table.txt"

# The plot: req/s relative to the smallest scale, per figure, on a log scale of catalog sizes.
for f in $FIGURES; do for s in $SCALES; do printf '%s\t%s\t%s\n' "$f" "$s" "$(stat "$f" "$s" rps)"; done; done > "$OUT/plot.tsv"
python3 - "$OUT/plot.tsv" "$OUT/growth.svg" <<'PY'
import math, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
series = {}
for fig, scale, rps in rows:
    if rps not in ("-", ""):
        series.setdefault(fig, []).append((int(scale), float(rps)))
scales = sorted({int(s) for _, s, _ in rows})
W, H, L, R, T, B = 850, 420, 70, 260, 40, 50
lo, hi = math.log10(scales[0]), math.log10(scales[-1]) if len(scales) > 1 else math.log10(scales[0]) + 1
ymin = 0.0
ratios = [v / (pts[0][1] or 1) for pts in (sorted(p) for p in series.values()) for _, v in pts]
ymax = max([1.4] + [math.ceil(r * 5) / 5 for r in ratios])
def x(s): return L + (math.log10(s) - lo) / (hi - lo) * (W - L - R)
def y(v): return T + (ymax - min(max(v, ymin), ymax)) / (ymax - ymin) * (H - T - B)
colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#000000"]
out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
       f'<rect width="{W}" height="{H}" fill="white"/>',
       f'<text x="{L}" y="22" font-size="14">req/s relative to {scales[0]:,} images (1.0 = as fast; below 0.8 = over 1.25x slower)</text>']
for v in [k / 5 for k in range(1, int(ymax * 5) + 1)]:
    out.append(f'<line x1="{L}" x2="{W - R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
    out.append(f'<text x="{L - 8}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
out.append(f'<line x1="{L}" x2="{W - R}" y1="{y(0.8):.1f}" y2="{y(0.8):.1f}" stroke="#c00" stroke-dasharray="6 4"/>')
out.append(f'<text x="{W - R + 4}" y="{y(0.8) + 4:.1f}" fill="#c00">1/1.25 (target)</text>')
for s in scales:
    out.append(f'<text x="{x(s):.1f}" y="{H - B + 18}" text-anchor="middle">{s:,}</text>')
out.append(f'<text x="{(L + W - R) / 2:.1f}" y="{H - 12}" text-anchor="middle">images in the catalog (log scale)</text>')
for i, (fig, pts) in enumerate(sorted(series.items())):
    pts.sort()
    base = pts[0][1] or 1
    c = colors[i % len(colors)]
    path = " ".join(f"{x(s):.1f},{y(v / base):.1f}" for s, v in pts)
    out.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"><title>{fig}</title></polyline>')
    for s, v in pts:
        out.append(f'<circle cx="{x(s):.1f}" cy="{y(v / base):.1f}" r="3" fill="{c}"><title>{fig} at {s:,}: {v:.0f} req/s ({v / base:.2f})</title></circle>')
    ly = T + 10 + i * 18
    out.append(f'<line x1="{W - R + 90}" x2="{W - R + 110}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"/>')
    out.append(f'<text x="{W - R + 114}" y="{ly + 4}">{fig}</text>')
out.append("</svg>")
open(sys.argv[2], "w").write("\n".join(out))
PY
log "table: ${OUT#"$ROOT"/}/table.txt, plot: ${OUT#"$ROOT"/}/growth.svg"
