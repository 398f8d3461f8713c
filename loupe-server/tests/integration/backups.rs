//! Backups and restores through the real binary, while a server (this
//! process, on the same data directory) writes and deletes results:
//! the restored deployment serves every query, dashboard and stored result
//! of the snapshot, and nothing of what came after it. With PostgreSQL
//! metadata: `pg_dump -Fc` + `backup --results-only`, then `pg_restore` +
//! `restore`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::Harness;
use crate::process::{Ran, postgres_schema, postgres_url, run};

#[track_caller]
fn exits(ran: &Ran, code: i32, says: &str) {
    assert_eq!(ran.code, Some(code), "{}", ran.stderr);
    assert!(ran.stderr.contains(says), "{says:?} in {}", ran.stderr);
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The result ids in a results directory.
fn result_files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".parquet").map(str::to_owned)
        })
        .collect()
}

/// The results the runs of a metadata store point at.
async fn referenced(h: &Harness) -> BTreeSet<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT result_location FROM runs WHERE result_location IS NOT NULL")
            .fetch_all(h.services().store().pool())
            .await
            .unwrap();
    rows.into_iter().map(|(r,)| r).collect()
}

/// Asserts that every directory under `root` is 0700 and every file 0600.
fn assert_private(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{}", root.display());
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_private(&path);
        } else {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
}

/// Saves a query of the sample data with an integer parameter `n`.
async fn numbered_query(h: &Harness, name: &str) -> String {
    let ds = h.sample_datasource().await;
    let body = json!({
        "name": name,
        "datasource_id": ds,
        "sql": "select id, quantity from orders where quantity >= {{ n }} order by id",
        "parameters": [{ "name": "n", "type": "integer", "default": 1 }],
    });
    h.admin().post("/queries", body).await.expect(201).id()
}

/// Every item of a list, page by page.
async fn all(h: &Harness, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    loop {
        let page = h
            .admin()
            .get(&format!("{path}?limit=200&offset={}", items.len()))
            .await
            .expect(200);
        let got = page.body["items"].as_array().unwrap().clone();
        let done = got.len() < 200;
        items.extend(got);
        if done {
            return items;
        }
    }
}

/// Reads, as the admin, every query, dashboard and stored result page;
/// returns the number of results read.
async fn read_everything(h: &Harness) -> usize {
    for query in all(h, "/queries").await {
        h.admin()
            .get(&format!("/queries/{}", query["id"].as_str().unwrap()))
            .await
            .expect(200);
    }
    let dashboards = all(h, "/dashboards").await;
    assert!(!dashboards.is_empty());
    for dashboard in dashboards {
        h.admin()
            .get(&format!(
                "/dashboards/{}",
                dashboard["id"].as_str().unwrap()
            ))
            .await
            .expect(200);
    }
    let mut read = 0;
    for run in all(h, "/runs").await {
        if run["status"] != "succeeded" {
            continue;
        }
        let id = run["id"].as_str().unwrap();
        let page = h
            .admin()
            .get(&format!("/runs/{id}/results?limit=1000"))
            .await
            .expect(200);
        assert_eq!(page.body["total_rows"], run["rows"], "run {id}");
        read += 1;
    }
    read
}

/// Keeps queueing runs of `queries` (as the admin, through the services)
/// until `stop` is set.
fn keep_queueing(
    h: &Harness,
    queries: Vec<String>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    let services = h.services().clone();
    let admin = h.admin.clone();
    tokio::spawn(async move {
        let (actor, _) = services.sessions.authenticate(&admin, None).await.unwrap();
        let mut queued = 0u64;
        let mut n = 0i64;
        while !stop.load(Ordering::SeqCst) {
            for query in &queries {
                n += 1;
                let values = [("n".to_owned(), json!(n % 5 + 1))].into();
                if services
                    .runs
                    .enqueue_query(&actor, query, &values)
                    .await
                    .is_ok()
                {
                    queued += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        queued
    })
}

/// Waits until no run is queued or running.
async fn drained(h: &Harness) {
    let started = Instant::now();
    loop {
        let (busy,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
                .fetch_one(h.services().store().pool())
                .await
                .unwrap();
        if busy == 0 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{busy} runs left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Flips one byte inside the data of `entry` of the archive at `from`.
fn damage(from: &Path, to: &Path, entry: &str) {
    let mut bytes = std::fs::read(from).unwrap();
    let mut archive = tar::Archive::new(std::io::Cursor::new(bytes.clone()));
    let offset = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some(entry))
        .map(|e| e.raw_file_position())
        .unwrap();
    let at = usize::try_from(offset).unwrap() + 10;
    bytes[at] ^= 0xff;
    std::fs::write(to, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_taken_while_runs_are_written_restores_everything_of_its_snapshot_and_nothing_after()
 {
    let h = Harness::with(|c| {
        // Retention deletes results while the backup runs, too.
        c.deployment.retention.keep_per_query = 6;
        c.deployment.retention.every = Duration::from_millis(100);
    })
    .await;
    let data = h.state.deployment.config.data_dir.clone();
    let live = h.state.deployment.start();
    let orders = numbered_query(&h, "Orders").await;
    let more = numbered_query(&h, "More orders").await;
    let viz = h
        .admin()
        .post(
            "/visualizations",
            json!({ "query_id": orders, "type": "table", "name": "rows" }),
        )
        .await
        .expect(201)
        .id();
    h.admin()
        .post(
            "/dashboards",
            json!({ "name": "Ops", "widgets": [
                { "kind": "visualization", "visualization_id": viz, "x": 0, "y": 0, "w": 12, "h": 6 }
            ] }),
        )
        .await
        .expect(201);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_queueing(&h, vec![orders.clone(), more.clone()], stop.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("loupe.backup");
    let env = [("LOUPE_DATA_DIR", text(&data))];
    let args = ["backup", "--output", text(&archive)];
    let took = Instant::now();
    let backed = {
        let (args, env) = (args.map(str::to_owned), env.map(|(k, v)| (k, v.to_owned())));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            run(&args, &env)
        })
        .await
        .unwrap()
    };
    let took = took.elapsed();
    exits(&backed, 0, "backed up the metadata, ");
    eprintln!(
        "backup: {} bytes in {took:?}: {}",
        std::fs::metadata(&archive).unwrap().len(),
        backed.stderr.trim()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the archive holds the keys");
    }
    // Runs go on after the snapshot, then the server stops.
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    let queued = writer.await.unwrap();
    drained(&h).await;
    live.shutdown().await;
    let after = referenced(&h).await;
    assert!(queued > 20, "{queued} runs queued");

    // The archive: metadata, results, keys, and the manifest last.
    let mut names = Vec::new();
    let mut reader = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for entry in reader.entries().unwrap() {
        names.push(entry.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(names.first().map(String::as_str), Some("metadata/loupe.db"));
    assert_eq!(names.last().map(String::as_str), Some("manifest.json"));
    for key in ["keys/secret.key", "keys/signing.key"] {
        assert!(names.iter().any(|n| n == key), "{key} in {names:?}");
    }

    // Restore into a new directory.
    let restored = dir.path().join("restored");
    let renv = [("LOUPE_DATA_DIR", text(&restored))];
    exits(
        &run(&["restore", "--input", text(&archive)], &renv),
        0,
        "restored the metadata, ",
    );
    assert_private(&restored);
    exits(
        &run(&["restore", "--input", text(&archive)], &renv),
        2,
        "is not empty: restore into an empty or new directory",
    );

    // A server on it: sign in, read everything of the snapshot.
    let r = Harness::with(|c| c.deployment.data_dir = restored.clone()).await;
    let read = read_everything(&r).await;
    let snapshot = referenced(&r).await;
    let files = result_files(&restored.join("results"));
    assert_eq!(
        files, snapshot,
        "the restored results are exactly those the snapshot's runs point at"
    );
    assert_eq!(read, snapshot.len());
    assert!(
        !snapshot.is_empty(),
        "results were stored before the backup"
    );
    let later: Vec<&String> = after.difference(&snapshot).collect();
    assert!(
        !later.is_empty(),
        "results were written after the snapshot, and none of them is restored"
    );
    // The secret key came back: the sample datasource still opens.
    let ds = r.sample_datasource().await;
    r.admin()
        .post_empty(&format!("/datasources/{ds}/test"))
        .await
        .expect(204);

    // A damaged archive is refused, naming the file, and leaves nothing.
    let result = names.iter().find(|n| n.starts_with("results/")).unwrap();
    let damaged = dir.path().join("damaged.backup");
    damage(&archive, &damaged, result);
    let elsewhere = dir.path().join("elsewhere");
    exits(
        &run(
            &["restore", "--input", text(&damaged)],
            &[("LOUPE_DATA_DIR", text(&elsewhere))],
        ),
        1,
        &format!("{result} does not match its SHA-256 checksum in the manifest"),
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

/// `pg_dump`, `pg_restore`: on the PATH or where Debian's postgresql
/// package puts them (as `scripts/databases.sh` finds them).
fn pg_tool(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    debian.sort();
    debian
        .into_iter()
        .rev()
        .chain(on_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install Debian's postgresql package"))
}

fn tool(name: &str, args: &[&str]) {
    let output = std::process::Command::new(pg_tool(name))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_pg_dump_and_a_results_only_backup_restore_with_pg_restore_and_restore() {
    let Some(base) = postgres_url() else { return };
    let (schema, url) = postgres_schema(&base).await;
    let with_pg =
        |url: String| move |c: &mut loupe_server::Config| c.deployment.metadata_url = Some(url);
    let h = Harness::with(with_pg(url.clone())).await;
    let data = h.state.deployment.config.data_dir.clone();
    let runner = h.runner();
    let kept = numbered_query(&h, "Kept").await;
    let dropped = numbered_query(&h, "Deleted after the dump").await;
    let viz = h
        .admin()
        .post(
            "/visualizations",
            json!({ "query_id": kept, "type": "table", "name": "rows" }),
        )
        .await
        .expect(201)
        .id();
    h.admin()
        .post(
            "/dashboards",
            json!({ "name": "Ops", "widgets": [
                { "kind": "visualization", "visualization_id": viz, "x": 0, "y": 0, "w": 12, "h": 6 }
            ] }),
        )
        .await
        .expect(201);
    for (query, n) in [(&kept, 1), (&kept, 2), (&dropped, 1), (&dropped, 3)] {
        let run = h
            .admin()
            .post(
                &format!("/queries/{query}/runs"),
                json!({ "parameters": { "n": n } }),
            )
            .await
            .expect(202);
        let id = run.body["run"]["id"].as_str().unwrap().to_owned();
        assert_eq!(h.wait_run(&h.admin, &id).await["status"], "succeeded");
    }

    // 1. The metadata, with pg_dump.
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("metadata.dump");
    tool(
        "pg_dump",
        &[
            "-Fc",
            "--schema",
            &schema,
            "--file",
            text(&dump),
            "--dbname",
            &base,
        ],
    );
    // Between the two: a query and its results are deleted, a result is added.
    h.admin()
        .delete(&format!("/queries/{dropped}"))
        .await
        .expect(204);
    let late = h
        .admin()
        .post(
            &format!("/queries/{kept}/runs"),
            json!({ "parameters": { "n": 4 } }),
        )
        .await
        .expect(202);
    let late = late.body["run"]["id"].as_str().unwrap().to_owned();
    h.wait_run(&h.admin, &late).await;

    // 2. The results and keys.
    let archive = dir.path().join("results.backup");
    let env = [
        ("LOUPE_DATA_DIR", text(&data)),
        ("LOUPE_METADATA_URL", url.as_str()),
    ];
    exits(
        &run(&["backup", "--output", text(&archive)], &env),
        2,
        "back it up with `pg_dump -Fc`",
    );
    exits(
        &run(
            &["backup", "--results-only", "--output", text(&archive)],
            &env,
        ),
        0,
        "backed up 3 results and 2 key files",
    );
    runner.shutdown().await;
    h.services().store().close().await;

    // Disaster: the metadata is gone. pg_restore, then restore.
    let admin = loupe_services::meta::MetadataStore::connect(&base)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(admin.pool())
        .await
        .unwrap();
    admin.close().await;
    let restored = dir.path().join("restored");
    let renv = [
        ("LOUPE_DATA_DIR", text(&restored)),
        ("LOUPE_METADATA_URL", url.as_str()),
    ];
    exits(
        &run(&["restore", "--input", text(&archive)], &renv),
        2,
        "restore the dump into it with pg_restore first",
    );
    tool("pg_restore", &["--dbname", &base, text(&dump)]);
    let done = run(&["restore", "--input", text(&archive)], &renv);
    exits(&done, 0, "restored 2 results and 2 key files");
    assert!(
        done.stderr
            .contains("dropped 2 runs of the dump whose results were deleted after it was taken"),
        "{}",
        done.stderr
    );
    assert_private(&restored);

    let r = Harness::with(move |c| {
        c.deployment.metadata_url = Some(url);
        c.deployment.data_dir = restored.clone();
    })
    .await;
    assert_eq!(read_everything(&r).await, 2);
    let snapshot = referenced(&r).await;
    assert_eq!(
        result_files(&r.state.deployment.config.results_dir()),
        snapshot
    );
    assert!(
        !snapshot.contains(&late),
        "the result after the dump is left out"
    );
    // The query deleted after the dump is back (it is in the dump), without
    // the runs whose results went with it.
    r.admin()
        .get(&format!("/queries/{dropped}"))
        .await
        .expect(200);
    let (runs,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs WHERE query_id = $1")
        .bind(dropped.clone())
        .fetch_one(r.services().store().pool())
        .await
        .unwrap();
    assert_eq!(runs, 0);
}
