//! `/api-keys`: keys for programs, made by a signed-in user. The secret is
//! shown once, when the key is made; the services keep only its hash and
//! decide what its scopes allow (`ApiKeyService`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{ApiKey, Scope};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::bounded::Name;
use super::common::{NoContent, micros, no_store, same_variants, ts, ts_opt};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// API keys.
#[derive(Debug)]
pub(crate) struct ApiKeysApi(pub(crate) Arc<AppState>);

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

same_variants!(ScopeDto, Scope: Read, Run, Write, Admin);

/// A new API key.
#[derive(Debug, Object)]
pub(crate) struct NewApiKeyDto {
    /// A name to recognize it by.
    pub name: Name,
    /// What it may do; never more than its owner's role.
    #[oai(validator(min_items = 1, max_items = 4))]
    pub scopes: Vec<ScopeDto>,
    /// When it stops working; never, if absent.
    #[oai(skip_serializing_if_is_none)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Scope the key to this saved query (one the caller can see): it
    /// then reads the query's latest results
    /// (`GET /queries/{id}/results/latest.csv` and the other formats,
    /// also with the key in the URL as `?api_key=`) and is refused
    /// everything else. Its scopes must be `["read"]`.
    #[oai(skip_serializing_if_is_none)]
    pub query_id: Option<String>,
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
    /// The saved query whose latest results it reads, and nothing else,
    /// when it is scoped to one.
    #[oai(skip_serializing_if_is_none)]
    pub query_id: Option<String>,
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
            query_id: k.query_id,
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

#[OpenApi(prefix_path = "/api-keys", tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Create an API key for the signed-in user. The secret is in this
    /// response only. With `query_id`, the key reads that query's latest
    /// results and nothing else: the key to put in a spreadsheet.
    #[oai(path = "/", method = "post", operation_id = "createApiKey")]
    async fn create(&self, auth: Auth, body: Json<NewApiKeyDto>) -> ApiResult<CreatedKey> {
        let body = body.0;
        let scopes: Vec<Scope> = body.scopes.into_iter().map(Into::into).collect();
        let expires_at = body.expires_at.map(micros);
        let created = self
            .0
            .services()
            .api_keys
            .create_with_query(
                auth.actor(),
                body.name.as_str(),
                &scopes,
                expires_at,
                body.query_id.as_deref(),
            )
            .await?;
        Ok(CreatedKey::Created(
            Json(CreatedApiKeyDto {
                key: created.key.into(),
                secret: created.secret,
            }),
            no_store(),
        ))
    }

    /// The caller's API keys (prefix only); `all=true` lists everyone's
    /// (admins).
    #[oai(path = "/", method = "get", operation_id = "listApiKeys")]
    async fn list(&self, auth: Auth, all: Query<Option<bool>>) -> ApiResult<Json<Vec<ApiKeyDto>>> {
        let api_keys = &self.0.services().api_keys;
        let keys = api_keys.list(auth.actor(), all.0.unwrap_or(false)).await?;
        Ok(Json(keys.into_iter().map(Into::into).collect()))
    }

    /// Revoke an API key: it stops working at once.
    #[oai(path = "/:id", method = "delete", operation_id = "revokeApiKey")]
    async fn revoke(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0.services().api_keys.revoke(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }
}
