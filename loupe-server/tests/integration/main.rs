//! The server's tests: in-process through `poem::test::TestClient` (one
//! module per resource), and end to end against the real binary.

mod harness;

mod admin;
mod auth;
mod content;
mod datasources;
mod end_to_end;
mod ops;
mod queries;
mod runs;
