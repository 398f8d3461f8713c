//! Limits on one statement: how long it may run, how many rows and how many
//! bytes of Arrow data it may return.
//!
//! Datasources push limits down where they can (a server-side statement
//! timeout) and wrap their stream in a [`LimitedStream`], which is the one
//! place where rows and bytes are counted and a result is cut short. A result
//! stopped by a row or byte limit is not an error: it ends normally and says
//! it was [`Truncation`]-ed. A timeout is an error ([`Error::Timeout`]).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, Sleep};

use crate::error::{Error, Result};
use crate::stream::{BatchStream, SendableBatchStream, batch_data_size};

/// Bounds on one statement. `None` means no bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock time from the start of execution to the last batch.
    #[serde(default, with = "duration_millis")]
    pub timeout: Option<Duration>,
    /// The most rows the result may have.
    #[serde(default)]
    pub max_rows: Option<u64>,
    /// The most bytes of Arrow data the result may have (see
    /// [`batch_data_size`]).
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

impl Limits {
    /// No limits.
    pub const NONE: Limits = Limits {
        timeout: None,
        max_rows: None,
        max_bytes: None,
    };

    /// The same limits with a timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The same limits with a row bound.
    pub fn with_max_rows(mut self, rows: u64) -> Self {
        self.max_rows = Some(rows);
        self
    }

    /// The same limits with a byte bound.
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }

    /// The instant the timeout ends, counted from now.
    pub fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }

    /// Runs `fut` (planning, connecting) under the deadline, turning an
    /// elapsed deadline into [`Error::Timeout`].
    pub async fn within<T>(
        &self,
        deadline: Option<Instant>,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        match (deadline, self.timeout) {
            (Some(deadline), Some(after)) => tokio::time::timeout_at(deadline, fut)
                .await
                .unwrap_or(Err(Error::Timeout { after })),
            _ => fut.await,
        }
    }
}

mod duration_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

/// Why a result stopped before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Truncation {
    /// The row limit was reached and more rows were available.
    MaxRows {
        /// The limit.
        limit: u64,
    },
    /// The byte limit was reached and more data was available.
    MaxBytes {
        /// The limit.
        limit: u64,
    },
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MaxRows { limit } => write!(f, "stopped at the limit of {limit} rows"),
            Self::MaxBytes { limit } => write!(f, "stopped at the limit of {limit} bytes"),
        }
    }
}

/// Enforces [`Limits`] on a stream: ends it at the row or byte bound
/// (recording a [`Truncation`]) and fails it with [`Error::Timeout`] at the
/// deadline. The inner stream is dropped as soon as it is no longer
/// needed, which stops its work.
pub struct LimitedStream {
    inner: Option<SendableBatchStream>,
    schema: SchemaRef,
    max_rows: Option<u64>,
    max_bytes: Option<u64>,
    timeout: Option<Duration>,
    deadline: Option<Pin<Box<Sleep>>>,
    rows: u64,
    bytes: u64,
    truncation: Option<Truncation>,
}

impl fmt::Debug for LimitedStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimitedStream")
            .field("max_rows", &self.max_rows)
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .field("rows", &self.rows)
            .field("bytes", &self.bytes)
            .field("truncation", &self.truncation)
            .finish_non_exhaustive()
    }
}

impl LimitedStream {
    /// Limits `inner`. `deadline` is when the timeout ends (see
    /// [`Limits::deadline`]); pass the one computed when execution started
    /// so that planning time counts too.
    pub fn new(inner: SendableBatchStream, limits: &Limits, deadline: Option<Instant>) -> Self {
        let deadline = match (limits.timeout, deadline) {
            (Some(t), None) => Some(Instant::now() + t),
            (_, d) => d,
        };
        Self {
            schema: inner.schema(),
            inner: Some(inner),
            max_rows: limits.max_rows,
            max_bytes: limits.max_bytes,
            timeout: limits.timeout,
            deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            rows: 0,
            bytes: 0,
            truncation: None,
        }
    }

    /// Boxes the limited stream.
    pub fn boxed(
        inner: SendableBatchStream,
        limits: &Limits,
        deadline: Option<Instant>,
    ) -> SendableBatchStream {
        Box::pin(Self::new(inner, limits, deadline))
    }

    fn stop(&mut self, truncation: Option<Truncation>) {
        self.inner = None;
        self.deadline = None;
        if truncation.is_some() {
            self.truncation = truncation;
        }
    }

    /// Cuts `batch` to what the limits still allow.
    fn admit(&mut self, batch: RecordBatch) -> Option<RecordBatch> {
        let mut batch = batch;
        let mut cut = None;
        if let Some(max) = self.max_rows {
            let room = max.saturating_sub(self.rows);
            if (batch.num_rows() as u64) > room {
                batch = batch.slice(0, room as usize);
                cut = Some(Truncation::MaxRows { limit: max });
            }
        }
        let mut size = batch_data_size(&batch);
        if let Some(max) = self.max_bytes {
            let room = max.saturating_sub(self.bytes);
            if size > room {
                // Keep the rows that fit, estimating from the batch's mean row width.
                let per_row = size.div_ceil(batch.num_rows().max(1) as u64).max(1);
                let keep = (room / per_row) as usize;
                batch = batch.slice(0, keep.min(batch.num_rows()));
                size = batch_data_size(&batch).min(room);
                cut = Some(Truncation::MaxBytes { limit: max });
            }
        }
        self.rows += batch.num_rows() as u64;
        self.bytes += size;
        if cut.is_some() {
            self.stop(cut);
        }
        (batch.num_rows() > 0).then_some(batch)
    }

    fn at_row_limit(&self) -> bool {
        self.max_rows.is_some_and(|m| self.rows >= m)
    }
}

impl Stream for LimitedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(inner) = this.inner.as_mut() else {
                return Poll::Ready(None);
            };
            if let Some(deadline) = this.deadline.as_mut()
                && deadline.as_mut().poll(cx).is_ready()
            {
                let after = this.timeout.unwrap_or_default();
                this.stop(None);
                return Poll::Ready(Some(Err(Error::Timeout { after })));
            }
            match inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    this.stop(None);
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.stop(None);
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(batch))) => {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    if this.at_row_limit() {
                        // The limit was met exactly by earlier batches, and
                        // here is another row: the result is cut.
                        let limit = this.max_rows.unwrap_or_default();
                        this.stop(Some(Truncation::MaxRows { limit }));
                        return Poll::Ready(None);
                    }
                    match this.admit(batch) {
                        Some(batch) => return Poll::Ready(Some(Ok(batch))),
                        None => return Poll::Ready(None),
                    }
                }
            }
        }
    }
}

impl BatchStream for LimitedStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn truncation(&self) -> Option<Truncation> {
        self.truncation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{StreamAdapter, batches_stream};
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::StreamExt;
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
    }

    fn batch(from: i64, n: i64) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
        )
        .unwrap()
    }

    async fn drain(mut s: LimitedStream) -> (u64, Option<Truncation>, Option<Error>) {
        let mut rows = 0;
        while let Some(item) = s.next().await {
            match item {
                Ok(b) => rows += b.num_rows() as u64,
                Err(e) => return (rows, s.truncation(), Some(e)),
            }
        }
        (rows, s.truncation(), None)
    }

    #[tokio::test]
    async fn max_rows_cuts_and_says_so() {
        let inner = batches_stream(schema(), vec![batch(0, 10), batch(10, 10)]);
        let s = LimitedStream::new(inner, &Limits::NONE.with_max_rows(15), None);
        let (rows, t, e) = drain(s).await;
        assert_eq!(rows, 15);
        assert_eq!(t, Some(Truncation::MaxRows { limit: 15 }));
        assert!(e.is_none());
    }

    #[tokio::test]
    async fn exact_row_count_is_not_truncated() {
        let inner = batches_stream(schema(), vec![batch(0, 10), batch(10, 10)]);
        let s = LimitedStream::new(inner, &Limits::NONE.with_max_rows(20), None);
        assert_eq!(drain(s).await.1, None);
        // ...but one more row after an exact fit is.
        let inner = batches_stream(schema(), vec![batch(0, 10), batch(10, 1)]);
        let s = LimitedStream::new(inner, &Limits::NONE.with_max_rows(10), None);
        let (rows, t, _) = drain(s).await;
        assert_eq!((rows, t), (10, Some(Truncation::MaxRows { limit: 10 })));
    }

    #[tokio::test]
    async fn max_bytes_cuts_within_a_batch() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let strings: StringArray = (0..1000).map(|i| Some(format!("{i:0>20}"))).collect();
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(strings)]).unwrap();
        let inner = batches_stream(schema, vec![b]);
        let s = LimitedStream::new(inner, &Limits::NONE.with_max_bytes(2400), None);
        let (rows, t, _) = drain(s).await;
        assert!(rows > 0 && rows < 1000, "{rows}");
        assert_eq!(t, Some(Truncation::MaxBytes { limit: 2400 }));
    }

    #[tokio::test]
    async fn timeout_is_an_error() {
        let pending = StreamAdapter::boxed(schema(), futures::stream::pending());
        let limits = Limits::NONE.with_timeout(Duration::from_millis(20));
        let s = LimitedStream::new(pending, &limits, limits.deadline());
        let (_, t, e) = drain(s).await;
        assert_eq!(t, None);
        assert_eq!(e.map(|e| e.code()), Some("query.timeout"));
    }
}
