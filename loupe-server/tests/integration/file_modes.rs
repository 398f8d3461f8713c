//! What Loupe writes in its data directory is its owner's alone: the
//! directory and the result directory 0700; the metadata database, its WAL
//! and shared-memory files, every stored result and the generated keys
//! 0600, whatever the process's umask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::harness::{Harness, id_of};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_directory_and_everything_written_in_it_are_private() {
    let h = Harness::new().await;
    let _runner = h.runner();
    let datasource = h.sample_datasource().await;
    let started = h
        .admin()
        .post(
            "/runs",
            json!({ "datasource_id": datasource, "sql": "select id from orders limit 3" }),
        )
        .await
        .expect(202);
    let run = h.wait_run(&h.admin, &id_of(&started.body["run"])).await;
    assert_eq!(run["status"], "succeeded", "{run}");

    let data = h.dir.path().join("data");
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("results")), 0o700, "result directory");
    for file in [
        "loupe.db",
        "loupe.db-wal",
        "loupe.db-shm",
        "secret.key",
        "signing.key",
    ] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    let results: Vec<_> = std::fs::read_dir(data.join("results"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(!results.is_empty(), "a stored result");
    for result in results {
        assert_eq!(mode(&result), 0o600, "{}", result.display());
    }
}
