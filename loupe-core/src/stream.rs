//! Streams of Arrow record batches: how results flow from a datasource to a
//! store, a file or a terminal.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;

use crate::error::Result;
use crate::limits::Truncation;

/// A stream of record batches that all share [`schema`](Self::schema).
///
/// Like every stream, it does nothing until polled, and dropping it stops
/// the work that feeds it.
pub trait BatchStream: Stream<Item = Result<RecordBatch>> + Send {
    /// The schema of every batch in the stream, known before the first batch.
    fn schema(&self) -> SchemaRef;

    /// Set once the stream has ended early because a [`Limits`](crate::Limits)
    /// bound stopped it; `None` while running and when the result is whole.
    fn truncation(&self) -> Option<Truncation> {
        None
    }
}

/// A boxed [`BatchStream`] that can move between tasks.
pub type SendableBatchStream = Pin<Box<dyn BatchStream>>;

/// Gives any stream of batches a schema, making it a [`BatchStream`].
#[derive(Debug)]
pub struct StreamAdapter<S> {
    schema: SchemaRef,
    inner: S,
}

impl<S> StreamAdapter<S>
where
    S: Stream<Item = Result<RecordBatch>> + Send + Unpin + 'static,
{
    /// Wraps `inner`, whose batches must all have `schema`.
    pub fn new(schema: SchemaRef, inner: S) -> Self {
        Self { schema, inner }
    }

    /// Wraps and boxes `inner`.
    pub fn boxed(schema: SchemaRef, inner: S) -> SendableBatchStream {
        Box::pin(Self::new(schema, inner))
    }
}

impl<S> Stream for StreamAdapter<S>
where
    S: Stream<Item = Result<RecordBatch>> + Send + Unpin,
{
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<S> BatchStream for StreamAdapter<S>
where
    S: Stream<Item = Result<RecordBatch>> + Send + Unpin,
{
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// A stream over batches already in memory (tests, small results).
pub fn batches_stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> SendableBatchStream {
    StreamAdapter::boxed(schema, futures::stream::iter(batches.into_iter().map(Ok)))
}

/// Size in bytes of the Arrow data a batch refers to, counting only the
/// sliced part of shared buffers. This is the measure `max_bytes` limits.
pub fn batch_data_size(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| {
            let data = c.to_data();
            data.get_slice_memory_size()
                .unwrap_or_else(|_| c.get_array_memory_size()) as u64
        })
        .sum()
}
