//! `/setup`, `/auth` and `/api-keys`: first start, signing in, tokens,
//! passwords and API keys.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{ApiKey, Scope, Session, Setup};
use poem::Request;
use poem::http::StatusCode;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::admin::{OrganizationDto, RoleDto, UserDto};
use super::common::{NoContent, micros, ts, ts_opt};
use crate::auth::Auth;
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// First start.
#[derive(Debug)]
pub(crate) struct SetupApi(pub(crate) Arc<AppState>);

/// Signing in and out, tokens, passwords.
#[derive(Debug)]
pub(crate) struct AuthApi(pub(crate) Arc<AppState>);

/// API keys.
#[derive(Debug)]
pub(crate) struct ApiKeysApi(pub(crate) Arc<AppState>);

/// The first organization and its admin, with the set-up token the
/// server printed at start.
#[derive(Debug, Object)]
pub(crate) struct SetupDto {
    /// The one-time token from the server's log.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub token: String,
    /// The organization's name.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub org_name: String,
    /// The admin's email.
    #[oai(validator(min_length = 3, max_length = 320))]
    pub email: String,
    /// The admin's display name.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// The admin's password (at least 12 characters).
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// What set-up created.
#[derive(Debug, Object)]
pub(crate) struct SetupDoneDto {
    /// The organization.
    pub organization: OrganizationDto,
    /// Its first admin.
    pub admin: UserDto,
}

/// Email and password.
#[derive(Debug, Object)]
pub(crate) struct LoginDto {
    /// The account's email.
    #[oai(validator(max_length = 320))]
    pub email: String,
    /// The password.
    #[oai(validator(max_length = 1024))]
    pub password: String,
    /// The organization's slug; needed only when several exist.
    #[oai(skip_serializing_if_is_none, validator(max_length = 100))]
    pub organization: Option<String>,
}

/// A refresh token to trade.
#[derive(Debug, Object)]
pub(crate) struct RefreshDto {
    /// The refresh token from the last login or refresh.
    #[oai(validator(max_length = 200))]
    pub refresh_token: String,
}

/// The tokens of a session.
#[derive(Debug, Object)]
pub(crate) struct TokensDto {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Trade it once at `POST /auth/refresh` for new tokens. Using it a
    /// second time ends the session.
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: UserDto,
}

impl From<Session> for TokensDto {
    fn from(s: Session) -> Self {
        let now = chrono::Utc::now().timestamp_micros();
        Self {
            expires_in: ((s.access_expires_at - now) / 1_000_000).max(0),
            access_token: s.access_token,
            token_type: "Bearer".to_owned(),
            refresh_token: s.refresh_token,
            refresh_expires_at: ts(s.refresh_expires_at),
            user: s.user.into(),
        }
    }
}

/// The caller: user, organization and how they authenticated.
#[derive(Debug, Object)]
pub(crate) struct MeDto {
    /// The user (the key's owner for an API key).
    pub user: UserDto,
    /// Their organization.
    pub organization: OrganizationDto,
    /// The role in effect (an API key's scopes can lower it).
    pub effective_role: RoleDto,
    /// The groups they belong to.
    pub groups: Vec<String>,
    /// `session` or `api_key`.
    pub via: String,
    /// The API key's id, when called with one.
    #[oai(skip_serializing_if_is_none)]
    pub api_key_id: Option<String>,
}

/// A password change.
#[derive(Debug, Object)]
pub(crate) struct PasswordChangeDto {
    /// The current password.
    #[oai(validator(max_length = 1024))]
    pub current_password: String,
    /// The new password (at least 12 characters, not the email).
    #[oai(validator(max_length = 1024))]
    pub new_password: String,
}

/// A one-time token (invitation or reset) and the password to set.
#[derive(Debug, Object)]
pub(crate) struct RedeemDto {
    /// The token from the invitation or reset.
    #[oai(validator(max_length = 200))]
    pub token: String,
    /// The new password.
    #[oai(validator(max_length = 1024))]
    pub password: String,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum ScopeDto {
    /// Read objects and results.
    Read,
    /// Also run queries.
    Run,
    /// Also create and change objects.
    Write,
    /// Also administer (if the owner is an admin).
    Admin,
}

impl From<ScopeDto> for Scope {
    fn from(s: ScopeDto) -> Self {
        match s {
            ScopeDto::Read => Self::Read,
            ScopeDto::Run => Self::Run,
            ScopeDto::Write => Self::Write,
            ScopeDto::Admin => Self::Admin,
        }
    }
}

impl From<Scope> for ScopeDto {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Read => Self::Read,
            Scope::Run => Self::Run,
            Scope::Write => Self::Write,
            Scope::Admin => Self::Admin,
        }
    }
}

/// A new API key.
#[derive(Debug, Object)]
pub(crate) struct NewApiKeyDto {
    /// A name to recognize it by.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// What it may do; never more than its owner's role.
    #[oai(validator(min_items = 1, max_items = 4))]
    pub scopes: Vec<ScopeDto>,
    /// When it stops working; never, if absent.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// An API key as listed: never the secret.
#[derive(Debug, Object)]
pub(crate) struct ApiKeyDto {
    /// Its id.
    pub id: String,
    /// Its owner.
    pub user_id: String,
    /// Its name.
    pub name: String,
    /// The visible start of the key, to recognize it.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<ScopeDto>,
    /// When it was last used (to the minute).
    #[oai(skip_serializing_if_is_none)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    #[oai(skip_serializing_if_is_none)]
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<ApiKey> for ApiKeyDto {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            user_id: k.user_id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes.into_iter().map(Into::into).collect(),
            last_used_at: ts_opt(k.last_used_at),
            expires_at: ts_opt(k.expires_at),
            revoked_at: ts_opt(k.revoked_at),
            created_at: ts(k.created_at),
        }
    }
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Object)]
pub(crate) struct CreatedApiKeyDto {
    /// The key as it will be listed.
    pub key: ApiKeyDto,
    /// Send as `Authorization: Key <secret>`. Shown once; store it now.
    pub secret: String,
}

/// A created API key.
#[derive(Debug, ApiResponse)]
pub(crate) enum CreatedKey {
    /// Created; the secret is in the body, once.
    #[oai(status = 201)]
    Created(
        Json<CreatedApiKeyDto>,
        /// Keys are secrets: never cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// Session tokens (never cached).
#[derive(Debug, ApiResponse)]
pub(crate) enum TokensResponse {
    /// Signed in.
    #[oai(status = 200)]
    Ok(
        Json<TokensDto>,
        /// Tokens are secrets: never cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

fn tokens(session: Session) -> TokensResponse {
    TokensResponse::Ok(Json(session.into()), "no-store".to_owned())
}

fn secret(text: String) -> SecretString {
    SecretString::from(text)
}

#[OpenApi(tag = "ApiTags::Setup")]
impl SetupApi {
    /// Create the first organization and its admin with the one-time
    /// set-up token the server printed at its first start. Works once.
    #[oai(path = "/setup", method = "post", operation_id = "setup")]
    async fn setup(&self, req: &Request, body: Json<SetupDto>) -> ApiResult<SetupDone> {
        let state = &self.0;
        state.limits.check_ip(state.client_ip(req).as_deref())?;
        let body = body.0;
        if !state.setup.take(&body.token) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "setup.closed",
                "set-up is closed or the token is not the one the server printed",
            ));
        }
        let created = state
            .deployment
            .services
            .organizations
            .create_with_admin(Setup {
                org_name: body.org_name,
                admin_email: body.email,
                admin_name: body.name,
                admin_password: secret(body.password),
            })
            .await;
        let (org, admin) = match created {
            Ok(done) => done,
            Err(e) => {
                // Bad input must not burn the token.
                state.setup.restore(&body.token);
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

/// Set-up done.
#[derive(Debug, ApiResponse)]
pub(crate) enum SetupDone {
    /// The organization and its admin exist; sign in at `POST /auth/login`.
    #[oai(status = 201)]
    Created(Json<SetupDoneDto>),
}

#[OpenApi(prefix_path = "/auth", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Sign in with email and password: a 15-minute access token and a
    /// refresh token. Repeated failures lock the account for a while.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(&self, req: &Request, body: Json<LoginDto>) -> ApiResult<TokensResponse> {
        let state = &self.0;
        let ip = state.client_ip(req);
        state.limits.check_ip(ip.as_deref())?;
        let body = body.0;
        let session = state
            .deployment
            .services
            .sessions
            .login(
                body.organization.as_deref(),
                &body.email,
                &secret(body.password),
                ip.as_deref(),
            )
            .await?;
        Ok(tokens(session))
    }

    /// Trade a refresh token for new tokens. Each refresh token works
    /// once; presenting a used one ends the whole session.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(&self, req: &Request, body: Json<RefreshDto>) -> ApiResult<TokensResponse> {
        let state = &self.0;
        let ip = state.client_ip(req);
        state.limits.check_ip(ip.as_deref())?;
        let session = state
            .deployment
            .services
            .sessions
            .refresh(&body.0.refresh_token, ip.as_deref())
            .await?;
        Ok(tokens(session))
    }

    /// End the current session: its access and refresh tokens stop working.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: Auth) -> ApiResult<NoContent> {
        if let Some(session) = &auth.caller().session_id {
            self.0
                .deployment
                .services
                .sessions
                .logout(auth.actor(), session)
                .await?;
        }
        Ok(NoContent::Done)
    }

    /// Who is calling.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, auth: Auth) -> ApiResult<Json<MeDto>> {
        let actor = auth.actor();
        let services = &self.0.deployment.services;
        let user = services.users.get(actor, &actor.user_id).await?;
        let org = services.organizations.current(actor).await?;
        Ok(Json(MeDto {
            user: user.into(),
            organization: org.into(),
            effective_role: actor.effective_role().into(),
            groups: actor.groups.clone(),
            via: if actor.key_id().is_some() {
                "api_key"
            } else {
                "session"
            }
            .to_owned(),
            api_key_id: actor.key_id().map(str::to_owned),
        }))
    }

    /// Change the caller's password. Other sessions of the user end.
    #[oai(path = "/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<PasswordChangeDto>,
    ) -> ApiResult<NoContent> {
        let state = &self.0;
        state.limits.check_ip(state.client_ip(req).as_deref())?;
        let body = body.0;
        let actor = auth.actor();
        state
            .deployment
            .services
            .users
            .change_password(
                actor,
                &secret(body.current_password),
                &secret(body.new_password),
            )
            .await?;
        state
            .deployment
            .services
            .sessions
            .end_all(&actor.user_id, auth.caller().session_id.as_deref())
            .await?;
        Ok(NoContent::Done)
    }

    /// Set a password with a one-time token from an invitation or a
    /// password reset. Every session of the user ends.
    #[oai(
        path = "/password-reset",
        method = "post",
        operation_id = "redeemPasswordToken"
    )]
    async fn redeem(&self, req: &Request, body: Json<RedeemDto>) -> ApiResult<NoContent> {
        let state = &self.0;
        state.limits.check_ip(state.client_ip(req).as_deref())?;
        let body = body.0;
        let user = state
            .deployment
            .services
            .users
            .redeem(&body.token, &secret(body.password))
            .await?;
        state
            .deployment
            .services
            .sessions
            .end_all(&user.id, None)
            .await?;
        Ok(NoContent::Done)
    }
}

#[OpenApi(prefix_path = "/api-keys", tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key for the signed-in user. The secret is in this
    /// response only.
    #[oai(path = "/", method = "post", operation_id = "createApiKey")]
    async fn create(&self, auth: Auth, body: Json<NewApiKeyDto>) -> ApiResult<CreatedKey> {
        let body = body.0;
        let scopes: Vec<Scope> = body.scopes.into_iter().map(Into::into).collect();
        let created = self
            .0
            .deployment
            .services
            .api_keys
            .create(
                auth.actor(),
                &body.name,
                &scopes,
                body.expires_at.map(micros),
            )
            .await?;
        Ok(CreatedKey::Created(
            Json(CreatedApiKeyDto {
                key: created.key.into(),
                secret: created.secret,
            }),
            "no-store".to_owned(),
        ))
    }

    /// The caller's API keys (prefix only); `all=true` lists everyone's
    /// (admins).
    #[oai(path = "/", method = "get", operation_id = "listApiKeys")]
    async fn list(&self, auth: Auth, all: Query<Option<bool>>) -> ApiResult<Json<Vec<ApiKeyDto>>> {
        let keys = self
            .0
            .deployment
            .services
            .api_keys
            .list(auth.actor(), all.0.unwrap_or(false))
            .await?;
        Ok(Json(keys.into_iter().map(Into::into).collect()))
    }

    /// Revoke an API key: it stops working at once.
    #[oai(path = "/:id", method = "delete", operation_id = "revokeApiKey")]
    async fn revoke(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .deployment
            .services
            .api_keys
            .revoke(auth.actor(), &id)
            .await?;
        Ok(NoContent::Done)
    }
}
