//! The runner and the scheduler: what turns queued runs into stored
//! results, and schedules into queued runs. Any host starts them: the
//! server in-process by default, or separate runner processes sharing a
//! PostgreSQL metadata store.
//!
//! A runner claims runs from the queue in the metadata store with a lease
//! it keeps renewing while it works. If it dies, the lease runs out and
//! another runner claims the run again (at-least-once execution); only the
//! attempt holding the current lease can commit its result, so exactly one
//! result is kept per run and a late duplicate is deleted.
//!
//! Failures that may pass (a lost connection, a server shutting down, a
//! serialization failure) are retried with exponential backoff and jitter
//! up to `max_attempts`; other failures (a syntax error, a permission
//! error, a timeout) fail the run at once. A cancelled run stops within
//! about a second: at once in the process that cancels it, within
//! `check_every` elsewhere; the statement is dropped, which cancels it in
//! the database.

mod queue;
mod retention;
mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub(crate) use retention::stored_bytes;
pub use retention::{
    DEFAULT_AUDIT_MAX_AGE, DEFAULT_MAX_AGE, Retention, RetentionHandle, RetentionReport,
};
pub use scheduler::{Scheduler, SchedulerHandle};

use crate::meta::{MetadataStore, now_micros};
use crate::ops::AttemptOutcome;
use crate::services::Services;
use loupe_core::Limits;
use loupe_core::{Error, Result};
use loupe_core::{ExecutionRequest, Executor, StreamingExecutor};
use loupe_core::{ResultId, ResultStore};
use queue::{ClaimLimits, Claimed, Finish, LeaseState};

/// How a runner behaves.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// This runner's name in the queue (claimed-by), unique per process.
    pub name: String,
    /// Runs executed at once by this runner.
    pub workers: usize,
    /// Runs of one datasource executing at once, across all runners.
    pub per_datasource: usize,
    /// Runs of one user executing at once, across all runners.
    pub per_user: usize,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// How often a running attempt checks for cancellation (and renews
    /// its lease when a third of it has passed).
    pub check_every: Duration,
    /// How long an idle runner waits before looking at the queue again
    /// (a run queued in the same process wakes it at once).
    pub poll: Duration,
    /// Attempts per run, the first included.
    pub max_attempts: i32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// The longest wait between retries.
    pub max_backoff: Duration,
    /// Time, row and byte bounds of every run.
    pub limits: Limits,
    /// On shutdown, how long running runs may take to finish before they
    /// are stopped and handed back to the queue.
    pub grace: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            name: format!("runner-{}", uuid::Uuid::now_v7().simple()),
            workers: 4,
            per_datasource: 4,
            per_user: 4,
            lease: Duration::from_secs(30),
            check_every: Duration::from_millis(500),
            poll: Duration::from_secs(1),
            max_attempts: 3,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            limits: Limits::NONE.with_timeout(Duration::from_secs(30 * 60)),
            grace: Duration::from_secs(30),
        }
    }
}

/// Executes queued runs.
#[derive(Debug, Clone)]
pub struct Runner {
    services: Services,
    results: Arc<dyn ResultStore>,
    executor: Arc<dyn Executor>,
    config: RunnerConfig,
}

impl Runner {
    /// A runner over the services' store, writing results to `results`.
    pub fn new(services: &Services, results: Arc<dyn ResultStore>, config: RunnerConfig) -> Self {
        Self {
            services: services.clone(),
            executor: Arc::new(StreamingExecutor::new(results.clone())),
            results,
            config,
        }
    }

    fn lease_micros(&self) -> i64 {
        i64::try_from(self.config.lease.as_micros()).unwrap_or(i64::MAX / 4)
    }

    fn limits(&self, slots: usize) -> ClaimLimits {
        ClaimLimits {
            slots,
            per_datasource: self.config.per_datasource,
            per_user: self.config.per_user,
            lease_micros: self.lease_micros(),
            max_attempts: self.config.max_attempts,
        }
    }

    /// Claims what it can now and executes it to the end. Returns how many
    /// runs it executed. For tests and tools; hosts use [`start`](Self::start).
    pub async fn run_once(&self) -> Result<usize> {
        let claimed = queue::claim(
            self.services.store(),
            &self.config.name,
            self.limits(self.config.workers),
        )
        .await?;
        let n = claimed.len();
        let mut tasks = JoinSet::new();
        for run in claimed {
            let runner = self.clone();
            tasks.spawn(async move { runner.execute(run, CancellationToken::new()).await });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(|e| Error::internal_from("runner task", e))??;
        }
        Ok(n)
    }

    /// Starts claiming and executing in the background until the handle
    /// is shut down.
    pub fn start(self) -> RunnerHandle {
        let stop_claiming = CancellationToken::new();
        let stop_running = CancellationToken::new();
        let (alive, guard) = Alive::start();
        let main_loop = self
            .clone()
            .main_loop(stop_claiming.clone(), stop_running.clone());
        let join = tokio::spawn(async move {
            let _guard = guard;
            main_loop.await;
        });
        RunnerHandle {
            stop_claiming,
            stop_running,
            grace: self.config.grace,
            join,
            alive,
        }
    }

    async fn main_loop(self, stop_claiming: CancellationToken, stop_running: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.config.workers.max(1)));
        let mut tasks = JoinSet::new();
        loop {
            // Wake on a local enqueue, a finished run, the poll interval or
            // shutdown; register interest before looking at the queue.
            let queued = self.services.queue_notified();
            tokio::pin!(queued);
            queued.as_mut().enable();
            if stop_claiming.is_cancelled() {
                break;
            }
            let free = slots.available_permits();
            let mut claimed_any = false;
            if free > 0 {
                match queue::claim(self.services.store(), &self.config.name, self.limits(free))
                    .await
                {
                    Ok(claimed) => {
                        claimed_any = !claimed.is_empty();
                        for run in claimed {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            let runner = self.clone();
                            let stop = stop_running.child_token();
                            tasks.spawn(async move {
                                let id = run.id.clone();
                                if let Err(e) = runner.execute(run, stop).await {
                                    tracing::error!(run = %id, error = %e, "recording a run's end failed");
                                }
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming runs failed"),
                }
            }
            while tasks.try_join_next().is_some() {}
            if claimed_any && slots.available_permits() > 0 {
                continue;
            }
            tokio::select! {
                () = stop_claiming.cancelled() => break,
                () = &mut queued => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
        // Shutdown: running attempts finish, or are stopped by
        // `stop_running` and released back to the queue.
        while tasks.join_next().await.is_some() {}
    }

    /// Executes one claimed run to its end and records the end, in the
    /// run's span, and its metrics.
    async fn execute(&self, run: Claimed, shutdown: CancellationToken) -> Result<()> {
        let started = std::time::Instant::now();
        let span = run.span.clone();
        let attempt = self.attempt(&run, shutdown).instrument(span.clone());
        let hub = crate::error_tracking::run_hub(
            &run.id,
            &run.kind,
            &run.org_id,
            run.created_by.as_deref(),
        );
        let ended = match hub {
            Some(hub) => sentry::SentryFutureExt::bind_hub(attempt, hub).await,
            None => attempt.await,
        };
        let outcome = match &ended {
            Ok(outcome) => outcome.clone(),
            // The end could not be recorded: the run stays claimed until
            // its lease runs out and another attempt takes it.
            Err(_) => Ended::Lost,
        };
        span.record("outcome", outcome.label().as_str());
        if matches!(outcome, Ended::Succeeded | Ended::Failed(_)) {
            // The run ended for good here: its alerts are evaluated once,
            // by this runner.
            let evaluated = async {
                let finished = self.services.runs.get_unchecked(&run.id).await?;
                self.services.alerts.after_run(&finished).await
            };
            if let Err(e) = evaluated.instrument(span.clone()).await {
                tracing::warn!(run = %run.id, error = %e, "the run's alerts could not be evaluated");
            }
        }
        crate::ops::attempt_ended(
            &run.kind,
            outcome.label(),
            Duration::from_micros(u64::try_from(run.waited_micros).unwrap_or(0)),
            started.elapsed(),
            outcome.code(),
        );
        ended.map(|_| ())
    }

    /// One attempt: execute, store, record how it ended.
    async fn attempt(&self, run: &Claimed, shutdown: CancellationToken) -> Result<Ended> {
        let datasource =
            match crate::services::live_datasource(&self.services, &run.datasource_id).await {
                Ok(d) => d,
                Err(e) => return self.failed(run, &e).await,
            };
        let cancel = CancellationToken::new();
        self.services
            .cancellations()
            .insert(&run.id, cancel.clone());
        let result_id = ResultId::generate();
        let request = ExecutionRequest {
            result_id: result_id.clone(),
            datasource: datasource.clone(),
            statement: run.statement(datasource.dialect()),
            limits: self.config.limits,
        };
        let watch = self.watch(run, cancel.clone(), shutdown.clone());
        // A datasource's code that panics fails the run (the panic hook
        // has reported it) instead of leaving it claimed until its lease
        // runs out and another attempt panics again.
        let executed = std::panic::AssertUnwindSafe(self.executor.execute(request, cancel.clone()))
            .catch_unwind()
            .map(|caught| {
                caught.unwrap_or_else(|payload| {
                    Err(crate::error_tracking::panicked(
                        &format!("the {} datasource", run.kind),
                        payload.as_ref(),
                    ))
                })
            });
        let outcome = tokio::select! {
            outcome = executed => outcome,
            state = watch => {
                // The watch only ends by cancelling; let the executor see
                // it and clean up its partial result.
                let _ = state;
                Err(Error::Cancelled)
            }
        };
        self.services.cancellations().remove(&run.id);
        let ended = match outcome {
            Ok(outcome) => {
                let location = result_id.to_string();
                let held = finish(
                    self.services.store(),
                    run,
                    Finish::Succeeded {
                        location: &location,
                        rows: outcome.result.rows,
                        bytes: outcome.result.bytes,
                        truncated: outcome.result.truncation.as_ref(),
                    },
                )
                .await?;
                if held {
                    // Which process ran what, for operators of several
                    // runners (the run row forgets its runner at the end).
                    tracing::info!(
                        run = %run.id,
                        runner = %self.config.name,
                        rows = outcome.result.rows,
                        "run succeeded"
                    );
                    Ok(Ended::Succeeded)
                } else {
                    // Another attempt owns this run now: drop our result.
                    tracing::info!(run = %run.id, "a late duplicate result was discarded");
                    let _ = self.results.delete(&result_id).await;
                    Ok(Ended::Lost)
                }
            }
            Err(Error::Cancelled) => {
                let _ = self.results.delete(&result_id).await;
                if shutdown.is_cancelled() {
                    finish(self.services.store(), run, Finish::Released)
                        .await
                        .map(|held| Ended::held_or_lost(held, Ended::Released))
                } else {
                    match queue::cancel_state(self.services.store(), run).await? {
                        LeaseState::Lost => Ok(Ended::Lost),
                        LeaseState::CancelRequested | LeaseState::Held => {
                            finish(self.services.store(), run, Finish::Cancelled)
                                .await
                                .map(|held| Ended::held_or_lost(held, Ended::Cancelled))
                        }
                    }
                }
            }
            Err(e) => {
                let _ = self.results.delete(&result_id).await;
                self.failed(run, &e).await
            }
        };
        self.services.queue_changed();
        ended
    }

    /// Records a failure: retried later if it may pass and attempts
    /// remain, else final.
    async fn failed(&self, run: &Claimed, error: &Error) -> Result<Ended> {
        let message = error.to_string();
        let code = error.code();
        let (how, ended) = if error.is_retriable() && run.attempts < self.config.max_attempts {
            let how = Finish::Retry {
                code,
                message: &message,
                not_before: now_micros() + backoff_micros(&self.config, run.attempts),
            };
            (how, Ended::Retried(code.to_owned()))
        } else {
            crate::error_tracking::capture_failed_run(error);
            let how = Finish::Failed {
                code,
                message: &message,
            };
            (how, Ended::Failed(code.to_owned()))
        };
        finish(self.services.store(), run, how)
            .await
            .map(|held| Ended::held_or_lost(held, ended))
    }

    /// Renews the lease and watches for cancellation until something says
    /// stop; then cancels `cancel` and returns.
    async fn watch(
        &self,
        run: &Claimed,
        cancel: CancellationToken,
        shutdown: CancellationToken,
    ) -> LeaseState {
        let renew_every = self.config.lease / 3;
        let mut renewed = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return LeaseState::CancelRequested,
                () = shutdown.cancelled() => {
                    cancel.cancel();
                    return LeaseState::Held;
                }
                () = tokio::time::sleep(self.config.check_every) => {}
            }
            let state = if renewed.elapsed() >= renew_every {
                renewed = tokio::time::Instant::now();
                queue::renew(self.services.store(), run, self.lease_micros()).await
            } else {
                queue::cancel_state(self.services.store(), run).await
            };
            match state {
                Ok(LeaseState::Held) => {}
                Ok(other) => {
                    cancel.cancel();
                    return other;
                }
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "checking a run's lease failed")
                }
            }
        }
    }
}

/// Records how an attempt ended, in a span of its own.
async fn finish(store: &MetadataStore, run: &Claimed, how: Finish<'_>) -> Result<bool> {
    queue::finish(store, run, how)
        .instrument(tracing::info_span!("finish"))
        .await
}

/// How an attempt ended, for its span and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ended {
    Succeeded,
    Failed(String),
    Retried(String),
    Cancelled,
    Released,
    Lost,
}

impl Ended {
    /// `ended` when this attempt still held the run, else lost.
    fn held_or_lost(held: bool, ended: Self) -> Self {
        if held { ended } else { Self::Lost }
    }

    fn label(&self) -> AttemptOutcome {
        match self {
            Self::Succeeded => AttemptOutcome::Succeeded,
            Self::Failed(_) => AttemptOutcome::Failed,
            Self::Retried(_) => AttemptOutcome::Retried,
            Self::Cancelled => AttemptOutcome::Cancelled,
            Self::Released => AttemptOutcome::Released,
            Self::Lost => AttemptOutcome::Lost,
        }
    }

    fn code(&self) -> Option<&str> {
        match self {
            Self::Failed(code) | Self::Retried(code) => Some(code),
            _ => None,
        }
    }
}

/// The wait before retry number `attempts` (from 1): `backoff × 2^(n-1)`,
/// at most `max_backoff`, with ±25 % jitter so retries spread out.
fn backoff_micros(config: &RunnerConfig, attempts: i32) -> i64 {
    let exponent = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    let base = config
        .backoff
        .saturating_mul(1 << exponent)
        .min(config.max_backoff);
    let base = i64::try_from(base.as_micros()).unwrap_or(i64::MAX / 4);
    let jitter = (uuid::Uuid::now_v7().as_u128() % 1_000) as i64; // 0..1000
    base + base / 2 * (jitter - 500) / 1_000
}

/// Whether a loop started in the background (a runner, a scheduler) is
/// still running: false once it ends, whether it was stopped or panicked.
#[derive(Debug, Clone)]
pub struct Alive(Arc<std::sync::atomic::AtomicBool>);

impl Alive {
    /// A loop that runs from now until the guard is dropped.
    pub(crate) fn start() -> (Self, AliveGuard) {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(true));
        (Self(flag.clone()), AliveGuard(flag))
    }

    /// True while the loop runs.
    pub fn is_alive(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Held by a loop's task; marks the loop ended when dropped.
#[derive(Debug)]
pub(crate) struct AliveGuard(Arc<std::sync::atomic::AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A runner started in the background.
#[derive(Debug)]
pub struct RunnerHandle {
    stop_claiming: CancellationToken,
    stop_running: CancellationToken,
    grace: std::time::Duration,
    join: tokio::task::JoinHandle<()>,
    alive: Alive,
}

impl RunnerHandle {
    /// Whether the runner's loop is running.
    pub fn alive(&self) -> Alive {
        self.alive.clone()
    }

    /// Stops claiming, lets running runs finish within the grace period,
    /// then stops the rest and hands them back to the queue.
    pub async fn shutdown(mut self) {
        self.stop_claiming.cancel();
        if tokio::time::timeout(self.grace, &mut self.join)
            .await
            .is_err()
        {
            self.stop_running.cancel();
            let _ = self.join.await;
        }
    }

    /// Stops at once, handing running runs back to the queue.
    pub async fn abort(self) {
        self.stop_claiming.cancel();
        self.stop_running.cancel();
        let _ = self.join.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let config = RunnerConfig {
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(10),
            ..RunnerConfig::default()
        };
        for (attempt, base) in [
            (1, 2_000_000),
            (2, 4_000_000),
            (3, 8_000_000),
            (4, 10_000_000),
            (40, 10_000_000),
        ] {
            let wait = backoff_micros(&config, attempt);
            assert!(
                wait >= base * 3 / 4 && wait <= base * 5 / 4,
                "attempt {attempt}: {wait}"
            );
        }
    }
}
