//! (being written)

use std::sync::Arc;

use poem_openapi::{Object, OpenApi};

use crate::state::AppState;

/// Routes.
#[derive(Debug)]
pub(crate) struct CanvasesApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl CanvasesApi {}

/// (being written)
#[derive(Debug, Object)]
pub(crate) struct CanvasDto {
    /// Its id.
    pub id: String,
}
