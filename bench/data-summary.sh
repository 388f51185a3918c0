#!/usr/bin/env bash
# Writes and prints summary.md for a bench/data.sh results directory:
#   bench/data-summary.sh bench/results/data-<UTC time>
set -euo pipefail
OUT=$(cd "${1:?usage: bench/data-summary.sh bench/results/data-<time>}" && pwd)
RESULTS=$OUT/results.tsv RSS_TSV=$OUT/rss.tsv CHECKS=$OUT/checks.tsv
# shellcheck disable=SC1091
. "$OUT/meta.env"
# Single-stream uploads: 0.85 (issue 23); downloads and the concurrent uploads: 0.80 (the data-path issue).
TARGET_RATIO=0.80 UPLOAD_TARGET_RATIO=0.85 RSS_LIMIT_MIB=64

values() { # phase figure -> one value per round
    awk -F'\t' -v p="$1" -v f="$2" 'NR > 1 && $1 == p && $3 == f { print $4 }' "$RESULTS"
}
# stdin numbers -> "median min max n"
stats() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "- - - 0"; exit }
    m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR], NR }'; }
# phase figure ref1 [ref2] -> per round figure / min(ref1, ref2) of the same round
paired() {
    awk -F'\t' -v p="$1" -v f="$2" -v g="$3" -v h="${4:-}" 'NR > 1 && $1 == p {
            if ($3 == f) a[$2] = $4; if ($3 == g) b[$2] = $4; if (h != "" && $3 == h) c[$2] = $4 }
        END { for (r in a) if (r in b) { ref = b[r]; if (h != "" && (r in c) && c[r] < ref) ref = c[r]; if (ref > 0) print a[r] / ref } }' "$RESULTS"
}
minref() { # phase ref1 ref2 -> per round min
    awk -F'\t' -v p="$1" -v g="$2" -v h="$3" 'NR > 1 && $1 == p { if ($3 == g) b[$2] = $4; if ($3 == h) c[$2] = $4 }
        END { for (r in b) if (r in c) print (b[r] < c[r] ? b[r] : c[r]) }' "$RESULTS"
}
fmt() { awk -v x="$1" -v f="${2:-%.0f}" 'BEGIN { if (x == "-") print "-"; else printf f, x }'; }
label() { if [ $(($1 % 1024)) = 0 ]; then echo "$(($1 / 1024)) GiB"; else echo "$1 MiB"; fi; }
sum_errors() { awk -F'\t' -v p="$1" 'NR > 1 && $1 == p && ($3 ~ /_error/ || $3 == "upload_errors") { s += $4 } END { print s + 0 }' "$RESULTS"; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"); }
verdict() { # ratio errors
    if [ "${2:-0}" -gt 0 ]; then echo "**FAIL** ($2 errors)"; return; fi
    [ "$1" = - ] && { echo "no data"; return; }
    awk -v r="$1" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t ? "PASS" : "**MISS**") }'
}
runs() { read -r m lo hi n <<<"$1"; [ "$n" = 0 ] && echo "0" || echo "$n ($(fmt "$lo" "${2:-%.0f}")–$(fmt "$hi" "${2:-%.0f}"))"; }
med() { echo "$1" | cut -d' ' -f1; }

for mib in $SIZES; do
    p=s$mib L=$(label "$mib")
    up=$(values "$p" upload | stats); down=$(values "$p" download | stats)
    dd=$(values "$p" dd | stats); dg=$(values "$p" digest | stats); cat_=$(values "$p" cat | stats)
    md5=$(values "$p" md5 | stats); hs=$(values "$p" "$HASH" | stats)
    ref=$(minref "$p" dd digest | stats)
    ru=$(paired "$p" upload dd digest | stats); rd=$(paired "$p" download cat | stats)
    e=$(sum_errors "$p")
    ratio_u=$(med "$ru"); ratio_d=$(med "$rd")
    row "upload $L (PUT until 204)" "$(fmt "$(med "$up")") MB/s" "$(runs "$up")" \
        "min(dd fsync $(fmt "$(med "$dd")"), slowest digest $(fmt "$(med "$dg")")) = $(fmt "$(med "$ref")") MB/s" \
        "$(fmt "$ratio_u" %.2f)" "≥ $UPLOAD_TARGET_RATIO" "$(TARGET_RATIO=$UPLOAD_TARGET_RATIO verdict "$(fmt "$ratio_u" %.2f)" "$e")"
    row "download $L (GET, curl -o /dev/null)" "$(fmt "$(med "$down")") MB/s" "$(runs "$down")" \
        "cat from page cache $(fmt "$(med "$cat_")") MB/s" "$(fmt "$ratio_d" %.2f)" "≥ $TARGET_RATIO" "$(verdict "$(fmt "$ratio_d" %.2f)" "$e")"
    dc=$(values "$p" download_cold | stats)
    [ "$(med "$dc")" = - ] || row "&nbsp;&nbsp;first GET right after the upload, blob not warmed ($L; from disk when written direct)" "$(fmt "$(med "$dc")") MB/s" "$(runs "$dc")" \
        "the GET below, blob in page cache: $(fmt "$(med "$down")") MB/s" "$(fmt "$(med "$(paired "$p" download_cold download | stats)")" %.2f)" "" "info"
    cb=$(values "$p" cat_blob | stats)
    [ "$(med "$cb")" = - ] || row "&nbsp;&nbsp;cat of the stored blob after GET ($L)" "$(fmt "$(med "$cb")") MB/s" "$(runs "$cb")" \
        "cat of the test file $(fmt "$(med "$cat_")") MB/s" "$(fmt "$(med "$(paired "$p" cat_blob cat | stats)")" %.2f)" "" "info"
    lu=$(values "$p" loop_upload | stats); ld=$(values "$p" loop_download | stats)
    [ "$(med "$lu")" = - ] || row "&nbsp;&nbsp;same curl PUT to bench/loopback.py (discards; loopback + curl ceiling)" "$(fmt "$(med "$lu")") MB/s" "$(runs "$lu")" \
        "imaged upload / this" "$(fmt "$(med "$(paired "$p" upload loop_upload | stats)")" %.2f)" "" "info"
    [ "$(med "$ld")" = - ] || row "&nbsp;&nbsp;same curl GET from bench/loopback.py (sendfile from page cache)" "$(fmt "$(med "$ld")") MB/s" "$(runs "$ld")" \
        "imaged download / this" "$(fmt "$(med "$(paired "$p" download loop_download | stats)")" %.2f)" "" "info"
    row "&nbsp;&nbsp;dd $L bs=1M conv=fsync (reference)" "$(fmt "$(med "$dd")") MB/s" "$(runs "$dd")" "" "" "" "reference"
    row "&nbsp;&nbsp;openssl speed md5 / $HASH, 16 KiB (reference)" "$(fmt "$(med "$md5")") / $(fmt "$(med "$hs")") MB/s" "$(runs "$dg")" "" "" "" "reference"
    bs=$(values "$p" bssl_digest | stats)
    [ "$(med "$bs")" = - ] || row "&nbsp;&nbsp;md5 / $HASH in swift-crypto's BoringSSL, which imaged no longer uses for them (bench/digest_speed.c)" \
        "$(fmt "$(med "$(values "$p" bssl_md5 | stats)")") / $(fmt "$(med "$(values "$p" "bssl_$HASH" | stats)")") MB/s" "$(runs "$bs")" \
        "upload / min(dd, slower of these)" "$(fmt "$(med "$(paired "$p" upload dd bssl_digest | stats)")" %.2f)" "" "info"
    dq=$(values "$p" dirty_upload | stats)
    [ "$(med "$dq")" = - ] || row "&nbsp;&nbsp;peak dirty + writeback page cache during the upload ($L)" "$(awk -v k="$(med "$dq")" 'BEGIN { printf "%.0f MiB", k / 1024 }')" \
        "$(echo "$dq" | cut -d' ' -f4)" "machine-wide; image size $mib MiB (far below it: writeback keeps up while the upload streams)" "" "" "info"
    cpu=$(values "$p" upload_server_cpu | stats); busy=$(values "$p" upload_busy | stats)
    row "&nbsp;&nbsp;server CPU per GB uploaded ($L)" "$(fmt "$(med "$cpu")" %.2f) s/GB" "$(runs "$cpu" %.2f)" \
        "machine busy during upload $(fmt "$(med "$busy")") % of 2 CPUs" "" "" "info"
done

# Concurrent uploads
p=conc
up=$(values "$p" upload | stats); dd=$(values "$p" dd | stats); dg=$(values "$p" digest | stats)
ref=$(minref "$p" dd digest | stats); ru=$(paired "$p" upload dd digest | stats); e=$(sum_errors "$p")
total=$((CONC * CONC_MIB))
row "$CONC concurrent uploads of $(label "$CONC_MIB"), aggregate" "$(fmt "$(med "$up")") MB/s" "$(runs "$up")" \
    "min(dd $(label "$total") fsync $(fmt "$(med "$dd")"), slowest digest $(fmt "$(med "$dg")")) = $(fmt "$(med "$ref")") MB/s" \
    "$(fmt "$(med "$ru")" %.2f)" "≥ $TARGET_RATIO, 0 errors" "$(verdict "$(fmt "$(med "$ru")" %.2f)" "$e")"

bs=$(values "$p" bssl_digest | stats)
[ "$(med "$bs")" = - ] || row "&nbsp;&nbsp;md5 / $HASH in swift-crypto's BoringSSL (bench/digest_speed.c)" \
    "$(fmt "$(med "$(values "$p" bssl_md5 | stats)")") / $(fmt "$(med "$(values "$p" "bssl_$HASH" | stats)")") MB/s" "$(runs "$bs")" \
    "upload / min(dd, slower of these)" "$(fmt "$(med "$(paired "$p" upload dd bssl_digest | stats)")" %.2f)" "" "info"

# RSS: growth = max(sampled peak, VmHWM after clear_refs) - baseline (after start + one small request)
rss_growth() { # phase what -> per round growth KiB
    awk -F'\t' -v p="$1" -v w="$2" 'NR > 1 && $1 == p && $3 == w { pk = ($6 > $5 ? $6 : $5); print pk - $4 }' "$RSS_TSV"
}
rss_line() { # phase what -> "baseline peak" (max over rounds) MiB
    awk -F'\t' -v p="$1" -v w="$2" 'NR > 1 && $1 == p && $3 == w { b = $4; pk = ($6 > $5 ? $6 : $5); if (pk > m) m = pk }
        END { printf "%d %d", b / 1024, m / 1024 }' "$RSS_TSV"
}
mib_of() { awk -v k="$1" 'BEGIN { if (k == "-") print "-"; else printf "%.1f", k / 1024 }'; }
g=$(rss_growth "s$LARGEST" upload | stats); read -r b pk <<<"$(rss_line "s$LARGEST" upload)"
gmax=$(echo "$g" | cut -d' ' -f3)
rss_verdict=$(awk -v x="$gmax" -v l=$RSS_LIMIT_MIB 'BEGIN { if (x == "-") print "no data"; else print (x / 1024 < l ? "PASS" : "**MISS**") }')
own=$(awk -F'\t' -v p="s$LARGEST" 'NR > 1 && $1 == p && $3 == "upload" && $8 != "" { pk = ($6 > $5 ? $6 : $5); if (pk - $8 > m) m = pk - $8 }
    END { printf "%.1f", m / 1024 }' "$RSS_TSV")
row "server RSS growth during a $(label "$LARGEST") upload (worst round)" "$(mib_of "$gmax") MiB (median $(mib_of "$(med "$g")"))" \
    "$(echo "$g" | cut -d' ' -f4)" "baseline $b MiB → peak $pk MiB; worst peak − RSS right before the upload: $own MiB" "" "< $RSS_LIMIT_MIB MiB" "$rss_verdict"
g=$(rss_growth "s$LARGEST" download | stats); read -r b pk <<<"$(rss_line "s$LARGEST" download)"
row "&nbsp;&nbsp;server RSS growth during a $(label "$LARGEST") download (worst round)" "$(mib_of "$(echo "$g" | cut -d' ' -f3)") MiB" \
    "$(echo "$g" | cut -d' ' -f4)" "baseline $b MiB → peak $pk MiB" "" "" "info"
g=$(rss_growth conc upload | stats); read -r b pk <<<"$(rss_line conc upload)"
row "&nbsp;&nbsp;server RSS growth during $CONC concurrent uploads (worst round)" "$(mib_of "$(echo "$g" | cut -d' ' -f3)") MiB" \
    "$(echo "$g" | cut -d' ' -f4)" "baseline $b MiB → peak $pk MiB" "" "" "info"

# Correctness
nchk=$(awk 'NR > 1' "$CHECKS" | wc -l); nbad=$(awk -F'\t' 'NR > 1 && $4 != "OK"' "$CHECKS" | wc -l)
row "correctness: checksum = md5sum, os_hash_value = ${HASH}sum, GET sha512 = sha512sum, $CONC concurrent images" \
    "$((nchk - nbad))/$nchk checks OK" "" "" "" "all OK" "$([ "$nbad" = 0 ] && [ "$nchk" -gt 0 ] && echo PASS || echo '**FAIL**')"

{
    echo "# imaged data-path benchmark ($(basename "$OUT"))"
    echo
    echo "| figure | median | runs (min–max) | reference (median, same rounds) | ratio | target | result |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "- MB/s = 10^6 bytes/s. ratio = median over rounds of figure / reference measured in the same round (upload: min of dd fsync and the slower of md5 / $HASH)."
    echo "- load average (1/5/15 min): start $LOAD_START, end $LOAD_END."
    echo "- binary: $BUILD; $(grep '^git:' "$OUT/env.txt" | sed 's/^git: //')"
    [ ! -s "$OUT/problems.txt" ] || { echo "- problems:"; sed 's/^/  - /' "$OUT/problems.txt"; }
} > "$OUT/summary.md"
cat "$OUT/summary.md"
