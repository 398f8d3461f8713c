//! Integration tests of loupe-connectors, one binary with a module per
//! connector.

#[cfg(feature = "files")]
mod files;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
