//! The scheduler: turns due schedules into queued runs.
//!
//! Each tick looks for enabled schedules whose next run time has passed
//! and whose datasource is not paused. For each, in one transaction, it
//! moves `next_run_at` from the value it read to the next occurrence after
//! now (compare-and-set) and queues the run: of two schedulers racing for
//! the same occurrence, exactly one moves it and fires. The next occurrence
//! is computed from now, not from the missed one, so occurrences missed
//! while no scheduler ran fire once on start, not once per missed tick.
//! The run is started as the schedule's owner, through the same admission
//! as every other start (`RunService::admit`: the owner's grants, the
//! datasource not paused, parameters that fit). A start that admission
//! refuses still takes the occurrence, and is recorded as a failed run
//! that says why, so the schedule's history shows what happened; so is a
//! start refused because the owner already has as many queued runs as
//! `queued_runs_per_user` allows.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use loupe_core::{ErrorKind, Result, codes};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::meta::{db_error, now_micros};
use crate::runs::{SCHEDULED, Subject, cache_key, insert_refused, insert_run};
use crate::schedules::{next_fire, parse_cron, parse_timezone, schedule as schedule_from_row};
use crate::services::{Services, load_query};
use crate::{RunStatus, Schedule};

/// Fires due schedules.
#[derive(Debug, Clone)]
pub struct Scheduler {
    services: Services,
    interval: Duration,
}

impl Scheduler {
    /// A scheduler over the services' store that looks for due schedules
    /// every `interval`.
    pub fn new(services: &Services, interval: Duration) -> Self {
        Self {
            services: services.clone(),
            interval,
        }
    }

    /// Fires every schedule due now; returns how many runs it queued.
    pub async fn tick(&self) -> Result<usize> {
        let now = now_micros();
        let rows = sqlx::query(
            "SELECT s.* FROM schedules s JOIN queries q ON q.id = s.query_id JOIN datasources d ON d.id = q.datasource_id \
             WHERE s.enabled = 1 AND s.next_run_at IS NOT NULL AND s.next_run_at <= $1 AND d.paused = 0 \
             ORDER BY s.next_run_at LIMIT 500",
        )
        .bind(now)
        .fetch_all(self.services.store().pool())
        .await
        .map_err(db_error)?;
        let mut fired = 0;
        for row in &rows {
            let due = schedule_from_row(row)?;
            // A trace of its own per occurrence: the run it queues carries
            // it to the runner.
            let span = tracing::info_span!(parent: None, "schedule", schedule = %due.id);
            match self.fire(&due, now).instrument(span).await {
                Ok(true) => fired += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(schedule = %due.id, error = %e, "firing a schedule failed")
                }
            }
        }
        if fired > 0 {
            self.services.queue_changed();
        }
        match crate::subscriptions::fire_due(&self.services, now).await {
            Ok(n) => fired += n,
            Err(e) => tracing::warn!(error = %e, "firing subscriptions failed"),
        }
        crate::ops::scheduler_ticked();
        Ok(fired)
    }

    /// Fires one due schedule: true when it queued a run, false when
    /// another scheduler fired it first or admission refused the start.
    async fn fire(&self, due: &Schedule, now: i64) -> Result<bool> {
        let Some(read_next) = due.next_run_at else {
            return Ok(false);
        };
        let after = Utc.timestamp_micros(now).single().unwrap_or_else(Utc::now);
        let next = match (parse_cron(&due.cron), parse_timezone(&due.timezone)) {
            (Ok(cron), Ok(tz)) => next_fire(&cron, tz, after).map(|t| t.timestamp_micros()),
            _ => None,
        };
        let services = &self.services;
        let admitted = match services.users.actor(&due.owner_id, None).await {
            Ok(owner) => {
                services
                    .runs
                    .admit(
                        &owner,
                        Subject::Query {
                            id: &due.query_id,
                            values: &due.parameters,
                        },
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        let admitted = match admitted {
            // The store failing is not a refusal: the occurrence stays due
            // and the next tick tries again.
            Err(e) if matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Internal) => {
                return Err(e);
            }
            other => other,
        };
        let status = match admitted {
            Ok(_) => RunStatus::Queued,
            Err(_) => RunStatus::Failed,
        };
        let mut tx = services.store().write().await?;
        let moved = sqlx::query(
            "UPDATE schedules SET next_run_at = $1, last_run_at = $2, last_status = $3 WHERE id = $4 AND next_run_at = $5 AND enabled = 1",
        )
        .bind(next)
        .bind(now)
        .bind(status.as_str())
        .bind(due.id.clone())
        .bind(read_next)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        let refused = match admitted {
            Ok(admitted) => {
                let new = admitted.run(SCHEDULED, Some(due.owner_id.clone()), Some(&due.id));
                let key = cache_key(new.datasource_id, new.statement, new.context)?;
                match insert_run(&mut tx, &new, &key).await {
                    Ok(_) => None,
                    // The owner's queue is full (checked where the run is
                    // born, so it was not known above): this occurrence is
                    // refused like any other start, not retried each tick.
                    Err(full) if full.code() == codes::RUN_TOO_MANY_QUEUED.as_str() => {
                        sqlx::query("UPDATE schedules SET last_status = $1 WHERE id = $2")
                            .bind(RunStatus::Failed.as_str())
                            .bind(due.id.clone())
                            .execute(&mut *tx)
                            .await
                            .map_err(db_error)?;
                        Some(full)
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(refused) => Some(refused),
        };
        let queued = refused.is_none();
        if let Some(refused) = refused {
            tracing::warn!(schedule = %due.id, error = %refused, "a scheduled start was refused");
            let query = load_query(services.store(), &due.query_id).await?;
            let org_id: (String,) = sqlx::query_as("SELECT org_id FROM schedules WHERE id = $1")
                .bind(due.id.clone())
                .fetch_one(&mut *tx)
                .await
                .map_err(db_error)?;
            insert_refused(&mut tx, &org_id.0, &query, due, &refused).await?;
        }
        tx.commit().await.map_err(db_error)?;
        let lag = u64::try_from(now.saturating_sub(read_next)).unwrap_or(0);
        crate::ops::schedule_fired(queued, Duration::from_micros(lag));
        Ok(queued)
    }

    /// Starts ticking in the background until the handle is shut down.
    pub fn start(self) -> SchedulerHandle {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let (alive, guard) = super::Alive::start();
        let join = tokio::spawn(async move {
            let _guard = guard;
            loop {
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "a scheduler tick failed");
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(self.interval) => {}
                }
            }
        });
        SchedulerHandle { stop, join, alive }
    }
}

/// A scheduler started in the background.
#[derive(Debug)]
pub struct SchedulerHandle {
    stop: CancellationToken,
    join: tokio::task::JoinHandle<()>,
    alive: super::Alive,
}

impl SchedulerHandle {
    /// Whether the scheduler's loop is running.
    pub fn alive(&self) -> super::Alive {
        self.alive.clone()
    }

    /// Stops after the current tick.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.join.await;
    }
}
