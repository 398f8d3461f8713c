//! (being written)

use std::sync::Arc;

use poem_openapi::{Object, OpenApi};

use crate::state::AppState;

/// Routes.
#[derive(Debug)]
pub(crate) struct SetupApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl SetupApi {}

/// Routes.
#[derive(Debug)]
pub(crate) struct AuthApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl AuthApi {}

/// Routes.
#[derive(Debug)]
pub(crate) struct ApiKeysApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl ApiKeysApi {}
