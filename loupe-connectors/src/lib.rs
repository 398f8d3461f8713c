//! Loupe's datasource connectors: one module per kind, each behind the cargo
//! feature of the same name.
//!
//! [`registry()`] returns a [`Registry`] with every enabled connector.
//! Adding a connector is one module and one line there.
//!
//! ```
//! # #[cfg(feature = "files")]
//! # fn main() -> loupe_core::Result<()> {
//! let registry = loupe_connectors::registry();
//! assert!(registry.kinds().any(|k| k == "files"));
//! let err = registry.from_url("mssql://db/sales").unwrap_err();
//! assert!(err.to_string().starts_with("no connector for \"mssql\"; enabled: "));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "files"))]
//! # fn main() {}
//! ```

#[cfg(feature = "files")]
pub mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(any(feature = "files", feature = "postgres", feature = "mysql"))]
mod option_specs;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod remote;

use loupe_core::Registry;

/// A registry holding every connector compiled into this build, each
/// unconfined, as befits a local tool: a files root and a certificate file
/// may be anywhere. A host that lets others define datasources registers
/// `files::FilesFactory::within`, `postgres::PostgresFactory::certificates_within`
/// and `mysql::MysqlFactory::certificates_within` over these.
pub fn registry() -> Registry {
    #[allow(unused_mut)]
    let mut registry = Registry::new();
    #[cfg(feature = "files")]
    registry.register(std::sync::Arc::new(files::FilesFactory::default()));
    #[cfg(feature = "postgres")]
    registry.register(std::sync::Arc::new(postgres::PostgresFactory::default()));
    #[cfg(feature = "mysql")]
    registry.register(std::sync::Arc::new(mysql::MysqlFactory::default()));
    registry
}
