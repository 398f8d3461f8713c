//! (being written)

use std::sync::Arc;

use poem_openapi::{Object, OpenApi};

use crate::state::AppState;

/// Routes.
#[derive(Debug)]
pub(crate) struct AuditApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl AuditApi {}

/// (being written)
#[derive(Debug, Object)]
pub(crate) struct AuditEventDto {
    /// Its id.
    pub id: String,
}
