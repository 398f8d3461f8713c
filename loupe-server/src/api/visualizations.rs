//! (being written)

use std::sync::Arc;

use poem_openapi::{Object, OpenApi};

use crate::state::AppState;

/// Routes.
#[derive(Debug)]
pub(crate) struct VisualizationsApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl VisualizationsApi {}

/// (being written)
#[derive(Debug, Object)]
pub(crate) struct VisualizationDto {
    /// Its id.
    pub id: String,
}
