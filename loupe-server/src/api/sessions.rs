//! `/auth`: sessions and passwords. Sign in and out, trade a refresh
//! token, see who is calling, change a password or set one with a
//! one-time token. The rules are the services' (`SessionService`,
//! `UserService`); how a request proves who it is, once signed in, is
//! [`crate::caller`].

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{Session, limits};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::bounded::Text;
use super::common::{NoContent, no_store, ts};
use super::organization::OrganizationDto;
use super::users::{RoleDto, UserDto};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Signing in and out, tokens, passwords.
#[derive(Debug)]
pub(crate) struct SessionsApi(pub(crate) Arc<AppState>);

/// A password as sent; the services check the policy.
type Password = Text<0, { limits::PASSWORD }>;

/// A token handed back: a refresh, invitation or reset token.
type Token = Text<0, { limits::TOKEN }>;

/// Email and password.
#[derive(Debug, Object)]
pub(crate) struct LoginDto {
    /// The account's email.
    pub email: Text<0, { limits::EMAIL }>,
    /// The password.
    pub password: Password,
    /// The organization's slug; needed only when several exist.
    #[oai(skip_serializing_if_is_none)]
    pub organization: Option<Text<0, { limits::SLUG }>>,
}

/// A refresh token to trade.
#[derive(Debug, Object)]
pub(crate) struct RefreshDto {
    /// The refresh token from the last login or refresh.
    pub refresh_token: Token,
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
    /// Trade it at `POST /auth/refresh` for new tokens. Traded again
    /// within 30 seconds it gets the same new tokens; later, it ends the
    /// session.
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
    pub current_password: Password,
    /// The new password: at least 12 characters; not a common password, a
    /// repeated character or pattern, a simple sequence, or the user's
    /// name or email.
    pub new_password: Password,
}

/// A one-time token (invitation or reset) and the password to set.
#[derive(Debug, Object)]
pub(crate) struct RedeemDto {
    /// The token from the invitation or reset.
    pub token: Token,
    /// The new password.
    pub password: Password,
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
    TokensResponse::Ok(Json(session.into()), no_store())
}

fn secret(password: Password) -> SecretString {
    SecretString::from(password.into_string())
}

#[OpenApi(prefix_path = "/auth", tag = "ApiTags::Auth")]
impl SessionsApi {
    /// Sign in with email and password: a 15-minute access token and a
    /// refresh token. Every failure answers alike (401
    /// `auth.invalid_credentials`); after repeated failures for an account
    /// from one address, that address waits a while (longer each time)
    /// before its next attempt is checked.
    #[oai(path = "/login", method = "post", operation_id = "login")]
    async fn login(&self, req: &Request, body: Json<LoginDto>) -> ApiResult<TokensResponse> {
        let state = &self.0;
        let ip = state.check_client(req)?;
        let body = body.0;
        let organization = body.organization.as_ref().map(Text::as_str);
        let session = state
            .services()
            .sessions
            .login(
                organization,
                body.email.as_str(),
                &secret(body.password),
                ip.as_deref(),
            )
            .await?;
        Ok(tokens(session))
    }

    /// Trade a refresh token for new tokens. Each refresh token works
    /// once, except that for 30 seconds after it was traded it gets the
    /// same new tokens again (parallel tabs, retries); presenting it later
    /// ends the whole session.
    #[oai(path = "/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(&self, req: &Request, body: Json<RefreshDto>) -> ApiResult<TokensResponse> {
        let state = &self.0;
        let ip = state.check_client(req)?;
        let session = state
            .services()
            .sessions
            .refresh(body.0.refresh_token.as_str(), ip.as_deref())
            .await?;
        Ok(tokens(session))
    }

    /// End the current session: its access and refresh tokens stop working.
    #[oai(path = "/logout", method = "post", operation_id = "logout")]
    async fn logout(&self, auth: Auth) -> ApiResult<NoContent> {
        if let Some(session) = &auth.caller().session_id {
            let sessions = &self.0.services().sessions;
            sessions.logout(auth.actor(), session).await?;
        }
        Ok(NoContent::Done)
    }

    /// Who is calling.
    #[oai(path = "/me", method = "get", operation_id = "me")]
    async fn me(&self, auth: Auth) -> ApiResult<Json<MeDto>> {
        let actor = auth.actor();
        let services = self.0.services();
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

    /// Change the caller's password. Every other session of the user ends,
    /// and every API key of the user is revoked.
    #[oai(path = "/password", method = "post", operation_id = "changePassword")]
    async fn change_password(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<PasswordChangeDto>,
    ) -> ApiResult<NoContent> {
        let state = &self.0;
        state.check_client(req)?;
        let body = body.0;
        let actor = auth.actor();
        let services = state.services();
        services
            .users
            .change_password(
                actor,
                &secret(body.current_password),
                &secret(body.new_password),
                auth.caller().session_id.as_deref(),
            )
            .await?;
        Ok(NoContent::Done)
    }

    /// Set a password with a one-time token from an invitation or a
    /// password reset. Every session of the user ends, and every API key
    /// of the user is revoked.
    #[oai(
        path = "/password-reset",
        method = "post",
        operation_id = "redeemPasswordToken"
    )]
    async fn redeem(&self, req: &Request, body: Json<RedeemDto>) -> ApiResult<NoContent> {
        let state = &self.0;
        state.check_client(req)?;
        let body = body.0;
        state
            .services()
            .users
            .redeem(body.token.as_str(), &secret(body.password))
            .await?;
        Ok(NoContent::Done)
    }
}
