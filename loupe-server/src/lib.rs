//! `loupe-server`: Loupe's HTTP host. It parses requests, calls the core
//! services and maps their results; every rule lives in `loupe-core`.
//!
//! - [`Config`]: defaults < TOML file < `LOUPE_*` environment.
//! - [`Server`]: opens the stores, bootstraps a first start, and runs the
//!   API, runner and scheduler for the configured role.
//! - [`app`]: the HTTP application over an [`AppState`], for tests and
//!   embedding.

// Handlers return `ApiError` by value, as poem-openapi's responses are
// enums; boxing it would only move the allocation.
#![allow(clippy::result_large_err)]

mod api;
mod auth;
pub mod config;
mod middleware;
mod ops;
mod problem;
mod setup;
mod startup;
mod state;
pub mod telemetry;

pub use config::{Config, ServerRole};
pub use problem::{ApiError, Problem};
pub use startup::{Server, app};
pub use state::AppState;
