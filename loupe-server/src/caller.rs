//! Who is calling, on every authenticated request: `Authorization: Bearer
//! <access token>` (a session) or `Authorization: Key <API key>`. The
//! checks themselves are the services' (`SessionService::authenticate`,
//! `ApiKeyService::authenticate`); this module reads the header, applies
//! the per-caller rate limit and hands handlers an [`Actor`]. The endpoints
//! that start sessions and make keys are `api::sessions` and
//! `api::api_keys`.
//!
//! It is also where an API key scoped to one saved query is held to the
//! latest-result routes, the one place every authenticated route passes
//! through: [`Auth`], what every route takes, refuses such a key, and only
//! [`ResultsAuth`], what the latest-result routes take, admits it. A new
//! route is closed to these keys unless it opts in. Which query such a key
//! reads is the latest-result service's check (`Actor::require_key_query`),
//! made before it looks the query up.
//!
//! [`ResultsAuth`] also takes the key from the URL (`?api_key=`), because
//! a spreadsheet's import (Google Sheets `IMPORTDATA`) can send nothing
//! but a URL. URLs end up in browser histories and in the logs of proxies
//! on the way (Loupe's own request log leaves the query string out), so
//! only a query-scoped key is accepted there: what leaks is one query's
//! latest results. Any other key in a URL is refused, with a word to
//! revoke it.

use loupe_core::codes;
use std::sync::Arc;

use loupe_services::Actor;
use poem::http::StatusCode;
use poem::http::header::AUTHORIZATION;
use poem::{Request, RequestBody};
use poem_openapi::auth::{ApiKey, Bearer};
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};

use crate::problem::ApiError;
use crate::state::AppState;

/// The query-string parameter that carries an API key on the
/// latest-result routes.
pub(crate) const URL_KEY_PARAM: &str = "api_key";

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

/// A program reading a query's latest results with the key in the URL:
/// `?api_key=<API key>`, for spreadsheet imports that cannot send a
/// header. Only a key scoped to that query is accepted this way. Only
/// documented: [`ResultsAuth`] reads it.
#[derive(Debug, SecurityScheme)]
#[oai(ty = "api_key", key_name = "api_key", key_in = "query")]
pub(crate) struct UrlKeyAuth(
    #[expect(
        dead_code,
        reason = "the scheme is only documented; ResultsAuth reads the key"
    )]
    ApiKey,
);

/// How a caller of a latest-result route (`/queries/{id}/results/latest.*`)
/// authenticates: as [`Auth`], or with `?api_key=`. Unlike [`Auth`], it
/// admits an API key scoped to a query; the service refuses it any query
/// but its own.
#[derive(Debug)]
pub(crate) struct ResultsAuth(Caller);

impl ResultsAuth {
    /// The actor, for core services.
    pub(crate) fn actor(&self) -> &Actor {
        &self.0.actor
    }
}

impl<'a> ApiExtractor<'a> for ResultsAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Auth as ApiExtractor>::register(registry);
        <UrlKeyAuth as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        let mut schemes = <Auth as ApiExtractor>::security_schemes();
        schemes.extend(<UrlKeyAuth as ApiExtractor>::security_schemes());
        schemes
    }

    // Written by hand, not derived: a derived enum of schemes reports the
    // last scheme's error when all fail, which would hide why a key in the
    // header or the URL was refused.
    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if let Some(header) = req.headers().get(AUTHORIZATION) {
            let header = header.to_str().unwrap_or_default();
            return authenticate(req, header, Reach::LatestResults)
                .await
                .map(Self);
        }
        let in_url = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(name, _)| name == URL_KEY_PARAM)
            .map(|(_, key)| key.into_owned());
        match in_url {
            Some(key) => authenticate(req, &format!("Key {key}"), Reach::UrlKey)
                .await
                .map(Self),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                codes::AUTH_MISSING,
                "send `Authorization: Bearer <access token>` or `Authorization: Key <API key>`, \
                 or `?api_key=<API key>` with a key scoped to this query",
            )
            .into()),
        }
    }
}

/// What an authenticated request may reach, for keys scoped to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Any route but the latest-result ones: no query-scoped key.
    Any,
    /// A latest-result route, with the credentials in the `Authorization`
    /// header.
    LatestResults,
    /// A latest-result route, with the key in the URL: only a key scoped
    /// to a query.
    UrlKey,
}

/// Holds a caller to what their credentials reach: a key scoped to a query
/// reads latest results and nothing else, and a key in a URL must be such
/// a key.
fn check_reach(actor: &Actor, reach: Reach) -> Result<(), ApiError> {
    let refuse = |detail: String| {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            codes::ACCESS_SCOPE,
            detail,
        ))
    };
    match (actor.key_query(), reach) {
        (None, Reach::UrlKey) => refuse(
            "only an API key scoped to one query may be sent in a URL (`?api_key=`), since \
             URLs end up in histories and logs; create one with `query_id` for spreadsheets, \
             send this key as `Authorization: Key <API key>`, and revoke it if the URL was \
             shared or stored"
                .to_owned(),
        ),
        (Some(scoped), Reach::Any) => refuse(format!(
            "this API key reads only the latest results of query {scoped}: \
             GET /api/v1/queries/{scoped}/results/latest.csv (or .json, .parquet, .xlsx)"
        )),
        (None, Reach::Any | Reach::LatestResults)
        | (Some(_), Reach::LatestResults | Reach::UrlKey) => Ok(()),
    }
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Caller> {
    authenticate(req, &format!("Bearer {}", bearer.token), Reach::Any).await
}

async fn check_key(req: &Request, key: ApiKey) -> poem::Result<Caller> {
    // The enum tries the bearer scheme first and reports this scheme's
    // error when both fail, so a bad bearer token is checked (and
    // explained) here too.
    authenticate(req, &key.key, Reach::Any).await
}

async fn authenticate(req: &Request, header: &str, reach: Reach) -> poem::Result<Caller> {
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
    loupe_services::error_tracking::set_request_caller(
        &caller.actor.org_id,
        Some(&caller.actor.user_id),
    );
    let who = caller
        .actor
        .key_id()
        .map(|k| format!("key:{k}"))
        .unwrap_or_else(|| format!("user:{}", caller.actor.user_id));
    state.limits.check_caller(&who)?;
    check_reach(&caller.actor, reach)?;
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
