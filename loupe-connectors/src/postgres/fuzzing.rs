//! The PostgreSQL wire decoders, reachable from the fuzz targets through
//! [`crate::fuzzing`]. Thin wrappers only: every call goes to the code a
//! query runs.

use std::ops::Range;

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use tokio_postgres::types::Type;

use super::execute::{Tuple, tuple_at};
use super::types::{self, Column};

/// One result column: its Arrow field and the decoder a query would use.
pub struct PostgresColumn(Column);

impl std::fmt::Debug for PostgresColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresColumn")
            .field("field", &self.0.field)
            .finish_non_exhaustive()
    }
}

impl PostgresColumn {
    /// The column for a value of `ty`, with type modifier `typmod` (-1 when
    /// unknown) and `dims` declared array dimensions (0 when unknown).
    pub fn new(ty: &Type, typmod: i32, dims: usize) -> Self {
        Self(types::column("c", ty, typmod, dims))
    }

    /// The column's Arrow field.
    pub fn field(&self) -> &Field {
        &self.0.field
    }

    /// Appends one binary-format value (`None` is SQL NULL); the error
    /// names what is wrong with the bytes.
    pub fn append(&mut self, raw: Option<&[u8]>) -> Result<(), String> {
        self.0.decoder.append(raw).map_err(|e| e.0)
    }

    /// Everything appended since the last call, as one array.
    pub fn finish(&mut self) -> ArrayRef {
        self.0.decoder.finish()
    }
}

/// A `COPY BINARY` tuple found in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyTuple {
    /// More bytes are needed.
    Incomplete,
    /// The -1 trailer: no more tuples.
    Trailer,
    /// A whole tuple ending at `end`; each field is the range of its bytes
    /// in the buffer, or `None` for NULL.
    Complete {
        /// Where the next tuple starts.
        end: usize,
        /// The fields' byte ranges.
        fields: Vec<Option<Range<usize>>>,
    },
}

/// Splits the `COPY BINARY` tuple starting at `at` in `buffer`, as the
/// COPY reader does; the error says why the tuple is malformed.
pub fn copy_tuple_at(buffer: &[u8], at: usize) -> Result<CopyTuple, String> {
    let mut fields = Vec::new();
    match tuple_at(buffer, at, &mut fields) {
        Ok(Tuple::Incomplete) => Ok(CopyTuple::Incomplete),
        Ok(Tuple::Trailer) => Ok(CopyTuple::Trailer),
        Ok(Tuple::Complete(end)) => Ok(CopyTuple::Complete { end, fields }),
        Err(e) => Err(e.to_string()),
    }
}
