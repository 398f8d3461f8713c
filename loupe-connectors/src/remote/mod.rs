//! What the connectors to database servers over the network (`postgres`,
//! `mysql`) share, so that each rule is written once: the options they all
//! take, how rows become Arrow batches, how a server's failures become
//! Loupe errors (a role that may do more than read among them), the
//! stream fed by a connection's task, a catalog assembled from rows, and
//! which certificate files may be read.
//!
//! Nothing here knows a wire protocol or a driver; that stays in the
//! connector's own module.

pub(crate) mod batch;
pub(crate) mod catalog;
pub(crate) mod certificate_files;
pub(crate) mod producer_stream;
pub(crate) mod server_errors;
pub(crate) mod server_options;
