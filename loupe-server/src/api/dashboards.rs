//! (being written)

use std::sync::Arc;

use poem_openapi::{Object, OpenApi};

use crate::state::AppState;

/// Routes.
#[derive(Debug)]
pub(crate) struct DashboardsApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl DashboardsApi {}

/// (being written)
#[derive(Debug, Object)]
pub(crate) struct DashboardDto {
    /// Its id.
    pub id: String,
}
