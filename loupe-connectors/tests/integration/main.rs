//! Integration tests of loupe-connectors, one binary: the contract every
//! connector meets (one table of cases, run on every kind), then a module
//! per connector for what only that connector does, and the files
//! datasource's SQL behaviour as sqllogictest files (`slt`, over
//! `tests/slt/*.slt`).

#[macro_use]
mod support;

mod contract;
#[cfg(feature = "files")]
mod files;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "files")]
mod slt;
mod store_types;
