//! Signed embedding: the organization's embedding secrets
//! (`/embedding/secrets`, admins) and `/embed/{token}`, the page a host
//! application's signed token opens, shaped as a public link's page. The
//! token's format and every check of it are the services'
//! (`EmbeddingService`); `docs/sharing.md` documents them for hosts.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_core::{Error, codes};
use loupe_services::EmbeddingSecret;
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use super::common::{NoContent, no_store, ts, ts_opt};
use super::public::PublicPageResponse;
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Embedding secrets and embedded pages.
#[derive(Debug)]
pub(crate) struct EmbeddingApi(pub(crate) Arc<AppState>);

/// An embedding secret as listed: never the secret itself.
#[derive(Debug, Object)]
pub(crate) struct EmbeddingSecretDto {
    /// Its id: the `kid` of the tokens it signs.
    pub id: String,
    /// Who made it.
    #[oai(skip_serializing_if_is_none)]
    pub created_by: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it was retired: tokens it signed are refused from then.
    #[oai(skip_serializing_if_is_none)]
    pub retired_at: Option<DateTime<Utc>>,
    /// It signs tokens that are accepted.
    pub active: bool,
}

impl From<EmbeddingSecret> for EmbeddingSecretDto {
    fn from(s: EmbeddingSecret) -> Self {
        Self {
            active: s.retired_at.is_none(),
            id: s.id,
            created_by: s.created_by,
            created_at: ts(s.created_at),
            retired_at: ts_opt(s.retired_at),
        }
    }
}

/// A secret just made: the only time its value is shown.
#[derive(Debug, Object)]
pub(crate) struct NewEmbeddingSecretDto {
    /// The secret as it will be listed; its `id` is the tokens' `kid`.
    pub secret: EmbeddingSecretDto,
    /// The HS256 key, as text: sign with its UTF-8 bytes as they are (do
    /// not decode it). Shown once; Loupe keeps it sealed.
    pub value: String,
    /// Secrets this one retired: at most two are active, so making a
    /// third retires the oldest.
    pub retired: Vec<String>,
}

/// A secret made.
#[derive(Debug, ApiResponse)]
pub(crate) enum SecretCreated {
    /// Made; the secret's value is in the body, once.
    #[oai(status = 201)]
    Created(
        Json<NewEmbeddingSecretDto>,
        /// Secrets are never cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[OpenApi(tag = "ApiTags::Sharing")]
impl EmbeddingApi {
    /// Make an embedding secret (admins).
    ///
    /// A host application signs embedding tokens with it (HS256, its id as
    /// `kid`). At most two secrets are active: making a third retires the
    /// oldest, so a host moves to the new one before the old one stops
    /// working. The value is in this response only.
    #[oai(
        path = "/embedding/secrets",
        method = "post",
        operation_id = "createEmbeddingSecret"
    )]
    async fn create(&self, auth: Auth) -> ApiResult<SecretCreated> {
        let embedding = &self.0.services().embedding;
        let created = embedding.create_secret(auth.actor()).await?;
        Ok(SecretCreated::Created(
            Json(NewEmbeddingSecretDto {
                secret: created.secret.into(),
                value: created.value,
                retired: created.retired,
            }),
            no_store(),
        ))
    }

    /// List the organization's embedding secrets, newest first (admins;
    /// never their values).
    #[oai(
        path = "/embedding/secrets",
        method = "get",
        operation_id = "listEmbeddingSecrets"
    )]
    async fn list(&self, auth: Auth) -> ApiResult<Json<Vec<EmbeddingSecretDto>>> {
        let secrets = self.0.services().embedding.secrets(auth.actor()).await?;
        Ok(Json(secrets.into_iter().map(Into::into).collect()))
    }

    /// Retire an embedding secret (admins): tokens it signed are refused
    /// from now on (`embed.retired_secret`).
    #[oai(
        path = "/embedding/secrets/:id",
        method = "delete",
        operation_id = "retireEmbeddingSecret"
    )]
    async fn retire(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        let embedding = &self.0.services().embedding;
        embedding.retire_secret(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }

    /// Open the page an embedding token names, without signing in.
    ///
    /// The token (a JWT signed with HS256 by an active embedding secret,
    /// see docs/sharing.md) names a dashboard or a visualization, locks its
    /// parameter values, and may give user attributes for row-level
    /// security. The page has the shape of a public link's and shows
    /// stored results only. Refused with 401: `embed.invalid` (malformed,
    /// tampered, not HS256, unknown `kid`), `embed.expired` (expired, or
    /// lives longer than allowed), `embed.retired_secret`; an object of
    /// another organization than the secret's is not found.
    #[oai(
        path = "/embed/:token",
        method = "get",
        operation_id = "getEmbeddedPage"
    )]
    async fn page(
        &self,
        /// The signed token.
        token: Path<String>,
        /// Not accepted: an embedded page's parameter values are the
        /// token's. Given, it is refused (422), so a changed address
        /// cannot pass for the signed values.
        parameters: Q<Option<String>>,
    ) -> ApiResult<PublicPageResponse> {
        if parameters.0.is_some() {
            return Err(Error::field(
                "parameters",
                codes::field::NOT_CHOOSABLE,
                "an embedded page's parameter values are locked by its token; sign a token with the values to show",
            )
            .into());
        }
        let page = self.0.services().embedding.open(&token).await?;
        Ok(PublicPageResponse::read(&self.0, page).await?)
    }
}
