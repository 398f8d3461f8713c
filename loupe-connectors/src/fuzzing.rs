//! Entry points for the fuzz targets in `fuzz/`: thin wrappers over the
//! connectors' wire decoders, which are otherwise private. Compiled only
//! with the `fuzzing` feature and hidden from the documentation: this is
//! not API, and may change with the decoders.

#[cfg(feature = "mysql")]
pub use crate::mysql::fuzzing::MysqlColumn;
#[cfg(feature = "postgres")]
pub use crate::postgres::fuzzing::{CopyTuple, PostgresColumn, copy_tuple_at};

/// The driver types the wrappers take, so that a fuzz target names the
/// same versions the connectors are built with.
#[cfg(feature = "mysql")]
pub use mysql_async::{
    Column as MysqlColumnMeta, Value as MysqlValue,
    consts::{ColumnFlags as MysqlColumnFlags, ColumnType as MysqlColumnType},
};
#[cfg(feature = "postgres")]
pub use tokio_postgres::types::{
    Field as PostgresField, Kind as PostgresKind, Type as PostgresType,
};
