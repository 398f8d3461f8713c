//! (being written)

use std::sync::Arc;

use poem_openapi::{Object, OpenApi};

use crate::state::AppState;

/// Routes.
#[derive(Debug)]
pub(crate) struct DatasourcesApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl DatasourcesApi {}

/// (being written)
#[derive(Debug, Object)]
pub(crate) struct DatasourceDto {
    /// Its id.
    pub id: String,
}
