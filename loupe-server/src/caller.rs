//! Who is calling, on every authenticated request: `Authorization: Bearer
//! <access token>` (a session) or `Authorization: Key <API key>`. The
//! checks themselves are the services' (`SessionService::authenticate`,
//! `ApiKeyService::authenticate`); this module reads the header, applies
//! the per-caller rate limit and hands handlers an [`Actor`]. The endpoints
//! that start sessions and make keys are `api::sessions` and
//! `api::api_keys`.

use loupe_core::codes;
use std::sync::Arc;

use loupe_services::Actor;
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};

use crate::problem::ApiError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// Who they are and what they may do.
    pub actor: Actor,
    /// The session, when they came with an access token.
    pub session_id: Option<String>,
}

/// A signed-in user: `Authorization: Bearer <access token>` from
/// `POST /auth/login` or `POST /auth/refresh`.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "bearer", bearer_format = "JWT", checker = "check_bearer")]
pub(crate) struct BearerAuth(Caller);

/// A program: `Authorization: Key <API key>` from `POST /api-keys`.
#[derive(Debug, SecurityScheme)]
#[oai(
    ty = "api_key",
    key_name = "Authorization",
    key_in = "header",
    checker = "check_key"
)]
pub(crate) struct KeyAuth(Caller);

/// Either way of authenticating.
#[derive(Debug, SecurityScheme)]
pub(crate) enum Auth {
    /// An access token.
    Bearer(BearerAuth),
    /// An API key.
    Key(KeyAuth),
}

impl Auth {
    /// The caller.
    pub(crate) fn caller(&self) -> &Caller {
        match self {
            Self::Bearer(BearerAuth(c)) | Self::Key(KeyAuth(c)) => c,
        }
    }

    /// The actor, for core services.
    pub(crate) fn actor(&self) -> &Actor {
        &self.caller().actor
    }
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    authenticate(req, &format!("Bearer {}", bearer.token)).await
}

async fn check_key(req: &Request, key: ApiKey) -> poem::Result<Caller> {
    // The enum tries the bearer scheme first and reports this scheme's
    // error when both fail, so a bad bearer token is checked (and
    // explained) here too.
    authenticate(req, &key.key).await
}

async fn authenticate(req: &Request, header: &str) -> poem::Result<Caller> {
    let state = state(req)?;
    let ip = state.client_ip(req);
    let caller = if let Some(token) = header.strip_prefix("Bearer ") {
        let (actor, session) = state
            .deployment
            .services
            .sessions
            .authenticate(token.trim(), ip.as_deref())
            .await
            .map_err(ApiError::from)?;
        Caller {
            actor,
            session_id: Some(session),
        }
    } else if let Some(key) = header.strip_prefix("Key ") {
        let actor = state
            .deployment
            .services
            .api_keys
            .authenticate(key.trim(), ip.as_deref())
            .await
            .map_err(ApiError::from)?;
        Caller {
            actor,
            session_id: None,
        }
    } else {
        return Err(ApiError::new(
            poem::http::StatusCode::UNAUTHORIZED,
            codes::AUTH_MISSING,
            "send `Authorization: Bearer <access token>` or `Authorization: Key <API key>`",
        )
        .into());
    };
    let who = caller
        .actor
        .key_id()
        .map(|k| format!("key:{k}"))
        .unwrap_or_else(|| format!("user:{}", caller.actor.user_id));
    state.limits.check_caller(&who)?;
    Ok(caller)
}

/// The server state a request carries.
pub(crate) fn state(req: &Request) -> poem::Result<&Arc<AppState>> {
    req.data::<Arc<AppState>>().ok_or_else(|| {
        ApiError::new(
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            codes::INTERNAL,
            "server state missing",
        )
        .into()
    })
}
