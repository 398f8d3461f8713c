//! The server's tests: in-process through `poem::test::TestClient` (one
//! module per resource), and end to end against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod harness;

mod admin;
mod alert_lists;
mod auth;
mod auth_hardening;
mod backups;
mod content;
mod contract;
mod cors;
mod datasources;
mod deliveries;
mod downloads;
mod edges;
mod end_to_end;
mod error_tracking;
mod file_modes;
mod latest;
mod links;
mod observability;
mod openapi_rules;
mod ops;
#[cfg(feature = "otel")]
mod otel;
mod process;
mod queries;
mod quotas;
mod rls;
mod roles;
mod runs;
mod scale_out;
mod secrets;
mod sharing;
mod tenancy;
mod upgrades;
mod visibility;
