//! loupe-charts' tests, one binary: each type drawn over small results,
//! the edges (empty, NULLs, truncation, hostile text, errors, sizes), the
//! PNGs, a property test, and the examples in `docs/charts/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod edges;
mod examples;
mod properties;
mod raster;
mod support;
mod types;
