//! The [`Executor`]: runs one bound statement on a datasource and stores its
//! result.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::datasource::Datasource;
use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::results::{ResultId, ResultMeta, ResultStore};
use crate::template::Statement;

/// One statement to run and where its result goes.
#[derive(Debug, Clone)]
pub struct ExecutionRequest {
    /// The id the stored result will have.
    pub result_id: ResultId,
    /// Where the statement runs.
    pub datasource: Arc<dyn Datasource>,
    /// The bound statement, in the datasource's dialect.
    pub statement: Statement,
    /// Time, row and byte bounds.
    pub limits: Limits,
}

/// What an execution produced.
#[derive(Debug, Clone)]
pub struct ExecutionOutcome {
    /// The stored result (its `truncation` says whether a limit cut it).
    pub result: ResultMeta,
    /// From the start of execution to the stored result.
    pub elapsed: Duration,
}

/// Turns an [`ExecutionRequest`] into a stored result.
#[async_trait]
pub trait Executor: Debug + Send + Sync {
    /// Runs the statement, streams its batches into the result store and
    /// returns the stored result's metadata.
    ///
    /// # Errors
    /// Whatever the datasource or store reports ([`Error::Query`],
    /// [`Error::Timeout`], [`Error::Store`], ...). A failed run leaves no
    /// result behind.
    ///
    /// # Cancellation
    /// When `cancel` fires, the statement is stopped (the datasource's
    /// stream is dropped, which cancels it on the server), any partial
    /// result is removed, and [`Error::Cancelled`] is returned. Dropping
    /// the future has the same effect on the statement.
    async fn execute(
        &self,
        request: ExecutionRequest,
        cancel: CancellationToken,
    ) -> Result<ExecutionOutcome>;
}

/// The standard [`Executor`]: streams from the datasource straight into a
/// [`ResultStore`], holding no more than one batch at a time.
#[derive(Debug, Clone)]
pub struct StreamingExecutor {
    store: Arc<dyn ResultStore>,
}

impl StreamingExecutor {
    /// An executor writing into `store`.
    pub fn new(store: Arc<dyn ResultStore>) -> Self {
        Self { store }
    }

    /// The store results go to.
    pub fn store(&self) -> &Arc<dyn ResultStore> {
        &self.store
    }
}

#[async_trait]
impl Executor for StreamingExecutor {
    async fn execute(
        &self,
        request: ExecutionRequest,
        cancel: CancellationToken,
    ) -> Result<ExecutionOutcome> {
        let started = Instant::now();
        let ExecutionRequest {
            result_id,
            datasource,
            statement,
            limits,
        } = request;
        // Two spans, as traces show them: the statement started on the
        // datasource (planned, or described by the server), then the rows
        // streamed into the result store, which is where a large result
        // spends its time.
        let work = async {
            let stream = datasource
                .execute(&statement, &limits)
                .instrument(tracing::info_span!("execute", kind = datasource.kind()))
                .await?;
            let store = tracing::info_span!(
                "store",
                result = %result_id,
                rows = tracing::field::Empty,
                bytes = tracing::field::Empty
            );
            let stored = self
                .store
                .write(&result_id, stream)
                .instrument(store.clone())
                .await?;
            store.record("rows", stored.rows);
            store.record("bytes", stored.bytes);
            Ok(stored)
        };
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(Error::Cancelled),
            result = work => result,
        };
        match outcome {
            Ok(result) => Ok(ExecutionOutcome {
                result,
                elapsed: started.elapsed(),
            }),
            Err(Error::Cancelled) => {
                // The write was abandoned mid-way; make sure nothing of it stays.
                match self.store.delete(&result_id).await {
                    Ok(()) | Err(Error::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(result = %result_id, error = %e, "could not remove a cancelled result");
                    }
                }
                Err(Error::Cancelled)
            }
            Err(e) => Err(e),
        }
    }
}
