//! `/setup`: the first start. With the one-time token the server printed
//! (see [`crate::setup_token`]), create the organization and its first
//! admin; the services make both (`OrganizationService::create_with_admin`)
//! and the deployment registers its sample datasource.

use loupe_core::codes;
use std::sync::Arc;

use loupe_services::{Setup, limits};
use poem::Request;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::bounded::{Name, Text};
use super::organization::OrganizationDto;
use super::users::UserDto;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// First start.
#[derive(Debug)]
pub(crate) struct SetupApi(pub(crate) Arc<AppState>);

/// The first organization and its admin, with the set-up token the
/// server printed at start.
#[derive(Debug, Object)]
pub(crate) struct SetupDto {
    /// The one-time token from the server's log.
    pub token: Text<1, { limits::TOKEN }>,
    /// The organization's name.
    pub org_name: Name,
    /// The admin's email.
    pub email: Text<{ limits::EMAIL_MIN }, { limits::EMAIL }>,
    /// The admin's display name.
    pub name: Name,
    /// The admin's password: at least 12 characters; not a common
    /// password, a repeated character or pattern, a simple sequence, or
    /// the admin's name or email.
    pub password: Text<0, { limits::PASSWORD }>,
}

/// What set-up created.
#[derive(Debug, Object)]
pub(crate) struct SetupDoneDto {
    /// The organization.
    pub organization: OrganizationDto,
    /// Its first admin.
    pub admin: UserDto,
}

/// Set-up done.
#[derive(Debug, ApiResponse)]
pub(crate) enum SetupDone {
    /// The organization and its admin exist; sign in at `POST /auth/login`.
    #[oai(status = 201)]
    Created(Json<SetupDoneDto>),
}

#[OpenApi(tag = "ApiTags::Setup")]
impl SetupApi {
    /// Create the first organization and its admin with the one-time
    /// set-up token the server printed at its first start. Works once.
    #[oai(path = "/setup", method = "post", operation_id = "setup")]
    async fn setup(&self, req: &Request, body: Json<SetupDto>) -> ApiResult<SetupDone> {
        let state = &self.0;
        state.check_client(req)?;
        let body = body.0;
        let token = body.token.into_string();
        if !state.setup.take(&token) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                codes::SETUP_CLOSED,
                "set-up is closed or the token is not the one the server printed",
            ));
        }
        let created = state
            .services()
            .organizations
            .create_with_admin(Setup {
                org_name: body.org_name.into(),
                admin_email: body.email.into(),
                admin_name: body.name.into(),
                admin_password: SecretString::from(body.password.into_string()),
            })
            .await;
        let (org, admin) = match created {
            Ok(done) => done,
            Err(e) => {
                // Bad input must not burn the token.
                state.setup.restore(&token);
                return Err(e.into());
            }
        };
        if let Err(e) = state.deployment.register_sample(&admin.id).await {
            tracing::warn!(error = %e, "sample datasource not registered");
        }
        Ok(SetupDone::Created(Json(SetupDoneDto {
            organization: org.into(),
            admin: admin.into(),
        })))
    }
}
