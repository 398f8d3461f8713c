# Starts the servers the tests need, owned by this test run: a PostgreSQL
# cluster and a MariaDB server in a temporary directory, listening on
# loopback only, with TLS on, an S3-protocol server for result stores, and
# an SMTP server and an HTTPS receiver for deliveries. Sourced by
# scripts/test; exports LOUPE_TEST_POSTGRES_URL, LOUPE_TEST_MYSQL_URL,
# LOUPE_TEST_CA, LOUPE_TEST_S3_*, LOUPE_TEST_SMTP_* and
# LOUPE_TEST_RECEIVER_*, and stops everything on exit.
#
# Datasources refuse a database role that can do more than read (see
# docs/security.md), so each server also has such roles, for the tests of
# that refusal, and a least-privilege reader:
# - PostgreSQL: LOUPE_TEST_POSTGRES_URL is `loupe`, owner of the scratch
#   database (an owner is not refused); LOUPE_TEST_POSTGRES_SUPERUSER_URL is
#   the superuser; the roles loupe_reader (SELECT only), loupe_signaler,
#   loupe_operator, loupe_replicator and loupe_sudoer share loupe's password.
#   The server preloads pg_stat_statements (Debian's postgresql ships it),
#   whose view in loupe_test counts the statements each test sent.
# - MariaDB: LOUPE_TEST_MYSQL_URL is loupe_reader (SELECT only: a user with
#   write grants is refused), LOUPE_TEST_MYSQL_OWNER_URL is `loupe` (all
#   rights on loupe_%, to write fixtures), LOUPE_TEST_MYSQL_PRIVILEGED_URL a
#   user with FILE, SUPER and other administrative privileges; the user
#   loupe_role_user is granted a role that holds FILE.
#
# Installs Debian's packages when they are missing and this runs as root.

loupe_db_dir=""
# Where this file and the test servers' scripts are, wherever it is
# sourced from.
loupe_scripts_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

loupe_db_log() {
    echo "scripts/test: $*" >&2
}

loupe_pg_bin() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -x "$bin/initdb" ]] && echo "$bin"
}

loupe_install() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        loupe_db_log "missing $*; install with: sudo apt-get install -y $*"
        return 1
    fi
    loupe_db_log "installing $* from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# A free TCP port on 127.0.0.1.
loupe_free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# Runs a command as the owner of the database files (postgres when root).
loupe_as_db_owner() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

loupe_stop_databases() {
    local bin server
    for server in s3 smtp receiver; do
        if [[ -n "$loupe_db_dir" && -f "$loupe_db_dir/$server/server.pid" ]]; then
            kill "$(cat "$loupe_db_dir/$server/server.pid")" 2>/dev/null || true
        fi
    done
    if [[ -n "$loupe_db_dir" && -f "$loupe_db_dir/mariadb/mariadbd.pid" ]]; then
        kill "$(cat "$loupe_db_dir/mariadb/mariadbd.pid")" 2>/dev/null || true
        for _ in $(seq 1 50); do
            [[ -f "$loupe_db_dir/mariadb/mariadbd.pid" ]] || break
            sleep 0.1
        done
    fi
    bin="$(loupe_pg_bin || true)"
    if [[ -n "$loupe_db_dir" && -d "$loupe_db_dir/pg" && -n "$bin" ]]; then
        loupe_as_db_owner "$bin/pg_ctl" -D "$loupe_db_dir/pg" -m immediate stop >/dev/null 2>&1 || true
    fi
    [[ -n "$loupe_db_dir" ]] && rm -rf "$loupe_db_dir"
}

# A certificate authority and a server certificate for "localhost" and
# 127.0.0.1, so tests can check every sslmode.
loupe_make_certificates() {
    local dir="$1"
    command -v openssl >/dev/null || loupe_install openssl
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Loupe test CA" \
        -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/ext.cnf" -out "$dir/server.crt" 2>/dev/null
    chmod 600 "$dir/server.key"
}

# A certificate for <name> issued by the test CA of loupe_make_certificates,
# as <dir>/<base>.crt and <dir>/<base>.key.
loupe_issue_certificate() {
    local dir="$1" base="$2" name="$3"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
        -keyout "$dir/$base.key" -out "$dir/$base.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$name" >"$dir/$base.cnf"
    openssl x509 -req -in "$dir/$base.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
        -CAcreateserial -days 2 -extfile "$dir/$base.cnf" -out "$dir/$base.crt" 2>/dev/null
    chmod 600 "$dir/$base.key"
}

# Waits up to 20 s for a server started in the background (pid file
# <dir>/server.pid) to write <dir>/ready.
loupe_wait_ready() {
    local dir="$1" what="$2"
    for _ in $(seq 1 200); do
        [[ -s "$dir/ready" ]] && return 0
        if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    loupe_db_log "$what did not start:"
    cat "$dir/server.log" >&2
    return 1
}

# Milliseconds since the epoch, to say how long a server took to start.
loupe_now_ms() {
    echo $(( $(date +%s%N) / 1000000 ))
}

loupe_start_postgres() {
    local bin port
    bin="$(loupe_pg_bin)" || { loupe_install postgresql && bin="$(loupe_pg_bin)"; } || return 1
    port="$(loupe_free_port)"
    local data="$loupe_db_dir/pg"
    echo "postgres-superuser-pw" >"$loupe_db_dir/pgpass"
    loupe_make_certificates "$loupe_db_dir"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R postgres "$loupe_db_dir"
    fi
    loupe_as_db_owner "$bin/initdb" -D "$data" -U postgres --pwfile="$loupe_db_dir/pgpass" \
        --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$loupe_db_dir/initdb.log" 2>&1 || {
        cat "$loupe_db_dir/initdb.log" >&2
        return 1
    }
    # A user that may only connect over TLS, to test refusals of plain TCP.
    { echo "hostnossl all loupe_tls 127.0.0.1/32 reject"; cat "$data/pg_hba.conf"; } >"$data/pg_hba.new"
    mv "$data/pg_hba.new" "$data/pg_hba.conf"
    cp "$loupe_db_dir/server.crt" "$loupe_db_dir/server.key" "$data/"
    [[ $(id -u) -eq 0 ]] && chown postgres "$data/pg_hba.conf" "$data/server.crt" "$data/server.key"
    loupe_as_db_owner "$bin/pg_ctl" -D "$data" -l "$loupe_db_dir/postgres.log" -w -t 60 \
        -o "-p $port -k $loupe_db_dir -c listen_addresses=127.0.0.1 -c ssl=on -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 -c shared_preload_libraries=pg_stat_statements" \
        start >/dev/null || {
        cat "$loupe_db_dir/postgres.log" >&2
        return 1
    }
    PGPASSWORD="postgres-superuser-pw" "$bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres <<'SQL' >/dev/null
CREATE ROLE loupe LOGIN PASSWORD 'loupe-test-pw';
CREATE ROLE loupe_tls LOGIN PASSWORD 'loupe-test-pw';
CREATE DATABASE loupe_test OWNER loupe;
SQL
    PGPASSWORD="postgres-superuser-pw" "$bin/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d loupe_test <<'SQL' >/dev/null
CREATE EXTENSION IF NOT EXISTS citext;
-- What PostgreSQL itself ran, for the tests that count the statements
-- Loupe sends (the public link load test).
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
-- The least-privilege role of docs/security.md: it reads what loupe creates.
CREATE ROLE loupe_reader LOGIN PASSWORD 'loupe-test-pw';
GRANT CONNECT ON DATABASE loupe_test TO loupe_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE loupe GRANT USAGE ON SCHEMAS TO loupe_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE loupe GRANT SELECT ON TABLES TO loupe_reader;
-- Roles a datasource must refuse: one power each, held directly, through
-- another role, as attributes, or as a member of a superuser.
CREATE ROLE loupe_signaler LOGIN PASSWORD 'loupe-test-pw' IN ROLE pg_signal_backend;
CREATE ROLE loupe_ops NOLOGIN IN ROLE pg_read_server_files, pg_write_server_files, pg_execute_server_program;
CREATE ROLE loupe_operator LOGIN PASSWORD 'loupe-test-pw' IN ROLE loupe_ops;
CREATE ROLE loupe_replicator LOGIN PASSWORD 'loupe-test-pw' REPLICATION BYPASSRLS;
CREATE ROLE loupe_sudoer LOGIN PASSWORD 'loupe-test-pw' IN ROLE postgres;
SQL
    export LOUPE_TEST_POSTGRES_URL="postgres://loupe:loupe-test-pw@127.0.0.1:$port/loupe_test?sslmode=disable"
    export LOUPE_TEST_POSTGRES_SUPERUSER_URL="postgres://postgres:postgres-superuser-pw@127.0.0.1:$port/loupe_test?sslmode=disable"
    export LOUPE_TEST_POSTGRES_CA="$loupe_db_dir/ca.crt"
    export LOUPE_TEST_CA="$loupe_db_dir/ca.crt"
    loupe_db_log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

loupe_start_mariadb() {
    command -v mariadbd >/dev/null || loupe_install mariadb-server || return 1
    local dir="$loupe_db_dir/mariadb" port user_opt=()
    port="$(loupe_free_port)"
    mkdir -p "$dir/data"
    cp "$loupe_db_dir/ca.crt" "$loupe_db_dir/server.crt" "$loupe_db_dir/server.key" "$dir/"
    if [[ $(id -u) -eq 0 ]]; then
        chown -R mysql "$dir"
        user_opt=(--user=mysql)
    fi
    mariadb-install-db --no-defaults --datadir="$dir/data" "${user_opt[@]}" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || {
        cat "$dir/install.log" >&2
        return 1
    }
    mariadbd --no-defaults --datadir="$dir/data" "${user_opt[@]}" --port="$port" \
        --bind-address=127.0.0.1 --socket="$dir/mariadbd.sock" --pid-file="$dir/mariadbd.pid" \
        --log-error="$dir/error.log" --skip-name-resolve --innodb-flush-log-at-trx-commit=0 \
        --ssl-ca="$dir/ca.crt" --ssl-cert="$dir/server.crt" --ssl-key="$dir/server.key" \
        --max-connections=300 >/dev/null 2>&1 &
    for _ in $(seq 1 100); do
        mariadb-admin --no-defaults --socket="$dir/mariadbd.sock" -uroot ping >/dev/null 2>&1 && break
        sleep 0.2
    done
    mariadb --no-defaults --socket="$dir/mariadbd.sock" -uroot <<'SQL' || { cat "$dir/error.log" >&2; return 1; }
CREATE DATABASE loupe_test CHARACTER SET utf8mb4;
CREATE USER 'loupe'@'127.0.0.1' IDENTIFIED BY 'loupe-test-pw';
GRANT ALL ON `loupe_%`.* TO 'loupe'@'127.0.0.1';
CREATE USER 'loupe_tls'@'127.0.0.1' IDENTIFIED BY 'loupe-test-pw' REQUIRE SSL;
GRANT SELECT ON loupe_test.* TO 'loupe_tls'@'127.0.0.1';
-- The least-privilege user of docs/security.md.
CREATE USER 'loupe_reader'@'127.0.0.1' IDENTIFIED BY 'loupe-test-pw';
GRANT SELECT, SHOW VIEW ON loupe_test.* TO 'loupe_reader'@'127.0.0.1';
-- Users a datasource must refuse: administrative privileges held directly,
-- and FILE through a role of a role that is not even enabled.
CREATE USER 'loupe_admin'@'127.0.0.1' IDENTIFIED BY 'loupe-test-pw';
GRANT SELECT ON loupe_test.* TO 'loupe_admin'@'127.0.0.1';
GRANT SUPER, FILE, PROCESS, SHUTDOWN, RELOAD, CONNECTION ADMIN, BINLOG ADMIN ON *.* TO 'loupe_admin'@'127.0.0.1';
CREATE ROLE loupe_file_role;
GRANT FILE ON *.* TO loupe_file_role;
CREATE ROLE loupe_outer_role;
GRANT loupe_file_role TO loupe_outer_role;
CREATE USER 'loupe_role_user'@'127.0.0.1' IDENTIFIED BY 'loupe-test-pw';
GRANT SELECT ON loupe_test.* TO 'loupe_role_user'@'127.0.0.1';
GRANT loupe_outer_role TO 'loupe_role_user'@'127.0.0.1';
SQL
    export LOUPE_TEST_MYSQL_URL="mysql://loupe_reader:loupe-test-pw@127.0.0.1:$port/loupe_test?ssl_mode=disabled"
    export LOUPE_TEST_MYSQL_OWNER_URL="mysql://loupe:loupe-test-pw@127.0.0.1:$port/loupe_test?ssl_mode=disabled"
    export LOUPE_TEST_MYSQL_PRIVILEGED_URL="mysql://loupe_admin:loupe-test-pw@127.0.0.1:$port/loupe_test?ssl_mode=disabled"
    loupe_db_log "MariaDB $(mariadbd --version | awk '{print $3}') on 127.0.0.1:$port"
}

# The S3-protocol server: moto's (PyPI), from a virtualenv under target/
# made on first use. Chosen over s3s-fs (crates.io) because it installs
# faster and more reliably on a fresh Debian machine with python3 and
# cargo: `pip install 'moto[server]'` took 45 s there, `cargo install
# s3s-fs` 5 minutes on two cores, and s3s-fs's newest release needs a
# newer rustc than the workspace's. Moto keeps objects in memory and takes
# any credentials; exports LOUPE_TEST_S3_ENDPOINT, LOUPE_TEST_S3_BUCKET
# (created), LOUPE_TEST_S3_REGION, LOUPE_TEST_S3_ACCESS_KEY_ID and
# LOUPE_TEST_S3_SECRET_ACCESS_KEY.
loupe_moto_version="5.2.5"

loupe_start_s3() {
    local venv="${CARGO_TARGET_DIR:-target}/s3-server/venv" dir="$loupe_db_dir/s3" port
    if [[ ! -f "$venv/.moto-$loupe_moto_version" ]]; then
        command -v python3 >/dev/null || loupe_install python3 || return 1
        rm -rf "$venv"
        if ! python3 -m venv "$venv" >/dev/null 2>&1; then
            # Debian's python3 makes virtualenvs with python3-venv only.
            rm -rf "$venv"
            loupe_install python3-venv && python3 -m venv "$venv" || return 1
        fi
        loupe_db_log "installing moto $loupe_moto_version (the S3 server of the tests) into $venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$loupe_moto_version" || return 1
        touch "$venv/.moto-$loupe_moto_version"
    fi
    mkdir -p "$dir"
    port="$(loupe_free_port)"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/server.pid"
    export LOUPE_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export LOUPE_TEST_S3_BUCKET="loupe-test"
    export LOUPE_TEST_S3_REGION="us-east-1"
    export LOUPE_TEST_S3_ACCESS_KEY_ID="loupe-test-key"
    export LOUPE_TEST_S3_SECRET_ACCESS_KEY="loupe-test-secret"
    # Waits for the server while creating the bucket.
    "$venv/bin/python" - <<'PY' || { cat "$dir/server.log" >&2; return 1; }
import os, time
import boto3
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["LOUPE_TEST_S3_ENDPOINT"],
    region_name=os.environ["LOUPE_TEST_S3_REGION"],
    aws_access_key_id=os.environ["LOUPE_TEST_S3_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["LOUPE_TEST_S3_SECRET_ACCESS_KEY"],
)
deadline = time.time() + 60
while True:
    try:
        s3.create_bucket(Bucket=os.environ["LOUPE_TEST_S3_BUCKET"])
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(0.2)
PY
    loupe_db_log "S3 (moto $loupe_moto_version) on 127.0.0.1:$port"
}

# The python3 that has aiosmtpd: Debian's package installs it for
# /usr/bin/python3, which may not be the first python3 on the PATH.
loupe_aiosmtpd_python() {
    local python
    for python in python3 /usr/bin/python3; do
        if command -v "$python" >/dev/null && "$python" -c 'import aiosmtpd' 2>/dev/null; then
            command -v "$python"
            return 0
        fi
    done
    return 1
}

# The SMTP server of the delivery tests: scripts/smtp_server.py on
# aiosmtpd (Debian's python3-aiosmtpd), with a STARTTLS port (STARTTLS,
# then AUTH required), an implicit-TLS port (AUTH required), a plain port
# (neither) and a STARTTLS port whose certificate is for another name,
# all with certificates from the test CA. Accepted messages become .eml
# files in LOUPE_TEST_SMTP_MAILDIR; recipients tempfail@ and permfail@
# get 451 and 550. Exports LOUPE_TEST_SMTP_STARTTLS, _IMPLICIT, _PLAIN and
# _WRONG_NAME (localhost:port), _USER, _PASSWORD, _MAILDIR; the CA is
# LOUPE_TEST_CA.
loupe_start_smtp() {
    local python dir="$loupe_db_dir/smtp" started
    started="$(loupe_now_ms)"
    python="$(loupe_aiosmtpd_python)" || {
        loupe_install python3-aiosmtpd && python="$(loupe_aiosmtpd_python)"
    } || return 1
    [[ -f "$loupe_db_dir/ca.key" ]] || loupe_make_certificates "$loupe_db_dir"
    mkdir -p "$dir/maildir"
    cp "$loupe_db_dir/server.crt" "$loupe_db_dir/server.key" "$loupe_db_dir/ca.crt" "$loupe_db_dir/ca.key" "$dir/"
    loupe_issue_certificate "$dir" wrong-name mail.wrong-name.invalid
    "$python" "$loupe_scripts_dir/smtp_server.py" --cert "$dir/server.crt" --key "$dir/server.key" \
        --wrong-cert "$dir/wrong-name.crt" --wrong-key "$dir/wrong-name.key" \
        --maildir "$dir/maildir" --user loupe-mailer --password loupe-smtp-test-pw \
        --ready "$dir/ready" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/server.pid"
    loupe_wait_ready "$dir" "the SMTP server" || return 1
    local starttls implicit plain wrong_name
    starttls="$(sed -n 's/^starttls=//p' "$dir/ready")"
    implicit="$(sed -n 's/^implicit=//p' "$dir/ready")"
    plain="$(sed -n 's/^plain=//p' "$dir/ready")"
    wrong_name="$(sed -n 's/^wrong_name=//p' "$dir/ready")"
    export LOUPE_TEST_SMTP_STARTTLS="localhost:$starttls"
    export LOUPE_TEST_SMTP_IMPLICIT="localhost:$implicit"
    export LOUPE_TEST_SMTP_PLAIN="localhost:$plain"
    export LOUPE_TEST_SMTP_WRONG_NAME="localhost:$wrong_name"
    export LOUPE_TEST_SMTP_USER="loupe-mailer"
    export LOUPE_TEST_SMTP_PASSWORD="loupe-smtp-test-pw"
    export LOUPE_TEST_SMTP_MAILDIR="$dir/maildir"
    export LOUPE_TEST_CA="$loupe_db_dir/ca.crt"
    loupe_db_log "SMTP (aiosmtpd $("$python" -c 'import aiosmtpd; print(aiosmtpd.__version__)')) on 127.0.0.1:$starttls (STARTTLS), :$implicit (TLS), :$plain (plain), :$wrong_name (wrong name), started in $(( $(loupe_now_ms) - started )) ms"
}

# The HTTPS receiver of the delivery tests: scripts/https_receiver.py
# (python3's http.server and ssl) with a certificate for localhost from
# the test CA. Every request becomes a JSON file in
# LOUPE_TEST_RECEIVER_DIR; /status/<code> and /flaky/<key> choose the
# answer. Exports LOUPE_TEST_RECEIVER_URL (https://localhost:port) and
# LOUPE_TEST_RECEIVER_DIR; the CA is LOUPE_TEST_CA.
loupe_start_receiver() {
    local dir="$loupe_db_dir/receiver" started port
    started="$(loupe_now_ms)"
    command -v python3 >/dev/null || loupe_install python3 || return 1
    [[ -f "$loupe_db_dir/ca.key" ]] || loupe_make_certificates "$loupe_db_dir"
    mkdir -p "$dir/requests"
    cp "$loupe_db_dir/server.crt" "$loupe_db_dir/server.key" "$dir/"
    python3 "$loupe_scripts_dir/https_receiver.py" --cert "$dir/server.crt" --key "$dir/server.key" \
        --dir "$dir/requests" --ready "$dir/ready" >"$dir/server.log" 2>&1 &
    echo $! >"$dir/server.pid"
    loupe_wait_ready "$dir" "the HTTPS receiver" || return 1
    port="$(sed -n 's/^port=//p' "$dir/ready")"
    export LOUPE_TEST_RECEIVER_URL="https://localhost:$port"
    export LOUPE_TEST_RECEIVER_DIR="$dir/requests"
    export LOUPE_TEST_CA="$loupe_db_dir/ca.crt"
    loupe_db_log "HTTPS receiver on 127.0.0.1:$port, started in $(( $(loupe_now_ms) - started )) ms"
}

loupe_start_databases() {
    loupe_db_dir="$(mktemp -d "${TMPDIR:-/tmp}/loupe-test-db.XXXXXX")"
    chmod 755 "$loupe_db_dir"
    trap loupe_stop_databases EXIT
    loupe_start_postgres
    loupe_start_mariadb
    loupe_start_s3
    loupe_start_smtp
    loupe_start_receiver
}
