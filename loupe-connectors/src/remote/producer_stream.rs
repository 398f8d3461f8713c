//! A [`BatchStream`] fed by a task that owns a database connection.
//!
//! Decoding rows on the connection's own task lets it run on one core while
//! the consumer (a Parquet writer, a network response) works on another.
//! The task starts when the stream is first polled, never before. It sees
//! the consumer go away through [`BatchSender::closed`] and is expected to
//! stop the statement on the server then.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures::Stream;
use futures::future::BoxFuture;
use loupe_core::{BatchStream, Result, SendableBatchStream};
use tokio::sync::mpsc;

/// Batches waiting between the producer and the consumer: one being
/// consumed, one ready, one being built keeps both sides busy.
const IN_FLIGHT: usize = 1;

/// The producer's end: sends batches, or the error that ended the stream.
#[derive(Debug)]
pub(crate) struct BatchSender {
    tx: mpsc::Sender<Result<RecordBatch>>,
}

/// The consumer has gone away.
#[derive(Debug)]
pub(crate) struct Closed;

impl BatchSender {
    /// Hands a batch on, waiting while the consumer is busy.
    pub(crate) async fn send(&self, batch: RecordBatch) -> Result<(), Closed> {
        self.tx.send(Ok(batch)).await.map_err(|_| Closed)
    }

    /// Ends the stream with an error (ignored when nobody listens).
    pub(crate) async fn fail(&self, error: loupe_core::Error) {
        let _ = self.tx.send(Err(error)).await;
    }

    /// Resolves when the consumer has dropped the stream.
    pub(crate) async fn closed(&self) {
        self.tx.closed().await;
    }
}

type Start = Box<dyn FnOnce(BatchSender) -> BoxFuture<'static, ()> + Send>;

/// The consumer's end.
pub(crate) struct ProducerStream {
    schema: SchemaRef,
    start: Option<Start>,
    rx: Option<mpsc::Receiver<Result<RecordBatch>>>,
}

impl ProducerStream {
    /// A stream of `schema` whose batches come from `produce`, spawned on
    /// the first poll.
    pub(crate) fn boxed<F>(schema: SchemaRef, produce: F) -> SendableBatchStream
    where
        F: FnOnce(BatchSender) -> BoxFuture<'static, ()> + Send + 'static,
    {
        Box::pin(Self {
            schema,
            start: Some(Box::new(produce)),
            rx: None,
        })
    }
}

impl Stream for ProducerStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(start) = self.start.take() {
            let (tx, rx) = mpsc::channel(IN_FLIGHT);
            tokio::spawn(start(BatchSender { tx }));
            self.rx = Some(rx);
        }
        match self.rx.as_mut() {
            Some(rx) => rx.poll_recv(cx),
            None => Poll::Ready(None),
        }
    }
}

impl BatchStream for ProducerStream {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}
