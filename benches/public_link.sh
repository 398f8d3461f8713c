#!/usr/bin/env bash
# A public dashboard link under load, in release mode: the release
# loupe-server on loopback, a dashboard of two widgets over a PostgreSQL
# table, shared by a public link, and REQUESTS GETs of the link at
# CONCURRENCY at once. Prints requests per second and the p50 and p99
# latencies, then checks PostgreSQL's own statement counts
# (pg_stat_statements) against the runs Loupe made: one per widget for the
# first fill, then at most one refresh per widget and REFRESH_EVERY (the
# link's results are stale after 1 s). It exits 1 if a request failed or
# PostgreSQL ran anything else.
#
# Usage: benches/public_link.sh
#        REQUESTS=20000 CONCURRENCY=64 benches/public_link.sh
#        REFRESH_EVERY=5s benches/public_link.sh
#
# PostgreSQL comes from $LOUPE_TEST_POSTGRES_URL (a user with CREATE) and
# $LOUPE_TEST_POSTGRES_SUPERUSER_URL (to read pg_stat_statements, which the
# server must preload): `source scripts/databases.sh; loupe_start_databases`
# starts one so. Metadata is SQLite in a temporary directory, as a single
# server's default. The load generator is python3's standard library (a
# thread per connection, keep-alive), on the same machine as the server.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PG="${LOUPE_TEST_POSTGRES_URL:-}"
PG_SUPER="${LOUPE_TEST_POSTGRES_SUPERUSER_URL:-}"
if [[ -z "$PG" || -z "$PG_SUPER" ]]; then
    echo "benches/public_link.sh: set LOUPE_TEST_POSTGRES_URL and LOUPE_TEST_POSTGRES_SUPERUSER_URL (source scripts/databases.sh; loupe_start_databases)" >&2
    exit 2
fi
REQUESTS="${REQUESTS:-2000}"
CONCURRENCY="${CONCURRENCY:-32}"
REFRESH_EVERY="${REFRESH_EVERY:-2s}"

# shellcheck source=benches/lib.sh
. benches/lib.sh

psql="${PSQL:-}"
if [[ -z "$psql" ]]; then
    psql="$(printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -V | tail -n 1)"
    [[ -x "$psql" ]] || psql="$(command -v psql || true)"
fi
[[ -x "$psql" ]] || { echo "psql not found (install postgresql-client)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 not found" >&2; exit 1; }

echo "building loupe-server (release)..." >&2
bench_build -p loupe-server --bin loupe-server
server="$target_dir/release/loupe-server"
[[ -x "$server" ]] || { echo "missing $server" >&2; exit 1; }
bench_init loupe-public-link

if ! PGOPTIONS="-c client_min_messages=warning" "$psql" -qAt "$PG_SUPER" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT count(*) FROM pg_stat_statements" >/dev/null; then
    echo "pg_stat_statements is not loaded: start PostgreSQL with -c shared_preload_libraries=pg_stat_statements (scripts/databases.sh does)" >&2
    exit 1
fi
table="public_link_$(date +%s)_$$"
"$psql" -q -v ON_ERROR_STOP=1 "$PG" <<SQL
CREATE TABLE $table (id int PRIMARY KEY, region text NOT NULL, amount numeric(10,2) NOT NULL);
INSERT INTO $table SELECT g, (ARRAY['EU','US','APAC'])[1 + g % 3], g * 0.5 FROM generate_series(1, 3000) g;
SQL
# shellcheck disable=SC2064 # $table and $work are fixed now
trap "\"$psql\" -q \"$PG\" -c 'DROP TABLE IF EXISTS $table' >/dev/null 2>&1 || true; rm -rf '$work'" EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
password="public-link bench password 1"
LOUPE_DATA_DIR="$work/data" LOUPE_LISTEN="127.0.0.1:$port" LOUPE_LOG_FILTER=warn \
    LOUPE_ADMIN_EMAIL=admin@bench.test LOUPE_ADMIN_PASSWORD="$password" \
    LOUPE_SAMPLE_DATASOURCE=false LOUPE_SHARING__REFRESH_EVERY="$REFRESH_EVERY" \
    "$server" >"$work/server.log" 2>&1 &
server_pid=$!
# shellcheck disable=SC2064
trap "kill $server_pid 2>/dev/null || true; \"$psql\" -q \"$PG\" -c 'DROP TABLE IF EXISTS $table' >/dev/null 2>&1 || true; rm -rf '$work'" EXIT

PSQL="$psql" PG="$PG" PG_SUPER="$PG_SUPER" TABLE="$table" BASE="http://127.0.0.1:$port" \
    PASSWORD="$password" REQUESTS="$REQUESTS" CONCURRENCY="$CONCURRENCY" \
    REFRESH_EVERY="$REFRESH_EVERY" SERVER_LOG="$work/server.log" FIGURES="$work/figures.tsv" python3 - <<'PY'
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

base = os.environ["BASE"]
table = os.environ["TABLE"]
requests = int(os.environ["REQUESTS"])
concurrency = int(os.environ["CONCURRENCY"])
every = os.environ["REFRESH_EVERY"]
every_s = float(re.fullmatch(r"(\d+(?:\.\d+)?)s", every).group(1)) if re.fullmatch(r"(\d+(?:\.\d+)?)s", every) else None


def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + "/api/v1" + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req) as reply:
            text = reply.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        sys.exit(f"benches/public_link.sh: {method} {path}: {e.code} {e.read().decode()}")


for _ in range(600):
    try:
        urllib.request.urlopen(base + "/health/live").read()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("benches/public_link.sh: the server did not start:\n" + open(os.environ["SERVER_LOG"]).read())

token = call("POST", "/auth/login", {"email": "admin@bench.test", "password": os.environ["PASSWORD"]})["access_token"]
pg = urllib.parse.urlsplit(os.environ["PG"])
ds = call("POST", "/datasources", {
    "name": "warehouse", "kind": "postgres",
    "options": {"host": pg.hostname, "port": pg.port or 5432, "user": pg.username,
                "password": urllib.parse.unquote(pg.password or ""), "database": pg.path.lstrip("/"),
                "sslmode": "disable"},
}, token)["id"]
sqls = {
    "sum(amount)": f"select region, sum(amount) as total from {table} group by region order by region",
    "count(*)": f"select count(*) as n from {table}",
}
queries, widgets = {}, []
for i, (marker, sql) in enumerate(sqls.items()):
    query = call("POST", "/queries", {"name": f"widget {i}", "datasource_id": ds, "sql": sql}, token)["id"]
    chart = call("POST", "/visualizations", {"query_id": query, "type": "table", "name": f"widget {i}"}, token)["id"]
    widgets.append({"kind": "visualization", "visualization_id": chart, "x": 12 * i, "y": 0, "w": 12, "h": 6})
    queries[marker] = query
dashboard = call("POST", "/dashboards", {"name": "Load", "widgets": widgets}, token)["id"]
link = call("POST", f"/dashboards/{dashboard}/share", {"max_age_seconds": 1}, token)["token"]
path = f"/api/v1/public/{link}"

latencies, failures, lock = [], [], threading.Lock()


def load(count):
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    mine = []
    for _ in range(count):
        sent = time.perf_counter()
        conn.request("GET", path)
        reply = conn.getresponse()
        body = reply.read()
        mine.append(time.perf_counter() - sent)
        if reply.status != 200:
            with lock:
                failures.append((reply.status, body[:300]))
    with lock:
        latencies.extend(mine)


# REQUESTS in all, spread over the connections.
threads = [
    threading.Thread(target=load, args=(requests // concurrency + (i < requests % concurrency),))
    for i in range(concurrency)
]
started = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
elapsed = time.perf_counter() - started
if failures:
    sys.exit(f"benches/public_link.sh: {len(failures)} requests failed, the first: {failures[0]}")

latencies.sort()
def quantile(q):
    return latencies[round((len(latencies) - 1) * q)] * 1000

with open(os.environ["FIGURES"], "a") as figures:
    case = f"c{concurrency}"
    figures.write(f"{case}\treq_per_s\t{len(latencies) / elapsed:.1f}\n")
    figures.write(f"{case}\tp50_ms\t{quantile(0.5):.2f}\n")
    figures.write(f"{case}\tp99_ms\t{quantile(0.99):.2f}\n")

print(f"public link: {len(latencies)} GETs at {concurrency} concurrency in {elapsed:.2f} s: "
      f"{len(latencies) / elapsed:.0f} req/s, p50 {quantile(0.5):.1f} ms, p99 {quantile(0.99):.1f} ms "
      f"(mean {statistics.mean(latencies) * 1000:.1f} ms)")

ok = True
for marker, query in queries.items():
    for _ in range(1200):
        runs = call("GET", f"/runs?query={query}&limit=200", token=token)["items"]
        if all(r["status"] not in ("queued", "running") for r in runs):
            break
        time.sleep(0.05)
    succeeded = sum(r["status"] == "succeeded" for r in runs)
    sql = (f"SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
           f"WHERE query LIKE '%{table}%' AND query LIKE '%{marker}%'")
    calls = int(subprocess.run([os.environ["PSQL"], "-qAt", os.environ["PG_SUPER"], "-c", sql],
                               check=True, capture_output=True, text=True).stdout.strip())
    allowed = 1 + int(-(-elapsed // every_s)) if every_s else None
    within = allowed is None or len(runs) <= allowed
    print(f"  widget {marker}: {len(runs)} runs by Loupe ({succeeded} succeeded), "
          f"{calls} executions in PostgreSQL" + (f", at most {allowed} allowed" if allowed else ""))
    ok = ok and calls == len(runs) == succeeded and within
if not ok:
    sys.exit("benches/public_link.sh: PostgreSQL ran statements beyond the runs Loupe made, or too many refreshes")
PY
bench_write_figures public-link
