# shellcheck shell=bash
# Shared by the datasource benchmarks (benches/postgres.sh, benches/mysql.sh):
# building, the Python virtualenv, timing a command with its peak RSS,
# medians, running the cases and printing the table. Sourced, not run; the
# caller sets `set -euo pipefail` and works from the workspace root.
#
# A benchmark script defines `case_cmd NAME`, which sets the array `cmd` to
# the command line of case NAME, and then calls, in order:
#
#   bench_init PREFIX                 # temporary directory $work
#   bench_build ARGS...               # cargo build --release ARGS; $target_dir
#   bench_python IMPORTS PACKAGES...  # virtualenv; $python
#   bench_server_pid URL              # optional: the local server, for its CPU time
#   bench_run_cases ROWS NAME...      # RUNS runs of each case; the first is the floor
#   bench_print_table TITLE FLOOR     # the table (exits 1 if rows were missing)
#   bench_write_figures NAME          # the figures as JSON, for benches/compare.py
#
# A case reports the rows it read with a line holding rows=N (psql's
# "COPY N" also counts) and, when it times itself, seconds=S.

cmd=() # set by the caller's case_cmd

# bench_init PREFIX: makes the temporary directory $work, removed on exit.
bench_init() {
    work="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    # shellcheck disable=SC2064 # $work is fixed now, expand it now
    trap "rm -rf '$work'" EXIT
}

# bench_build ARGS...: cargo build --release ARGS (progress on stderr); sets
# $target_dir to the cargo target directory.
bench_build() {
    cargo build --release "$@" >&2
    target_dir="$(cargo metadata --format-version 1 --no-deps |
        grep -o '"target_directory":"[^"]*"' | sed 's/.*:"\(.*\)"/\1/')"
}

# bench_python IMPORTS PACKAGES...: sets $python to the interpreter of the
# virtualenv $target_dir/bench-venv, made if missing, with PACKAGES
# installed unless `import IMPORTS` already works. Without a virtualenv
# (no python3-venv, not root) it falls back to pip --user.
bench_python() {
    local imports="$1"
    shift
    local venv="$target_dir/bench-venv"
    if [[ ! -x "$venv/bin/python" ]]; then
        echo "creating $venv..." >&2
        if ! python3 -m venv "$venv" >&2; then
            rm -rf "$venv"
            if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
                apt-get update -qq >&2
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
                python3 -m venv "$venv" >&2
            fi
        fi
    fi
    local user=()
    if [[ -x "$venv/bin/python" ]]; then
        python="$venv/bin/python"
    else
        echo "no virtualenv; installing with pip --user" >&2
        python="$(command -v python3)"
        user=(--user)
    fi
    if ! "$python" -c "import $imports" 2>/dev/null; then
        echo "installing $*..." >&2
        "$python" -m pip install -q "${user[@]}" "$@" >&2
    fi
}

# CONNECTORX_PY: python3 -c "$CONNECTORX_PY" URL SQL reads the result with
# ConnectorX into an Arrow table and prints rows=N seconds=S.
# shellcheck disable=SC2034 # used by the scripts that source this file
CONNECTORX_PY='
import sys, time
import connectorx
t = time.monotonic()
table = connectorx.read_sql(sys.argv[1], sys.argv[2], return_type="arrow")
s = time.monotonic() - t
print(f"rows={table.num_rows} seconds={s:.3f}")
'

# server_pid: set by bench_server_pid when the server runs on this machine.
server_pid=""

# bench_server_pid URL: sets $server_pid to the process listening on the
# URL's port on this machine (a loopback server), so that the table can show
# the CPU time the server spent on each read. Leaves it empty otherwise.
bench_server_pid() {
    local port pid
    port="$(sed -n 's|^[a-z]*://[^/]*:\([0-9][0-9]*\)/.*|\1|p' <<<"$1")"
    [[ -n "$port" ]] && command -v ss >/dev/null || return 0
    pid="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2 || true)"
    if [[ -n "$pid" && -r "/proc/$pid/stat" ]]; then
        server_pid="$pid"
        echo "server: pid $pid on port $port; its CPU time is measured" >&2
    fi
}

# server_cpu: the CPU seconds the server and its reaped children (the
# backends of PostgreSQL) have used so far, or "-".
server_cpu() {
    if [[ -z "$server_pid" || ! -r "/proc/$server_pid/stat" ]]; then
        echo -
        return
    fi
    # After "pid (comm) ", utime, stime, cutime and cstime are fields 12 to 15.
    sed 's/^.*) //' "/proc/$server_pid/stat" |
        awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($12 + $13 + $14 + $15) / hz }'
}

# server_cpu_after: server_cpu once the server has had a moment to reap the
# backend of a connection that just closed (PostgreSQL's count only then).
server_cpu_after() {
    [[ -z "$server_pid" ]] || sleep 0.3
    server_cpu
}

# with_server_cpu BEFORE AFTER: prints the server's CPU seconds between two
# server_cpu readings, or "-".
with_server_cpu() {
    awk -v b="$1" -v a="$2" 'BEGIN { print (b == "-" || a == "-") ? "-" : sprintf("%.2f", a - b) }'
}

# measure LOG CMD...: runs CMD with its stdout and stderr in LOG; prints
# "<peak RSS in KiB> <wall seconds> <CPU seconds of CMD> <CPU seconds of the
# server>", the last "-" unless bench_server_pid found the server. On
# failure shows LOG and returns 1.
if [[ -x /usr/bin/time ]]; then
    measure() {
        local log="$1"
        shift
        local start end kb cpu before
        before="$(server_cpu)"
        start="$(date +%s.%N)"
        /usr/bin/time -v -o "$work/time.txt" "$@" >"$log" 2>&1 || {
            cat "$log" >&2
            return 1
        }
        end="$(date +%s.%N)"
        kb="$(sed -n 's/.*Maximum resident set size (kbytes): *//p' "$work/time.txt")"
        cpu="$(awk -F': *' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$work/time.txt")"
        awk -v kb="$kb" -v s="$start" -v e="$end" -v cpu="$cpu" -v server="$(with_server_cpu "$before" "$(server_cpu_after)")" \
            'BEGIN { printf "%s %.3f %s %s\n", kb, e - s, cpu, server }'
    }
else
    measure() {
        local log="$1"
        shift
        local before
        before="$(server_cpu)"
        python3 - "$log" "$@" >"$work/py.txt" <<'EOF' || return 1
import resource, subprocess, sys, time
with open(sys.argv[1], "w") as log:
    start = time.monotonic()
    code = subprocess.run(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - start
if code != 0:
    print(open(sys.argv[1]).read(), file=sys.stderr)
    sys.exit(code)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
# On Linux ru_maxrss is in KiB.
print(usage.ru_maxrss, f"{seconds:.3f}", f"{usage.ru_utime + usage.ru_stime:.2f}")
EOF
        echo "$(cat "$work/py.txt") $(with_server_cpu "$before" "$(server_cpu_after)")"
    }
fi

# bench_figure CASE METRIC VALUE: records one figure of this run. A metric
# whose name ends in `_per_s` is better higher; every other one (seconds,
# peak_mb, cpu_s, vs_floor, p99_ms...) is better lower.
bench_figure() {
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$work/figures.tsv"
}

# bench_write_figures NAME: writes the figures recorded so far to
# $BENCH_FIGURES/NAME.json (default: target/bench-figures/), with the
# commit, the date and the core count, for benches/compare.py to compare
# with a baseline.
bench_write_figures() {
    local dir="${BENCH_FIGURES:-${target_dir:-target}/bench-figures}"
    mkdir -p "$dir"
    [[ -f "$work/figures.tsv" ]] || : >"$work/figures.tsv"
    python3 - "$1" "$work/figures.tsv" "$dir/$1.json" <<'PY'
import datetime, json, os, subprocess, sys

name, tsv, out = sys.argv[1:4]
figures = []
with open(tsv) as lines:
    for line in lines:
        case, metric, value = line.rstrip("\n").split("\t")
        try:
            figures.append({"case": case, "metric": metric, "value": float(value)})
        except ValueError:
            pass  # "-": the case does not report this metric
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
with open(out, "w") as f:
    json.dump({
        "bench": name,
        "commit": commit or None,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "figures": figures,
    }, f, indent=1)
    f.write("\n")
PY
    echo "figures: $dir/$1.json" >&2
}

# median: the median of the numbers on stdin, one a line.
median() {
    sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# rows_of LOG: the row count a case reported, or "-" if it reports none.
rows_of() {
    local n
    n="$(grep -o 'rows=[0-9]*' "$1" | tail -n 1 | cut -d= -f2 || true)"
    [[ -n "$n" ]] || n="$(sed -n 's/^COPY \([0-9]*\).*/\1/p' "$1" | tail -n 1)"
    echo "${n:--}"
}

# bench_table_row NAME SECONDS RATIO KB ROWS OWN [CPU SERVER_CPU]: one line
# of the table (OWN, CPU and SERVER_CPU are seconds or "-").
bench_table_row() {
    local own="$6"
    [[ "$own" == "-" ]] || own="$(printf '%.3f' "$own")"
    printf '%-14s %9.3f %9s %10.1f %10s %9s %7s %10s\n' "$1" "$2" "$3" \
        "$(awk -v kb="$4" 'BEGIN { print kb / 1024 }')" "$5" "$own" "${7:--}" "${8:--}"
}

# bench_run_cases ROWS NAME...: runs each case RUNS times after one untimed
# warm-up run of the first (the floor); appends its table line to
# $results. Sets all_rows_ok=0 if a case reported other than ROWS rows.
# Each run starts without $work/results (where Parquet cases write).
bench_run_cases() {
    local expected="$1"
    shift
    local floor="" name run kb secs cpu scpu rows inner ratio
    results=()
    all_rows_ok=1
    echo "warm-up read..." >&2
    case_cmd "$1"
    measure "$work/warm.log" "${cmd[@]}" >/dev/null
    for name in "$@"; do
        case_cmd "$name"
        : >"$work/secs"
        : >"$work/kbs"
        : >"$work/inner"
        : >"$work/cpus"
        : >"$work/scpus"
        rows="-"
        for run in $(seq 1 "$RUNS"); do
            rm -rf "$work/results"
            measure "$work/$name.log" "${cmd[@]}" >"$work/m.txt"
            read -r kb secs cpu scpu <"$work/m.txt"
            rows="$(rows_of "$work/$name.log")"
            inner="$(grep -o 'seconds=[0-9.]*' "$work/$name.log" | tail -n 1 | cut -d= -f2 || true)"
            echo "  $name run $run: ${secs}s, $((kb / 1024)) MB, rows $rows${inner:+, own ${inner}s}, cpu ${cpu}s, server cpu ${scpu}s" >&2
            echo "$secs" >>"$work/secs"
            echo "$kb" >>"$work/kbs"
            echo "$cpu" >>"$work/cpus"
            if [[ "$scpu" != "-" ]]; then
                echo "$scpu" >>"$work/scpus"
            fi
            if [[ -n "$inner" ]]; then
                echo "$inner" >>"$work/inner"
            fi
            if [[ "$rows" != "-" && "$rows" != "$expected" ]]; then
                echo "  $name read $rows rows, expected $expected" >&2
                all_rows_ok=0
            fi
        done
        rm -rf "$work/results"
        secs="$(median <"$work/secs")"
        kb="$(median <"$work/kbs")"
        inner="-"
        if [[ -s "$work/inner" ]]; then
            inner="$(median <"$work/inner")"
        fi
        cpu="$(median <"$work/cpus")"
        scpu="-"
        if [[ -s "$work/scpus" ]]; then
            scpu="$(median <"$work/scpus")"
        fi
        if [[ -z "$floor" ]]; then
            floor="$secs"
        fi
        ratio="$(awk -v a="$secs" -v b="$floor" 'BEGIN { printf "%.2fx", a / b }')"
        bench_figure "$name" seconds "$secs"
        bench_figure "$name" vs_floor "${ratio%x}"
        bench_figure "$name" peak_mb "$(awk -v kb="$kb" 'BEGIN { print kb / 1024 }')"
        bench_figure "$name" cpu_s "$cpu"
        results+=("$(bench_table_row "$name" "$secs" "$ratio" "$kb" "$rows" "$inner" "$cpu" "$scpu")")
    done
}

# bench_print_table TITLE FLOOR [EXTRA_LINE...]: prints the table of
# $results (and any extra lines); exits 1 if a case read too few rows.
bench_print_table() {
    echo
    echo "$1, median of $RUNS runs, $(nproc) cores"
    printf '%-14s %9s %9s %10s %10s %9s %7s %10s\n' tool seconds "vs $2" "peak MB" rows "own s" \
        "cpu s" "server cpu"
    printf '%s\n' "${results[@]}"
    shift 2
    if [[ $# -gt 0 ]]; then
        printf '%s\n' "$@"
    fi
    if [[ "$all_rows_ok" -ne 1 ]]; then
        echo "some tool did not read all the rows" >&2
        exit 1
    fi
}
