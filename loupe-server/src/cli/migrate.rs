//! `loupe-server migrate`: apply the pending metadata migrations and exit
//! (a deploy step when several processes share PostgreSQL and start with
//! `--migrate never`); `--check` says whether any are pending, for a
//! deploy pipeline; `--down N` reverts the last N with their down scripts.
//! A schema that a newer release migrated is refused, naming both versions.

use std::process::ExitCode;

use loupe_core::codes;
use loupe_services::meta::{MetadataStore, SchemaStatus, list_migrations};

use super::{FAILED, PENDING, USAGE, fail, say};
use crate::config::Config;

/// What `migrate` does.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Only check: exit 0 when the schema is up to date, 3 (listing them)
    /// when migrations are pending.
    #[arg(long, conflicts_with = "down")]
    pub check: bool,
    /// Revert the last N applied migrations with their down scripts
    /// (dropping what they added, data included).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub down: Option<u32>,
}

pub(super) async fn run(config: &Config, args: &MigrateArgs) -> ExitCode {
    let store = match MetadataStore::connect(&config.deployment.metadata_url()).await {
        Ok(store) => store,
        Err(e) => return fail(FAILED, e),
    };
    let status = migrate(&store, args).await;
    store.close().await;
    status
}

async fn migrate(store: &MetadataStore, args: &MigrateArgs) -> ExitCode {
    let status = match store.schema_status().await {
        Ok(status) => status,
        Err(e) => return fail(FAILED, e),
    };
    if let Err(e) = status.refuse_unusable() {
        return fail(FAILED, e);
    }
    if args.check {
        return check(&status);
    }
    if let Some(count) = args.down {
        return match store.migrate_down(count as usize).await {
            Ok(reverted) => {
                for migration in &reverted {
                    say(format!("reverted {migration}"));
                }
                at_version(store).await
            }
            Err(e) if e.code() == codes::METADATA_REVERT_TOO_FAR.as_str() => fail(USAGE, e),
            Err(e) => fail(FAILED, e),
        };
    }
    match store.migrate().await {
        Ok(applied) => {
            for migration in &applied {
                say(format!("applied {migration}"));
            }
            at_version(store).await
        }
        Err(e) => fail(FAILED, e),
    }
}

fn check(status: &SchemaStatus) -> ExitCode {
    if status.pending.is_empty() {
        say(format!(
            "the metadata schema is up to date (version {})",
            status.version()
        ));
        return ExitCode::SUCCESS;
    }
    fail(
        PENDING,
        format!(
            "the metadata schema is at version {}; {} pending: {}; run `loupe-server migrate`",
            status.version(),
            match status.pending.len() {
                1 => "1 migration".to_owned(),
                n => format!("{n} migrations"),
            },
            list_migrations(&status.pending)
        ),
    )
}

async fn at_version(store: &MetadataStore) -> ExitCode {
    match store.schema_status().await {
        Ok(status) => {
            say(format!(
                "the metadata schema is at version {}{}",
                status.version(),
                if status.pending.is_empty() {
                    " (up to date)"
                } else {
                    ""
                }
            ));
            ExitCode::SUCCESS
        }
        Err(e) => fail(FAILED, e),
    }
}
