//! The scheduler: turns due schedules into queued runs.
//!
//! Each tick looks for enabled schedules whose next run time has passed
//! and whose datasource is not paused. For each, in one transaction, it
//! moves `next_run_at` from the value it read to the next occurrence after
//! now (compare-and-set) and queues the run: of two schedulers racing for
//! the same occurrence, exactly one moves it and fires. The next occurrence
//! is computed from now, not from the missed one, so occurrences missed
//! while no scheduler ran fire once on start, not once per missed tick.
//! The run is started as the schedule's owner, who must still have `run`
//! on the datasource; if not, the schedule records a failure and moves on.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use crate::groups::access_of_user;
use crate::meta::{db_error, now_micros};
use crate::runs::{NewRun, SCHEDULED, bind_query, cache_key, insert_run};
use crate::schedules::{next_fire, parse_cron, parse_timezone, schedule as schedule_from_row};
use crate::services::{Services, Shared, load_query};
use crate::{Access, Schedule};
use loupe_core::Result;

/// Fires due schedules.
#[derive(Debug, Clone)]
pub struct Scheduler {
    shared: Arc<Shared>,
    interval: Duration,
}

impl Scheduler {
    /// A scheduler over the services' store that looks for due schedules
    /// every `interval`.
    pub fn new(services: &Services, interval: Duration) -> Self {
        Self {
            shared: services.shared.clone(),
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
        .fetch_all(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        let mut fired = 0;
        for row in &rows {
            let due = schedule_from_row(row)?;
            match self.fire(&due, now).await {
                Ok(true) => fired += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(schedule = %due.id, error = %e, "firing a schedule failed")
                }
            }
        }
        if fired > 0 {
            self.shared.queue_changed.notify_waiters();
        }
        Ok(fired)
    }

    /// Fires one due schedule; false when another scheduler fired it first.
    async fn fire(&self, due: &Schedule, now: i64) -> Result<bool> {
        let Some(read_next) = due.next_run_at else {
            return Ok(false);
        };
        let after = Utc.timestamp_micros(now).single().unwrap_or_else(Utc::now);
        let next = match (parse_cron(&due.cron), parse_timezone(&due.timezone)) {
            (Ok(cron), Ok(tz)) => next_fire(&cron, tz, after).map(|t| t.timestamp_micros()),
            _ => None,
        };
        let query = load_query(&self.shared, &due.query_id).await?;
        let owner_may_run = access_of_user(&self.shared, &due.owner_id, &query.datasource_id)
            .await?
            == Some(Access::Run);
        let statement = if owner_may_run {
            let kind: (String,) = sqlx::query_as("SELECT kind FROM datasources WHERE id = $1")
                .bind(query.datasource_id.clone())
                .fetch_one(self.shared.store.pool())
                .await
                .map_err(db_error)?;
            let dialect = self.shared.registry.factory(&kind.0)?.dialect();
            bind_query(&query, dialect, &due.parameters).ok()
        } else {
            None
        };
        let mut tx = self.shared.store.write().await?;
        let moved = sqlx::query(
            "UPDATE schedules SET next_run_at = $1, last_run_at = $2, last_status = $3 WHERE id = $4 AND next_run_at = $5 AND enabled = 1",
        )
        .bind(next)
        .bind(now)
        .bind(if statement.is_some() { "queued" } else { "failed" })
        .bind(due.id.clone())
        .bind(read_next)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if moved.rows_affected() == 0 {
            return Ok(false);
        }
        let Some(statement) = statement else {
            tracing::warn!(schedule = %due.id, "the schedule's owner may not run its query, or its parameters no longer fit");
            tx.commit().await.map_err(db_error)?;
            return Ok(false);
        };
        let key = cache_key(&query.datasource_id, &statement)?;
        let org_id: (String,) = sqlx::query_as("SELECT org_id FROM schedules WHERE id = $1")
            .bind(due.id.clone())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        let new = NewRun {
            org_id: &org_id.0,
            query: Some((&query.id, query.version)),
            datasource_id: &query.datasource_id,
            statement: &statement,
            priority: SCHEDULED,
            created_by: Some(due.owner_id.clone()),
            schedule_id: Some(&due.id),
        };
        insert_run(&mut tx, &new, &key).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    /// Starts ticking in the background until the handle is shut down.
    pub fn start(self) -> SchedulerHandle {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let join = tokio::spawn(async move {
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
        SchedulerHandle { stop, join }
    }
}

/// A scheduler started in the background.
#[derive(Debug)]
pub struct SchedulerHandle {
    stop: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl SchedulerHandle {
    /// Stops after the current tick.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.join.await;
    }
}
