#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of the disk-format inspector and of every front-end's request
# decoding: the targets under Fuzz/ (see the README's "Fuzzing").
#
#   scripts/fuzz.sh [TARGET...]         build every target with -sanitize=fuzzer in one build folder
#                                       (.build-fuzz) and run each for FUZZ_SECONDS on a copy of its
#                                       committed seed corpus (Fuzz/corpus/<target>)
#   scripts/fuzz.sh replay [TARGET...]  run the committed corpus through the plain debug build's targets
#                                       (.build/debug, from `swift build`): no fuzzing, a few seconds
#   scripts/fuzz.sh asan [TARGET...]    the same fuzzing with AddressSanitizer as well (-sanitize=fuzzer,address,
#                                       build folder .build-fuzz-asan); without targets: the ones that parse
#                                       untrusted bytes at the lowest level, FuzzInspector and FuzzJSON
#   scripts/fuzz.sh build               only build what the two above run (every target, and the asan ones),
#                                       so that they start fuzzing at once (CI builds while e2e runs)
#
# Environment: FUZZ_SECONDS (per target, default 45; FUZZ_ASAN_SECONDS in asan mode, default 30), FUZZ_TIMEOUT (seconds one input may take before it
# counts as a hang, default 10), FUZZ_RSS_MB (memory limit, default 2048), FUZZ_RESULTS (where each
# target's run is kept: log, grown corpus, crashing inputs; default .build-fuzz/results).
#
# Prints one line per target:  FUZZ (FUZZ-ASAN) <target> execs=<N> crashes=<n> seconds=<s>
# A crash, a hang (timeout), running out of memory or a leak is saved as <results>/<target>/crash-…
# (timeout-…, oom-…, leak-…); rerun one with `.build-fuzz/debug/<target> <file>`. Exits non-zero when
# any target found one, or when the build fails.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
[ -x /opt/swift/usr/bin/swift ] && case ":$PATH:" in *":/opt/swift/usr/bin:"*) ;; *) PATH="$PATH:/opt/swift/usr/bin" ;; esac

ALL_TARGETS=(FuzzInspector FuzzDecoder FuzzJSON FuzzOpenStack FuzzAvi FuzzZStack FuzzDanube FuzzScalr)
# Memory errors a plain fuzzing build cannot see (the inspector's offset arithmetic over C buffers, the JSON
# scanner) show up under AddressSanitizer; the front-ends' decoding is pure Swift over those two.
ASAN_TARGETS=(FuzzInspector FuzzJSON)
SCRATCH=.build-fuzz
FUZZ_FLAGS=(-Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING)

mode=fuzz
case "${1:-}" in
  replay) mode=replay; shift ;;
  asan) mode=asan; shift ;;
  build) mode=build; shift ;;
esac
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  if [ "$mode" = asan ]; then targets=("${ASAN_TARGETS[@]}"); else targets=("${ALL_TARGETS[@]}"); fi
fi
ASAN_SCRATCH=.build-fuzz-asan
ASAN_FLAGS=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING)

# Builds each of the targets after the first two arguments (scratch path, flags as one word) with them.
build_targets() {
  local scratch=$1 t
  local -a flags
  read -r -a flags <<<"$2"
  shift 2
  for t in "$@"; do
    if ! swift build --scratch-path "$scratch" "${flags[@]}" --product "$t" </dev/null; then
      echo "fuzz.sh: the fuzzing build of $t ($scratch) failed"
      return 2
    fi
  done
}

if [ "$mode" = build ]; then
  started=$(date +%s)
  build_targets "$SCRATCH" "${FUZZ_FLAGS[*]}" "${ALL_TARGETS[@]}" || exit 2
  build_targets "$ASAN_SCRATCH" "${ASAN_FLAGS[*]}" "${ASAN_TARGETS[@]}" || exit 2
  echo "FUZZ-BUILD mode=build seconds=$(( $(date +%s) - started ))"
  exit 0
fi
for t in "${targets[@]}"; do
  [ -d "Fuzz/corpus/$t" ] || { echo "fuzz.sh: unknown target $t (targets: ${ALL_TARGETS[*]})"; exit 2; }
done

if [ "$mode" = replay ]; then
  bin=$(swift build --show-bin-path 2>/dev/null) || { echo "fuzz.sh: swift build --show-bin-path failed"; exit 2; }
  failed=0
  for t in "${targets[@]}"; do
    if [ ! -x "$bin/$t" ]; then echo "fuzz.sh: $bin/$t is not built (swift build)"; failed=1; continue; fi
    "$bin/$t" "Fuzz/corpus/$t" || { echo "REPLAY $t FAILED"; failed=1; }
  done
  exit $failed
fi

SECONDS_PER_TARGET=${FUZZ_SECONDS:-45}
tag=FUZZ
if [ "$mode" = asan ]; then
  SCRATCH=$ASAN_SCRATCH
  FUZZ_FLAGS=("${ASAN_FLAGS[@]}")
  SECONDS_PER_TARGET=${FUZZ_ASAN_SECONDS:-30}
  tag=FUZZ-ASAN
  # Leaks are libFuzzer's -detect_leaks (on by default); ASan itself only has to stop at the first error.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:halt_on_error=1}
fi
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
RESULTS=${FUZZ_RESULTS:-$SCRATCH/results}

# A trap must reach libFuzzer's handler (which saves the input), not the Swift runtime's backtracer.
export SWIFT_BACKTRACE=enable=no

started=$(date +%s)
build_targets "$SCRATCH" "${FUZZ_FLAGS[*]}" "${targets[@]}" || exit 2
bin=$(swift build --scratch-path "$SCRATCH" "${FUZZ_FLAGS[@]}" --show-bin-path)
echo "FUZZ-BUILD mode=$mode targets=${#targets[@]} seconds=$(( $(date +%s) - started ))"

failed=()
for t in "${targets[@]}"; do
  work="$RESULTS/$t"
  rm -rf "$work"
  mkdir -p "$work"
  # libFuzzer adds what it finds to its first corpus directory: a copy, never the committed one.
  cp -R "Fuzz/corpus/$t" "$work/corpus"
  extra=()
  [ -f "Fuzz/dict/$t.dict" ] && extra+=("-dict=Fuzz/dict/$t.dict")
  # The inspector's sparse encoding reaches 6 MiB streams from small inputs; its dense seeds are ≤ 36 KiB.
  [ "$t" = FuzzInspector ] && extra+=(-max_len=40000)
  run_started=$(date +%s)
  "$bin/$t" "$work/corpus" -max_total_time="$SECONDS_PER_TARGET" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
    -malloc_limit_mb="$RSS_MB" -print_final_stats=1 -artifact_prefix="$work/" "${extra[@]}" </dev/null >"$work/log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - run_started ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
  found=$(find "$work" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) | sort)
  crashes=$(printf '%s' "$found" | grep -c . || true)
  echo "$tag $t execs=${execs:-0} crashes=$crashes seconds=$elapsed"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed+=("$t")
    echo "---- $t: libFuzzer exited $rc; last lines of $work/log:"
    grep -v '^#[0-9]' "$work/log" | tail -40
    [ -n "$found" ] && printf 'saved input: %s\n' $found
    echo "----"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED (${failed[*]}); inputs and logs under $RESULTS"
  exit 1
fi
echo "fuzz.sh: no crash, hang or leak in ${#targets[@]} targets ($mode)"
