//! The MySQL binary-protocol decoders, reachable from the fuzz targets
//! through [`crate::fuzzing`]. Thin wrappers only: every call goes to the
//! code a query runs.

use arrow::array::ArrayRef;
use arrow::datatypes::Field;
use mysql_async::Value;

use super::types::{self, Column, ColumnShape};

/// One result column: its Arrow field and the decoder a query would use.
pub struct MysqlColumn(Column);

impl std::fmt::Debug for MysqlColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlColumn")
            .field("field", &self.0.field)
            .finish_non_exhaustive()
    }
}

impl MysqlColumn {
    /// The column for result-set metadata `column`, as a query builds it.
    pub fn new(column: &mysql_async::Column, tinyint1_as_boolean: bool) -> Self {
        let shape = ColumnShape::from_column(column);
        Self(types::column("c", &shape, tinyint1_as_boolean))
    }

    /// The column's Arrow field.
    pub fn field(&self) -> &Field {
        &self.0.field
    }

    /// Appends one value as the binary protocol gives it (`None` and
    /// `Value::NULL` are SQL NULL); the error names what is wrong.
    pub fn append(&mut self, value: Option<Value>) -> Result<(), String> {
        self.0.decoder.append(value).map_err(|e| e.0)
    }

    /// Everything appended since the last call, as one array; fails on
    /// text that is not UTF-8.
    pub fn finish(&mut self) -> Result<ArrayRef, String> {
        self.0.decoder.finish().map_err(|e| e.0)
    }
}
