#!/usr/bin/env bash
# Reading a large MySQL or MariaDB table into Arrow: Loupe against the
# `mysql` command-line client writing the result to /dev/null (the floor)
# and ConnectorX, on one machine in one run, one connection each.
#
#   mysql-client  mysql --quick --batch -e "SELECT * FROM loupe_bench.mixed" >/dev/null
#   connectorx    connectorx.read_sql(url, sql, return_type="arrow")
#   loupe-arrow   source-bench URL SQL arrow        (binary protocol into Arrow)
#   loupe-parquet source-bench URL SQL parquet DIR  (through ParquetResultStore)
#
# Usage: benches/mysql.sh [URL]
#        URL defaults to $LOUPE_TEST_MYSQL_OWNER_URL (or $LOUPE_TEST_MYSQL_URL), e.g.
#        mysql://loupe:pw@127.0.0.1:3306/loupe_test?ssl_mode=disabled
#        ROWS=500000 RUNS=5 benches/mysql.sh   (smaller table, more runs)
#
# Creates (once) the database loupe_bench if missing and in it the table
# mixed of ROWS rows (default 5,000,000), and leaves it there for the next
# run. The user needs CREATE on loupe_bench (or the database to exist and
# CREATE, INSERT, DROP in it).
#
# Each case runs RUNS times (default 3) after one untimed warm-up read; the
# table shows the median wall time of the whole process (start-up, connect,
# read), its ratio to the mysql client, the median peak RSS of the process
# (/usr/bin/time -v, or getrusage in python3), the rows it read (the client
# reports none), and the median time the tool itself reports for the read
# alone (python: from before connecting to the Arrow table in hand; Loupe:
# from building the datasource to the last batch), the median CPU time of the
# process (user and system), and, when the server listens on this machine,
# the median CPU time the server spent meanwhile: when client and server
# share the cores, that tells whether the client or the server sets the pace.
#
# Python packages go into a virtualenv at target/bench-venv (pip needs the
# network the first time). Loupe is built in release mode. The machinery
# shared with benches/postgres.sh is in benches/lib.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
URL="${1:-${LOUPE_TEST_MYSQL_OWNER_URL:-${LOUPE_TEST_MYSQL_URL:-}}}"
if [[ -z "$URL" ]]; then
    echo "usage: benches/mysql.sh URL (or set LOUPE_TEST_MYSQL_URL)" >&2
    exit 2
fi
# The bench user creates the table, so it has write grants, which Loupe
# refuses by default (docs/security.md); reading is what is measured.
case "$URL" in
    *\?*) loupe_url="$URL&allow_privileged_role=true" ;;
    *) loupe_url="$URL?allow_privileged_role=true" ;;
esac
ROWS="${ROWS:-5000000}"
RUNS="${RUNS:-3}"
DB=loupe_bench
SQL="SELECT * FROM $DB.mixed"

# --- tools ------------------------------------------------------------------

# shellcheck source=benches/lib.sh
. benches/lib.sh

mysql="${MYSQL:-$(command -v mysql || command -v mariadb || true)}"
[[ -x "$mysql" ]] || {
    echo "mysql not found (install mariadb-client or mysql-client)" >&2
    exit 1
}

echo "building (release)..." >&2
bench_build -p loupe --example source-bench
source_bench="$target_dir/release/examples/source-bench"
[[ -x "$source_bench" ]] || { echo "missing $source_bench" >&2; exit 1; }

bench_python "connectorx, pyarrow" connectorx pyarrow
bench_init loupe-mysqlbench
bench_server_pid "$URL"

# --- URLs -------------------------------------------------------------------
# The mysql client gets an option file (the password stays off the command
# line), with TLS set from Loupe's ssl_mode and ssl_ca in the flavour of
# the client: MariaDB's --ssl/--skip-ssl or MySQL's --ssl-mode.
# ConnectorX refuses Loupe's own options: it gets the user, password, host,
# port and database, and is told to use the binary protocol, as Loupe does.
if "$mysql" --version | grep -q MariaDB; then
    flavour=mariadb
else
    flavour=mysql
fi
cx_url="$("$python" - "$URL" "$work/client.cnf" "$flavour" <<'EOF'
import os, sys
from urllib.parse import urlsplit, urlunsplit, parse_qsl, unquote
u = urlsplit(sys.argv[1])
options = dict(parse_qsl(u.query))
mode = options.get("ssl_mode", options.get("sslmode", "preferred"))
lines = ["[client]", f"host={u.hostname or 'localhost'}", f"port={u.port or 3306}"]
def quoted(value):
    # So that '#' starts no comment; \\ and \" are the option file's escapes.
    return '"' + unquote(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
if u.username:
    lines.append(f"user={quoted(u.username)}")
if u.password:
    lines.append(f"password={quoted(u.password)}")
if sys.argv[3] == "mariadb":
    # "preferred" is the client's own default.
    if mode == "disabled":
        lines.append("skip-ssl")
    elif mode != "preferred":
        lines.append("ssl")
    if mode.startswith("verify"):
        lines.append("ssl-verify-server-cert")
else:
    lines.append("ssl-mode=" + mode.upper().replace("-", "_"))
if "ssl_ca" in options:
    lines.append(f"ssl-ca={options['ssl_ca']}")
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    f.write("\n".join(lines) + "\n")
print(urlunsplit(("mysql", u.netloc, u.path, "cxprotocol=binary", "")))
EOF
)"

sql() { # the mysql client on the option file; stops at the first error
    "$mysql" --defaults-extra-file="$work/client.cnf" --batch --skip-column-names "$@"
}

# --- data -------------------------------------------------------------------

exists="$(sql -e "SELECT COUNT(*) FROM information_schema.tables
                  WHERE table_schema = '$DB' AND table_name = 'mixed'")"
have=-1
if [[ "$exists" -eq 1 ]]; then
    have="$(sql -e "SELECT COUNT(*) FROM $DB.mixed")"
fi
if [[ "$have" != "$ROWS" ]]; then
    echo "creating $DB.mixed with $ROWS rows (had: $have)..." >&2
    # Ids 1..ROWS by doubling a narrow table (log2(ROWS) INSERT ... SELECT,
    # the same in MySQL 8 and MariaDB), then one INSERT ... SELECT that
    # derives every column from the id: deterministic, labels of 10 to 30
    # characters, amounts of both signs, DATETIME(6) with microseconds.
    {
        cat <<SQL
CREATE DATABASE IF NOT EXISTS $DB CHARACTER SET utf8mb4;
USE $DB;
DROP TABLE IF EXISTS mixed, seq;
CREATE TABLE seq (id BIGINT NOT NULL PRIMARY KEY) ENGINE=InnoDB;
INSERT INTO seq VALUES (1);
SQL
        for ((n = 1; n < ROWS; n *= 2)); do
            echo "INSERT INTO seq SELECT id + $n FROM seq WHERE id + $n <= $ROWS;"
        done
        cat <<'SQL'
CREATE TABLE mixed (
    id     BIGINT NOT NULL PRIMARY KEY,
    qty    INT,
    price  DOUBLE,
    amount DECIMAL(12,2),
    label  VARCHAR(30),
    at     DATETIME(6),
    day    DATE,
    level  TINYINT,
    ref    CHAR(36)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO mixed
SELECT id,
       CRC32(CONCAT('q', id)) % 1000,
       (CRC32(CONCAT('p', id)) % 100000000) / 100e0,
       CAST((CAST(CRC32(CONCAT('a', id)) AS SIGNED) - 2147483648) / 100 AS DECIMAL(12,2)),
       LEFT(CONCAT(MD5(id), MD5(id * 7)), 10 + CRC32(CONCAT('l', id)) % 21),
       TIMESTAMP '2020-01-01 00:00:00'
           + INTERVAL CRC32(CONCAT('t', id)) % 157680000 SECOND
           + INTERVAL id % 1000000 MICROSECOND,
       DATE '2020-01-01' + INTERVAL CRC32(CONCAT('d', id)) % 1826 DAY,
       CAST(CRC32(CONCAT('f', id)) % 256 AS SIGNED) - 128,
       CONCAT_WS('-', SUBSTR(MD5(id), 1, 8), SUBSTR(MD5(id), 9, 4), SUBSTR(MD5(id), 13, 4),
                 SUBSTR(MD5(id), 17, 4), SUBSTR(MD5(id), 21, 12))
FROM seq;
DROP TABLE seq;
ANALYZE TABLE mixed;
SQL
    } | sql >/dev/null
fi
size="$(sql -e "SELECT CONCAT(ROUND((data_length + index_length) / 1048576), ' MB')
                FROM information_schema.tables
                WHERE table_schema = '$DB' AND table_name = 'mixed'")"
server="$(sql -e "SELECT VERSION()")"
echo "$DB.mixed: $ROWS rows, $size, server $server" >&2

# --- reading ----------------------------------------------------------------

# What each case prints: a line with rows=N (and, when the tool times
# itself, seconds=S); the mysql client prints nothing.

# --quick streams rows (mysql_use_result) instead of buffering the whole
# result; sh sends them to /dev/null and leaves stderr to the log.
# shellcheck disable=SC2016 # sh expands them
mysql_client_sh='exec "$0" --defaults-extra-file="$1" --quick --batch -e "$2" >/dev/null'

case_cmd() { # NAME: sets the array cmd
    case "$1" in
        mysql-client) cmd=(sh -c "$mysql_client_sh" "$mysql" "$work/client.cnf" "$SQL") ;;
        connectorx) cmd=("$python" -c "$CONNECTORX_PY" "$cx_url" "$SQL") ;;
        loupe-arrow) cmd=("$source_bench" "$loupe_url" "$SQL" arrow) ;;
        loupe-parquet) cmd=("$source_bench" "$loupe_url" "$SQL" parquet "$work/results") ;;
        *) return 1 ;;
    esac
}

bench_run_cases "$ROWS" mysql-client connectorx loupe-arrow loupe-parquet

# --- report -----------------------------------------------------------------

bench_print_table "$DB.mixed: $ROWS rows ($size), server $server" mysql
bench_write_figures mysql
