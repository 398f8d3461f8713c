#!/usr/bin/env bash
# Peak resident memory (RSS) of writing large results, to check that it stays
# flat as the row count grows:
#
#   store-write  writing N generated rows of ten columns through
#                ParquetResultStore (examples/store_write_rss.rs)
#   cli-parquet  loupe query --source DIR --format parquet --output OUT
#                "SELECT * FROM wide" over a generated N-row wide.parquet
#   xlsx-write   writing N generated rows of five typed columns as an XLSX
#                file through BatchWriter (examples/xlsx_write_rss.rs),
#                which also checks the sheets (a new one every 1,048,576
#                rows)
#   alert-eval   evaluating three alert conditions over a stored N-row
#                result a batch at a time, as runners do after a run
#                (examples/alert_eval_rss.rs; the result is stored by a
#                first process, evaluated by a second)
#
# Usage: benches/rss.sh            (N = 1,000,000 and 10,000,000)
#        ROWS="1000000" benches/rss.sh
#
# Builds what it needs in release mode, works in a temporary directory that
# it removes on exit, and prints a table. Peak RSS is the child's maximum
# resident set size, from /usr/bin/time -v when present, otherwise from
# getrusage(RUSAGE_CHILDREN) in python3.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROWS="${ROWS:-1000000 10000000}"

# shellcheck source=benches/lib.sh
source benches/lib.sh
bench_init loupe-rss
echo "building (release)..." >&2
bench_build -p loupe-cli --bin loupe
bench_build -p loupe --example store-write-rss --example gen-sample-data \
    --example xlsx-write-rss
bench_build -p loupe --features services --example alert-eval-rss
bin="$target_dir/release"
loupe="$bin/loupe"
store_write="$bin/examples/store-write-rss"
gen="$bin/examples/gen-sample-data"
xlsx_write="$bin/examples/xlsx-write-rss"
alert_eval="$bin/examples/alert-eval-rss"
for exe in "$loupe" "$store_write" "$gen" "$xlsx_write" "$alert_eval"; do
    [[ -x "$exe" ]] || { echo "missing $exe" >&2; exit 1; }
done

results=()
row() { # case rows kb seconds note
    results+=("$(printf '%-12s %11s %12.1f %9.2f  %s' "$1" "$2" "$(awk "BEGIN{print $3/1024}")" "$4" "$5")")
    bench_figure "$1/$2" peak_mb "$(awk "BEGIN{print $3/1024}")"
    bench_figure "$1/$2" seconds "$4"
}

for n in $ROWS; do
    # a) ParquetResultStore::write of n generated rows.
    echo "store-write: $n rows..." >&2
    measure "$work/store.log" "$store_write" "$n" "$work/store-$n" >"$work/m.txt"
    read -r kb secs _ <"$work/m.txt"
    self="$(grep -o 'peak_rss_mb=[0-9.]*' "$work/store.log" | cut -d= -f2)"
    bytes="$(grep -o 'bytes=[0-9]*' "$work/store.log" | cut -d= -f2)"
    row store-write "$n" "$kb" "$secs" "VmHWM ${self} MB, $((bytes / 1000000)) MB written"
    rm -rf "$work/store-$n"

    # b) loupe query to a Parquet file, over an n-row wide.parquet.
    echo "gen-sample-data: $n rows..." >&2
    "$gen" --wide "$n" --out "$work/src-$n" >&2
    in_mb=$(($(stat -c %s "$work/src-$n/wide.parquet") / 1000000))
    echo "cli-parquet: $n rows..." >&2
    measure "$work/cli.log" "$loupe" query --source "$work/src-$n" \
        --format parquet --output "$work/out-$n.parquet" "SELECT * FROM wide" >"$work/m.txt"
    read -r kb secs _ <"$work/m.txt"
    out_mb=$(($(stat -c %s "$work/out-$n.parquet") / 1000000))
    row cli-parquet "$n" "$kb" "$secs" "input ${in_mb} MB, output ${out_mb} MB"
    rm -rf "$work/src-$n" "$work/out-$n.parquet"

    # c) BatchWriter to an XLSX file, n generated rows (its sheets are
    # checked after the measure).
    echo "xlsx-write: $n rows..." >&2
    measure "$work/xlsx.log" "$xlsx_write" "$n" "$work/out-$n.xlsx" >"$work/m.txt"
    read -r kb secs _ <"$work/m.txt"
    self="$(grep -o 'peak_rss_mb=[0-9.]*' "$work/xlsx.log" | cut -d= -f2)"
    sheets="$(grep -o 'sheets=[0-9]*' "$work/xlsx.log" | cut -d= -f2)"
    out_mb=$(($(stat -c %s "$work/out-$n.xlsx") / 1000000))
    row xlsx-write "$n" "$kb" "$secs" "VmHWM ${self} MB, ${sheets} sheets, ${out_mb} MB written"
    rm -f "$work/out-$n.xlsx"

    # d) Alert conditions over a stored n-row result.
    echo "alert-eval: $n rows..." >&2
    "$alert_eval" store "$n" "$work/alert-$n" >&2
    measure "$work/alert.log" "$alert_eval" evaluate "$work/alert-$n" >"$work/m.txt"
    read -r kb secs _ <"$work/m.txt"
    self="$(grep -o 'peak_rss_mb=[0-9.]*' "$work/alert.log" | cut -d= -f2)"
    row alert-eval "$n" "$kb" "$secs" "VmHWM ${self} MB, 3 conditions"
    rm -rf "$work/alert-$n"
done

printf '%-12s %11s %12s %9s  %s\n' case rows "peak RSS MB" seconds notes
printf '%s\n' "${results[@]}"
bench_write_figures rss
