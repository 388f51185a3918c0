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
