//! The wide table's rows as an iterator of batches, for the examples that
//! store or evaluate a generated result.

use loupe::deps::arrow::array::RecordBatch;
use loupe::deps::arrow::datatypes::SchemaRef;

use super::wide::{BATCH_ROWS, Rng, WIDE_SEED, wide_batch, wide_schema};

/// Batches of the wide table, made one at a time as they are asked for.
pub(crate) struct WideBatches {
    /// The table's schema.
    pub(crate) schema: SchemaRef,
    rng: Rng,
    next: u64,
    rows: u64,
}

impl WideBatches {
    /// The first `rows` rows.
    pub(crate) fn new(rows: u64) -> Self {
        Self {
            schema: wide_schema(),
            rng: Rng(WIDE_SEED),
            next: 0,
            rows,
        }
    }
}

impl Iterator for WideBatches {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        if self.next >= self.rows {
            return None;
        }
        let start = self.next;
        let n = BATCH_ROWS.min(self.rows - start);
        self.next += n;
        // The columns match the schema by construction.
        let batch = wide_batch(&self.schema, &mut self.rng, start, n)
            .unwrap_or_else(|e| panic!("generated batch does not match its schema: {e}"));
        Some(batch)
    }
}
