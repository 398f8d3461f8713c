//! Upgrades through the real binary: the exit statuses a deploy pipeline
//! relies on (`migrate --check`: 0 up to date, 3 pending), `migrate` and
//! `migrate --down N`, a server started with `--migrate never` on pending
//! migrations, and a schema newer than the binary, refused by every path.

use loupe_services::meta::{MetadataStore, known_migrations, list_migrations};

use crate::process::{Ran, ServerProcess, postgres_schema, postgres_url, run};

fn current() -> i64 {
    known_migrations().last().map_or(0, |m| m.version)
}

#[track_caller]
fn exits(ran: &Ran, code: i32, says: &str) {
    assert_eq!(ran.code, Some(code), "{}", ran.stderr);
    assert!(ran.stderr.contains(says), "{says:?} in {}", ran.stderr);
}

/// `migrate --check`, `migrate` and `migrate --down` on the metadata that
/// `env` names.
fn check_migrate_and_revert(env: &[(&str, &str)]) {
    let known = known_migrations();
    let all = list_migrations(&known);
    exits(
        &run(&["migrate", "--check"], env),
        3,
        &format!(
            "at version 0; {} migrations pending: {all}; run `loupe-server migrate`",
            known.len()
        ),
    );
    let applied = run(&["migrate"], env);
    exits(
        &applied,
        0,
        &format!(
            "the metadata schema is at version {} (up to date)",
            current()
        ),
    );
    for migration in &known {
        assert!(
            applied.stderr.contains(&format!("applied {migration}")),
            "{}",
            applied.stderr
        );
    }
    exits(
        &run(&["migrate", "--check"], env),
        0,
        &format!("up to date (version {})", current()),
    );
    // Applying again does nothing and says so.
    exits(&run(&["migrate"], env), 0, "(up to date)");

    let last_two = &known[known.len() - 2..];
    let reverted = run(&["migrate", "--down", "2"], env);
    exits(
        &reverted,
        0,
        &format!(
            "the metadata schema is at version {}",
            last_two[0].version - 1
        ),
    );
    for migration in last_two {
        assert!(reverted.stderr.contains(&format!("reverted {migration}")));
    }
    exits(
        &run(&["migrate", "--check"], env),
        3,
        &format!("2 migrations pending: {}", list_migrations(last_two)),
    );
    exits(
        &run(&["migrate", "--down", "99"], env),
        2,
        "cannot revert 99 migrations",
    );
    exits(&run(&["migrate", "--down", "0"], env), 2, "--down");
    exits(&run(&["migrate"], env), 0, "(up to date)");
}

#[test]
fn migrate_check_exits_3_while_migrations_are_pending_and_0_once_applied_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    check_migrate_and_revert(&[("LOUPE_DATA_DIR", data.to_str().unwrap())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_check_exits_3_while_migrations_are_pending_and_0_once_applied_on_postgres() {
    let Some(base) = postgres_url() else { return };
    let (_, url) = postgres_schema(&base).await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        check_migrate_and_revert(&[
            ("LOUPE_DATA_DIR", data.as_str()),
            ("LOUPE_METADATA_URL", url.as_str()),
        ]);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_migrate_never_refuses_to_start_until_migrate_has_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let env = [("LOUPE_DATA_DIR", data)];
    exits(&run(&["migrate"], &env), 0, "up to date");
    let down = (current() - 1).to_string();
    exits(&run(&["migrate", "--down", &down], &env), 0, "at version 1");

    // The flag, and the configuration key, refuse a start on pending migrations.
    let pending = list_migrations(&known_migrations()[1..]);
    for (args, extra) in [
        (&["--migrate", "never"][..], None),
        (&[][..], Some(("LOUPE_MIGRATE", "never"))),
    ] {
        let env: Vec<(&str, &str)> = env.iter().copied().chain(extra).collect();
        let refused = run(args, &env);
        exits(&refused, 2, &format!("pending: {pending}"));
        assert!(
            refused
                .stderr
                .contains("with `migrate = never` this process does not apply migrations: run `loupe-server migrate` first"),
            "{}",
            refused.stderr
        );
    }
    exits(&run(&["migrate", "--check"], &env), 3, "pending");

    // The deploy step, then processes that start with `never`.
    exits(&run(&["migrate"], &env), 0, "(up to date)");
    let server =
        ServerProcess::start(&[("LOUPE_DATA_DIR", data), ("LOUPE_MIGRATE", "never")]).await;
    let token = server.login().await;
    assert!(!token.is_empty());
    let (stopped, log) = server.stop().await;
    assert!(stopped, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_the_binary_is_refused_by_start_and_every_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let env = [("LOUPE_DATA_DIR", data)];
    exits(&run(&["migrate"], &env), 0, "up to date");
    // A later release applied its migration 9001.
    let store = MetadataStore::connect(&format!("{data}/loupe.db"))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9001, 'from_the_future', true, $1, 1)",
    )
    .bind(vec![0u8; 48])
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;

    let newer = format!(
        "the metadata schema is at version 9001 (9001 from_the_future), newer than this build of Loupe knows (version {}",
        current()
    );
    for args in [
        &["migrate"][..],
        &["migrate", "--check"][..],
        &["migrate", "--down", "1"][..],
    ] {
        exits(&run(args, &env), 1, &newer);
    }
    for mode in ["auto", "never"] {
        let refused = run(&["--migrate", mode], &env);
        exits(&refused, 2, &newer);
    }
}
