#!/usr/bin/env bash
# Reading a large PostgreSQL table into Arrow: Loupe against the physical
# floor (psql's COPY BINARY to /dev/null), ConnectorX and ADBC, on one
# machine in one run. Also times catalog introspection of 10,000 tables.
#
#   psql-copy     psql -c "\copy (SELECT * FROM bench.mixed) TO '/dev/null' WITH (FORMAT binary)"
#   connectorx    connectorx.read_sql(url, sql, return_type="arrow")
#   adbc          adbc_driver_postgresql.dbapi: execute + fetch_arrow_table()
#   loupe-arrow   source-bench URL SQL arrow        (COPY BINARY into Arrow)
#   loupe-rows    source-bench URL SQL arrow-rows   (transfer=rows: portal reads)
#   loupe-parquet source-bench URL SQL parquet DIR  (through ParquetResultStore)
#   loupe-schema  loupe schema --source URL --json  (catalog introspection)
#
# Usage: benches/postgres.sh [URL]
#        URL defaults to $LOUPE_TEST_POSTGRES_URL, e.g.
#        postgres://loupe:pw@127.0.0.1:5432/loupe_test?sslmode=disable
#        ROWS=500000 RUNS=5 benches/postgres.sh   (smaller table, more runs)
#        SKIP_CATALOG=1 benches/postgres.sh        (no 10,000-table catalog)
#        CATALOG_TABLES=500 benches/postgres.sh    (a smaller catalog)
#
# Creates (once) the table bench.mixed of ROWS rows (default 5,000,000) and
# the schema bench_catalog of CATALOG_TABLES tables (default 10,000) in that
# database, and leaves them there for the next run. The user needs CREATE
# on the database.
#
# Each case runs RUNS times (default 3) after one untimed warm-up read; the
# table shows the median wall time of the whole process (start-up, connect,
# read), its ratio to the psql floor, the median peak RSS of the process
# (/usr/bin/time -v, or getrusage in python3), the rows it read, and the
# median time the tool itself reports for the read alone (python: from
# before connecting to the Arrow table in hand; Loupe: from building the
# datasource to the last batch), the median CPU time of the process, and,
# when the server listens on this machine, the median CPU time of the
# server's processes meanwhile.
#
# Python packages go into a virtualenv at target/bench-venv (pip needs the
# network the first time). Loupe is built in release mode. The machinery
# shared with benches/mysql.sh is in benches/lib.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
URL="${1:-${LOUPE_TEST_POSTGRES_URL:-}}"
if [[ -z "$URL" ]]; then
    echo "usage: benches/postgres.sh URL (or set LOUPE_TEST_POSTGRES_URL)" >&2
    exit 2
fi
ROWS="${ROWS:-5000000}"
RUNS="${RUNS:-3}"
CATALOG_TABLES="${CATALOG_TABLES:-10000}"
SQL="SELECT * FROM bench.mixed"

# --- tools ------------------------------------------------------------------

# shellcheck source=benches/lib.sh
. benches/lib.sh

# Debian keeps one psql per installed version under /usr/lib/postgresql/N/bin;
# take the newest.
psql="${PSQL:-}"
if [[ -z "$psql" ]]; then
    psql="$(printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)"
    [[ -x "$psql" ]] || psql="$(command -v psql || true)"
fi
[[ -x "$psql" ]] || { echo "psql not found (install postgresql-client)" >&2; exit 1; }

echo "building (release)..." >&2
bench_build -p loupe --example source-bench -p loupe-cli --bin loupe
source_bench="$target_dir/release/examples/source-bench"
loupe="$target_dir/release/loupe"
for exe in "$source_bench" "$loupe"; do
    [[ -x "$exe" ]] || { echo "missing $exe" >&2; exit 1; }
done

bench_python "connectorx, pyarrow, adbc_driver_postgresql.dbapi" \
    connectorx pyarrow adbc-driver-postgresql adbc-driver-manager
bench_init loupe-pgbench
bench_server_pid "$URL"

# --- URLs -------------------------------------------------------------------
# libpq (psql, ADBC) and ConnectorX refuse Loupe's own options (transfer,
# pool_size, ...): keep only the user, password, host, port, database and
# sslmode. ConnectorX wants postgresql:// and is told to use the binary
# protocol.
urls="$("$python" - "$URL" <<'EOF'
import sys
from urllib.parse import urlsplit, urlunsplit, parse_qsl, urlencode
u = urlsplit(sys.argv[1])
q = [(k, v) for k, v in parse_qsl(u.query) if k == "sslmode"]
if not q:
    q = [("sslmode", "prefer")]
libpq = urlunsplit(("postgresql", u.netloc, u.path, urlencode(q), ""))
cx = urlunsplit(("postgresql", u.netloc, u.path, urlencode(q + [("cxprotocol", "binary")]), ""))
print(libpq)
print(cx)
EOF
)"
libpq_url="$(sed -n 1p <<<"$urls")"
cx_url="$(sed -n 2p <<<"$urls")"

sql() { # runs SQL read from stdin, quietly, stopping at the first error
    "$psql" "$libpq_url" -X -q -v ON_ERROR_STOP=1 "$@"
}

# --- data -------------------------------------------------------------------

# (A CASE around the count would not do: the missing table fails the parse.)
have=-1
if [[ -n "$(sql -At -c "SELECT to_regclass('bench.mixed')")" ]]; then
    have="$(sql -At -c "SELECT count(*) FROM bench.mixed")"
fi
if [[ "$have" != "$ROWS" ]]; then
    echo "creating bench.mixed with $ROWS rows (had: $have)..." >&2
    sql -v rows="$ROWS" <<'SQL'
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS bench;
DROP TABLE IF EXISTS bench.mixed;
CREATE TABLE bench.mixed (
    id     bigint NOT NULL,
    qty    int,
    price  float8,
    amount numeric(12,2),
    label  text,
    at     timestamptz,
    day    date,
    flag   bool,
    ref    uuid
);
-- Deterministic values from hashes of the id; labels of 10 to 30 chars.
INSERT INTO bench.mixed
SELECT id,
       ((hashint8(id) & 2147483647) % 1000)::int,
       (hashint8extended(id, 1) % 100000000)::float8 / 100,
       ((hashint8extended(id, 2) % 10000000000) / 100.0)::numeric(12,2),
       left(md5(id::text) || md5((id * 7)::text), 10 + ((hashint8extended(id, 3) & 9223372036854775807) % 21)::int),
       timestamptz '2020-01-01 00:00:00+00'
           + ((hashint8extended(id, 4) & 9223372036854775807) % 157680000) * interval '1 second',
       date '2020-01-01' + ((hashint8extended(id, 5) & 9223372036854775807) % 1826)::int,
       (hashint8extended(id, 6) & 1) = 1,
       md5(id::text)::uuid
FROM generate_series(1::bigint, :rows::bigint) AS id;
ANALYZE bench.mixed;
SQL
fi
size="$(sql -At -c "SELECT pg_size_pretty(pg_table_size('bench.mixed'))")"
echo "bench.mixed: $ROWS rows, $size" >&2

# --- reading ----------------------------------------------------------------

# What each case prints: a line with rows=N (and, when the tool times
# itself, seconds=S).
adbc_py='
import sys, time
import adbc_driver_postgresql.dbapi as dbapi
t = time.monotonic()
with dbapi.connect(sys.argv[1]) as conn:
    with conn.cursor() as cursor:
        cursor.execute(sys.argv[2])
        table = cursor.fetch_arrow_table()
s = time.monotonic() - t
print(f"rows={table.num_rows} seconds={s:.3f}")
'

case_cmd() { # NAME: sets the array cmd
    case "$1" in
        psql-copy) cmd=("$psql" "$libpq_url" -X -c "\\copy ($SQL) TO '/dev/null' WITH (FORMAT binary)") ;;
        connectorx) cmd=("$python" -c "$CONNECTORX_PY" "$cx_url" "$SQL") ;;
        adbc) cmd=("$python" -c "$adbc_py" "$libpq_url" "$SQL") ;;
        loupe-arrow) cmd=("$source_bench" "$URL" "$SQL" arrow) ;;
        loupe-rows) cmd=("$source_bench" "$URL" "$SQL" arrow-rows) ;;
        loupe-parquet) cmd=("$source_bench" "$URL" "$SQL" parquet "$work/results") ;;
        *) return 1 ;;
    esac
}

bench_run_cases "$ROWS" psql-copy connectorx adbc loupe-arrow loupe-rows loupe-parquet

# --- catalog ----------------------------------------------------------------

catalog_line=()
if [[ -z "${SKIP_CATALOG:-}" ]]; then
    have="$(sql -At -c "SELECT count(*) FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'bench_catalog' AND c.relkind = 'r'")"
    if [[ "$have" -lt "$CATALOG_TABLES" ]]; then
        echo "creating $CATALOG_TABLES tables in bench_catalog (had $have)..." >&2
        # One DO block, committing every 500 tables: a single transaction
        # creating 10,000 tables (each with a TOAST table and index) would
        # run out of lock slots with the default max_locks_per_transaction.
        sql -v tables="$CATALOG_TABLES" <<'SQL'
SET client_min_messages = warning;
CREATE SCHEMA IF NOT EXISTS bench_catalog;
SELECT set_config('bench.tables', :'tables', false) \g /dev/null
DO $$
DECLARE
    n int := current_setting('bench.tables')::int;
BEGIN
    FOR i IN 1..n LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS bench_catalog.t%s (id int, name text, at timestamptz)', i);
        IF i % 500 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
$$;
SQL
    fi
    relations="$(sql -At -c "SELECT count(*) FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
          AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'")"
    echo "loupe schema: $relations tables and views in the database..." >&2
    : >"$work/secs"
    : >"$work/kbs"
    for run in $(seq 1 "$RUNS"); do
        measure "$work/schema.json" "$loupe" schema --source "$URL" --json >"$work/m.txt"
        read -r kb secs _ <"$work/m.txt"
        tables="$(grep -c '"kind":' "$work/schema.json" || true)"
        echo "  loupe schema run $run: ${secs}s, $((kb / 1024)) MB, $tables tables" >&2
        echo "$secs" >>"$work/secs"
        echo "$kb" >>"$work/kbs"
    done
    catalog_line=("$(bench_table_row loupe-schema "$(median <"$work/secs")" - \
        "$(median <"$work/kbs")" "$tables tbl" -)")
fi

# --- report -----------------------------------------------------------------

bench_print_table "bench.mixed: $ROWS rows ($size)" psql "${catalog_line[@]}"
bench_write_figures postgres
