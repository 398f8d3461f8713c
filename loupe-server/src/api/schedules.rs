//! (being written)

use std::sync::Arc;

use poem_openapi::{Object, OpenApi};

use crate::state::AppState;

/// Routes.
#[derive(Debug)]
pub(crate) struct SchedulesApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl SchedulesApi {}

/// (being written)
#[derive(Debug, Object)]
pub(crate) struct ScheduleDto {
    /// Its id.
    pub id: String,
}
