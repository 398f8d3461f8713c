//! Loupe: a SQL analytics backend as a library.
//!
//! This facade re-exports [`loupe_core`] and the connectors enabled by cargo
//! features (`files`; `postgres` and `mysql` as they land), the way `sqlx`
//! fronts its drivers:
//!
//! ```toml
//! loupe = { version = "0.1", features = ["files"] }
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
