//! Loupe: a SQL analytics backend as a library.
//!
//! This facade re-exports the engine ([`loupe_core`]) and the connectors
//! enabled by cargo features (`files`, `postgres`, `mysql`), the way `sqlx`
//! fronts its drivers; the application (metadata store, services, runner,
//! `Deployment`) comes with the `services` feature, so an embedder that only
//! reads data into Parquet compiles no SQLite, argon2 or JWT:
//!
//! ```toml
//! loupe = { version = "0.1", default-features = false, features = ["postgres"] }
//! ```
//!
//! See the README for a runnable example.

pub use loupe_connectors as connectors;
pub use loupe_connectors::registry;
pub use loupe_core::*;
/// The application (metadata store, services, runner), with the `services`
/// feature.
#[cfg(feature = "services")]
pub use loupe_services as services;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
