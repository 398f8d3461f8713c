//! `loupe-server`: Loupe's HTTP host. It parses requests, calls the
//! services and maps their results; every rule lives in `loupe-services`,
//! and the limits the API documents are derived from its definitions.
//!
//! - [`Config`]: defaults < TOML file < `LOUPE_*` environment.
//! - [`Server`]: opens the stores, bootstraps a first start, and runs the
//!   API, runner and scheduler for the configured role.
//! - [`app`]: the HTTP application over an [`AppState`], for tests and
//!   embedding.
//! - [`cli`]: the command line: serving, and the `migrate`, `backup` and
//!   `restore` commands.
//!
//! Inside: `api` (the `/api/v1` routes, one module per resource), `caller`
//! (who is calling: bearer tokens and API keys), `problem` (errors as
//! problem+json), `middleware` and `ops` (request ids, metrics, health),
//! `setup_token` (the one-time token of a first start), `server` (from a
//! configuration to a running process) and `state` (what requests share).

// Handlers return `ApiError` by value, as poem-openapi's responses are
// enums; boxing it would only move the allocation.
#![allow(clippy::result_large_err)]

mod api;
mod caller;
pub mod cli;
pub mod config;
mod middleware;
mod ops;
mod problem;
mod server;
mod setup_token;
mod state;
pub mod telemetry;

pub use config::{Config, ServerRole};
pub use problem::{ApiError, Problem};
pub use server::{Server, app};
pub use state::AppState;
