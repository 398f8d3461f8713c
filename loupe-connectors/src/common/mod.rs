//! Pieces the database connectors share: pool and batch settings, and the
//! stream that carries batches from a connection task to the caller.

pub(crate) mod decode;
pub(crate) mod error;
pub(crate) mod producer;
pub(crate) mod settings;
