//! Cross-crate tests: connectors, executor and result store together, as
//! an embedding application uses them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod executor;
