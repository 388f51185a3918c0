# Shared by the bench scripts (sourced after they cd to the repo root).
# shellcheck source=../scripts/lib/deps.sh
. scripts/lib/deps.sh

# log MESSAGE: a timestamped line on stderr and in $OUT/log.txt; die MESSAGE: log it and exit 1.
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/log.txt" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wait_for_healthz URL PID LOGFILE: waits up to 60 s for GET URL/healthz to answer 200;
# fails at once if the server process exits.
wait_for_healthz() {
    for _ in $(seq 1 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$1/healthz" || true)" = 200 ] && return 0
        kill -0 "$2" 2>/dev/null || { echo "server exited; see $3" >&2; return 1; }
        sleep 0.2
    done
    echo "server did not answer /healthz within 60 s; see $3" >&2
    return 1
}

# release_imaged BUILD_LOG: sets IMAGED_BIN and BUILD. Builds the release binary in .build-release
# unless IMAGED_BIN is already set (then that binary is used as given).
release_imaged() {
    if [ -n "${IMAGED_BIN:-}" ]; then
        BUILD="given: $IMAGED_BIN"
        return 0
    fi
    echo "building imaged (release, scratch path .build-release; 20-30 min cold on 2 cores)" >&2
    swift build -c release --scratch-path .build-release --product imaged > "$1" 2>&1 \
        || { tail -20 "$1" >&2; echo "release build failed; see $1" >&2; return 1; }
    IMAGED_BIN=$(swift build -c release --scratch-path .build-release --show-bin-path)/imaged
    BUILD=release
}

# results_dir NAME COLUMN...: a new $ROOT/bench/results/NAME-<UTC time>/ as OUT, with RESULTS (results.tsv)
# started with a header line of the COLUMNs, tab-separated.
results_dir() {
    OUT=$ROOT/bench/results/$1-$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$OUT"
    RESULTS=$OUT/results.tsv
    (IFS=$'\t'; printf '%s\n' "${*:2}") > "$RESULTS"
}

# start_rgw DIR PORT: a fresh single-node Ceph RGW (scripts/s3.sh) in DIR on 127.0.0.1:PORT; its
# settings are in DIR/s3.env. stop_rgw DIR: stops it and removes DIR.
start_rgw() {
    log "starting Ceph RGW on 127.0.0.1:$2"
    scripts/s3.sh start "$1" "$2" > "$OUT/s3-start.log" 2>&1 || { cat "$OUT/s3-start.log" >&2; die "S3 did not start"; }
}
stop_rgw() {
    scripts/s3.sh stop "$1" >/dev/null 2>&1 || true
    rm -rf "$1"
}

# The throughput figures (RESULTS columns figure, round, seconds, MiB_per_s; BYTES per transfer):
# timed FIGURE ROUND COMMAND...: runs COMMAND, adds its row to RESULTS and logs it.
timed() {
    local fig=$1 round=$2; shift 2
    local t0 t1 s mibs
    t0=$(date +%s.%N); "$@" > /dev/null 2>> "$OUT/commands.log" || die "$fig failed (see $OUT/commands.log)"; t1=$(date +%s.%N)
    s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    mibs=$(awk -v s="$s" -v n="$BYTES" 'BEGIN { printf "%.1f", n / 1048576 / s }')
    printf '%s\t%s\t%s\t%s\n' "$fig" "$round" "$s" "$mibs" >> "$RESULTS"
    log "$(printf '%-16s r%s %8s s %8s MiB/s' "$fig" "$round" "$s" "$mibs")"
}
# median_of FORMAT: the median of the numbers on stdin, printed with FORMAT.
median_of() { sort -g | awk -v f="$1" '{ v[NR] = $1 } END { printf f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# mibs_of FIGURE: FIGURE's MiB/s, one round a line.
mibs_of() { awk -F'\t' -v f="$1" 'NR > 1 && $1 == f { print $4 }' "$RESULTS"; }
# ratio_row LABEL A B: a table row: the medians of A and B, the median over rounds of A/B in the same
# round, and whether it meets the issue's target (>= 0.90).
ratio_row() {
    local q
    q=$(awk -F'\t' -v a="$2" -v b="$3" 'NR > 1 && $1 == a { x[$2] = $4 } NR > 1 && $1 == b { y[$2] = $4 }
        END { for (r in x) if (r in y) print x[r] / y[r] }' "$RESULTS" | median_of %.2f)
    printf '%-10s %-18s %-18s %-8s %s\n' "$1" "$(mibs_of "$2" | median_of %.1f)" "$(mibs_of "$3" | median_of %.1f)" "$q" \
        "$(awk -v q="$q" 'BEGIN { print (q >= 0.90 ? "PASS" : "MISS") }')"
}
# ratio_header COLUMN_A COLUMN_B: the header line of ratio_row's table.
ratio_header() { printf '%-10s %-18s %-18s %-8s %s\n' "" "$1" "$2" ratio "target >= 0.90"; }

# serve_imaged WORK ARGS...: $IMAGED_BIN serve on 127.0.0.1:$PORT with its data in WORK/data, the static
# token `benchtok` (admin of project p1) and ARGS; log in $OUT/server.log. Sets SERVER_PID; waits for /healthz.
serve_imaged() {
    local work=$1; shift
    echo '{"tokens": [{"token": "benchtok", "user_id": "u1", "project_id": "p1", "roles": ["admin"]}]}' > "$work/tokens.json"
    "$IMAGED_BIN" serve --data-dir "$work/data" --listen "127.0.0.1:$PORT" --token-file "$work/tokens.json" \
        "$@" --log-level warning > "$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    wait_for_healthz "http://127.0.0.1:$PORT" "$SERVER_PID" "$OUT/server.log" || die "imaged did not start"
}
# bench_api CURL_ARGS...: curl as benchtok, failing on an HTTP error.
bench_api() { curl -sf -H "X-Auth-Token: benchtok" "$@"; }
# new_raw_image: creates a queued raw/bare image and prints its id.
new_raw_image() {
    bench_api -H 'Content-Type: application/json' -d '{"name":"b","disk_format":"raw","container_format":"bare"}' \
        "http://127.0.0.1:$PORT/v2/images" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'
}

# The latency figures (RESULTS columns figure, round, rps, p50_us, p99_us, errors), for keystone.sh and console.sh:
# latency_results NAME: a new results directory (results_dir) with those columns and a raw/ for wrk's output.
latency_results() {
    results_dir "$1" figure round rps p50_us p99_us errors steal_ms
    mkdir -p "$OUT/raw"
}
# latency_tools_and_binary: wrk, sqlite3 and curl installed if missing; IMAGED_BIN set (release_imaged).
latency_tools_and_binary() {
    ensure_command wrk wrk
    ensure_command sqlite3 sqlite3
    ensure_command curl curl
    release_imaged "$OUT/build.log" || die "no binary"
    [ -x "$IMAGED_BIN" ] || die "no executable at $IMAGED_BIN"
}
# run_wrk FIGURE ROUND SCRIPT [ENV=VALUE...]: one wrk run of $DURATION s at $CONNS connections ($THREADS threads)
# against $URL with bench/SCRIPT (its RESULT line, see common.lua), raw output in $OUT/raw; adds its row.
# With CLIENT_CPUS set (a taskset list), wrk runs on those CPUs only.
run_wrk() {
    local fig=$1 round=$2 script=$3; shift 3
    local raw=$OUT/raw/$fig-r$round.txt st0 st1
    st0=$(steal_ms)
    env "$@" ${CLIENT_CPUS:+taskset -c "$CLIENT_CPUS"} wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$BENCH/$script" "$URL/" > "$raw" 2>&1 \
        || die "wrk failed for $fig; see $raw"
    st1=$(steal_ms)
    local line; line=$(grep '^RESULT ' "$raw") || die "no RESULT line in $raw"
    # shellcheck disable=SC2086
    local $(echo "${line#RESULT }")
    local errors=$((err_connect + err_read + err_write + err_status + err_timeout))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fig" "$round" "$rps" "$p50_us" "$p99_us" "$errors" "$((st1 - st0))" >> "$RESULTS"
    log "$(printf '%-22s r%s %9s req/s  p50 %6.2f ms  p99 %7.2f ms  errors %s  steal %s ms' "$fig" "$round" "$rps" \
        "$(awk -v x="$p50_us" 'BEGIN{print x/1000}')" "$(awk -v x="$p99_us" 'BEGIN{print x/1000}')" "$errors" "$((st1 - st0))")"
}

# CPU time the hypervisor gave to others while our vCPUs were runnable (/proc/stat "steal"), in ms:
# on a shared host it comes in slices of up to ~100 ms that stall every request in flight.
steal_ms() { awk -v t="$(getconf CLK_TCK)" '/^cpu / { print int($9 * 1000 / t) }' /proc/stat; }

# cpu_ticks PID...: "pid ticks" for each process, its CPU time so far (user + system, in clock ticks).
# counter_delta BEFORE AFTER: the ticks (or other counts) taken between two such listings (files) by the
# processes (or threads) alive at both (one that came or went in between, such as an autovacuum worker,
# is left out). TICK_US: one tick in µs.
# A process gone before it is read is skipped: cpu_ticks never fails (postgres.sh runs under set -e).
cpu_ticks() { local p; for p in "$@"; do awk -v p="$p" '{ print p, $14 + $15 }' "/proc/$p/stat" 2>/dev/null || true; done; }
# context_switches PID…: one line per thread (its voluntary + involuntary switches), so that counter_delta
# counts only threads alive at both ends (the task pool's threads come and go).
context_switches() { local p t; for p in "$@"; do for t in /proc/"$p"/task/*; do
    awk -v k="${t##*/}" '/^(non)?voluntary_ctxt_switches/ { n += $2 } END { if (NR) print k, n + 0 }' "$t/status" 2>/dev/null || true
done; done; }
counter_delta() { awk 'NR == FNR { a[$1] = $2; next } ($1 in a) { t += $2 - a[$1] } END { print t + 0 }' "$1" "$2"; }
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# median: of the numbers on stdin ("-" when none). col FIGURE COLUMN: that column of FIGURE's rows.
# ratio A B COLUMN: the median over rounds of A/B in the same round.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit } printf "%.2f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'\t' -v f="$1" -v c="$2" 'NR > 1 && $1 == f { print $c }' "$RESULTS"; }
ratio() { awk -F'\t' -v a="$1" -v b="$2" -v c="$3" 'NR > 1 && $1 == a { x[$2] = $c } NR > 1 && $1 == b { y[$2] = $c }
    END { for (r in x) if ((r in y) && y[r] > 0) print x[r] / y[r] }' "$RESULTS" | median; }

# perf_record PID SECONDS DIR: samples process PID with perf (cpu-clock, frame-pointer call graphs) for
# SECONDS into DIR/perf.data, in the background ($! is perf). Installs Debian's linux-perf when missing.
perf_record() {
    command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
    perf record -F 1999 -g -p "$1" -o "$3/perf.data" -- sleep "$2" 2> "$3/perf-record.log" &
}

# perf_reports DIR: from DIR/perf.data, flat.txt (self time by binary and symbol), by-dso.txt and
# children.txt (inclusive time, with callers), Swift symbols demangled.
perf_reports() {
    local demangle='cat'
    command -v swift >/dev/null && demangle='swift demangle --simplified --compact'
    perf report -i "$1/perf.data" --stdio --no-children --sort dso,symbol --percent-limit 0.5 -g none 2>/dev/null \
        | $demangle | sed -E 's/[ ]+(-[ ]+-)?[ ]*$//' > "$1/flat.txt"
    perf report -i "$1/perf.data" --stdio --no-children --sort dso --percent-limit 0.5 -g none 2>/dev/null \
        | sed -E 's/[ ]+$//' > "$1/by-dso.txt"
    perf report -i "$1/perf.data" --stdio --children --sort symbol --percent-limit 2 -g caller,0.5,callee,function,percent 2>/dev/null \
        | $demangle | sed -E 's/[ ]+(-[ ]+-)?[ ]*$//' > "$1/children.txt"
}
