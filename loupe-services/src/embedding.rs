//! Signed embedding: a host application shows a dashboard or a
//! visualization to its own users, with a short-lived token it signs
//! with one of the organization's embedding secrets.
//!
//! A token is a JWT signed with HS256 whose header's `kid` is the id of an
//! embedding secret, and whose claims name the object (`resource`), lock
//! its parameter values (`params`), may give the user attributes that
//! row-level security binds (`attributes`), and say when it was issued
//! and when it expires (`iat`, `exp`, both required; `exp - iat` at most
//! `sharing.embed_max_lifetime`). The page is the one a public link shows
//! (`shares`), acting as the object's owner with the token's attributes
//! in place of the owner's, and refreshed at most once per
//! `sharing.refresh_every` per object and result.
//!
//! Secrets are the organization's (admins make and retire them), sealed
//! at rest with `embedding:<id>` as associated data, shown once. At most
//! two are active: making a third retires the oldest, so that a host can
//! move to a new secret before the old one stops working. A token signed
//! with a retired secret is refused as such; a token of one organization's
//! secret never reaches another organization's objects (they are not
//! found).

use std::collections::HashSet;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use loupe_core::{Error, ErrorKind, ParameterValues, Result, codes};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::actor::{Actor, Role};
use crate::audit::{self, Entry};
use crate::crypto::{Sealed, new_token};
use crate::meta::{col, db_error, find_one, new_id, now_micros};
use crate::rls::{self, Attributes};
use crate::services::Shared;
use crate::shares::{self, Choices, Freshness, PublicPage, ShareKind, Target};
use crate::users::UserService;
use crate::validate::Validator;

/// Active secrets an organization may have at once.
pub const ACTIVE_EMBEDDING_SECRETS: usize = 2;

/// The longest token accepted, in bytes: longer ones are refused before
/// they are decoded.
pub const MAX_EMBED_TOKEN_BYTES: usize = 16 * 1024;

/// The most secrets a list shows (newest first).
const LISTED: i64 = 100;

/// The advisory locks that make one organization's new secrets take turns.
const SECRET_LOCKS: i32 = 3;

/// An embedding secret as admins list it: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EmbeddingSecret {
    /// Its id: the `kid` of the tokens it signs.
    pub id: String,
    /// Who made it.
    pub created_by: Option<String>,
    /// When it was made (µs).
    pub created_at: i64,
    /// When it was retired (µs); tokens it signed are refused from then.
    pub retired_at: Option<i64>,
}

/// A secret just made: the only time its value is shown.
#[derive(Debug, Clone)]
pub struct NewEmbeddingSecret {
    /// The secret as stored.
    pub secret: EmbeddingSecret,
    /// The HMAC key of HS256, as text: its UTF-8 bytes are the key.
    pub value: String,
    /// Secrets that making this one retired (the oldest beyond
    /// [`ACTIVE_EMBEDDING_SECRETS`]).
    pub retired: Vec<String>,
}

/// What a token names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Resource {
    /// `{"dashboard": "<id>"}`.
    Dashboard(String),
    /// `{"visualization": "<id>"}`.
    Visualization(String),
}

/// A token's claims. Other registered claims (`sub`, `aud`, `jti`, ...)
/// are allowed and not read.
#[derive(Debug, Clone, Deserialize)]
struct Claims {
    resource: Resource,
    #[serde(default)]
    params: ParameterValues,
    #[serde(default)]
    attributes: Option<Attributes>,
    iat: i64,
    exp: i64,
}

fn secret(row: &AnyRow) -> Result<EmbeddingSecret> {
    Ok(EmbeddingSecret {
        id: col(row, "id")?,
        created_by: col(row, "created_by")?,
        created_at: col(row, "created_at")?,
        retired_at: col(row, "retired_at")?,
    })
}

/// What a secret is sealed to: the secret, and that it is one.
fn associated(id: &str) -> Vec<u8> {
    format!("embedding:{id}").into_bytes()
}

fn invalid(message: impl Into<String>) -> Error {
    Error::unauthenticated(codes::EMBED_INVALID, message)
}

fn expired(message: impl Into<String>) -> Error {
    Error::unauthenticated(codes::EMBED_EXPIRED, message)
}

/// Signed embedding: the organization's secrets, and the pages tokens open.
#[derive(Debug, Clone)]
pub struct EmbeddingService {
    shared: Arc<Shared>,
}

impl EmbeddingService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn keys(&self) -> Result<&crate::KeyRing> {
        self.shared.config.secret_keys.as_ref().ok_or_else(|| {
            Error::config(
                "embedding secrets are sealed with the secret key, and none is configured (set LOUPE_SECRET_KEY to 32 random bytes in base64)",
            )
        })
    }

    /// Makes a secret for signing embedding tokens. Admins only. When the
    /// organization already has [`ACTIVE_EMBEDDING_SECRETS`] active ones, the oldest
    /// is retired. The value is in the answer only.
    pub async fn create_secret(&self, actor: &Actor) -> Result<NewEmbeddingSecret> {
        actor.require(Role::Admin, "managing embedding secrets")?;
        let id = new_id();
        let value = new_token()?;
        let sealed = self.keys()?.seal(&associated(&id), value.as_bytes())?;
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        // Two admins making secrets at once still leave two active.
        crate::runs::take_turns(&mut tx, SECRET_LOCKS, &actor.org_id).await?;
        sqlx::query(
            "INSERT INTO embedding_secrets (id, org_id, secret, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(sealed.to_text())
        .bind(actor.user_id.clone())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let active: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM embedding_secrets WHERE org_id = $1 AND retired_at IS NULL \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(actor.org_id.clone())
        .fetch_all(&mut *tx)
        .await
        .map_err(db_error)?;
        let retired: Vec<String> = active
            .into_iter()
            .skip(ACTIVE_EMBEDDING_SECRETS)
            .map(|(old,)| old)
            .collect();
        for old in &retired {
            sqlx::query("UPDATE embedding_secrets SET retired_at = $1 WHERE id = $2")
                .bind(now)
                .bind(old.clone())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            let detail = serde_json::json!({ "replaced_by": id });
            let entry = Entry::by(actor, "embedding_secret.retire", "embedding_secret", old);
            audit::record(&mut *tx, entry.detail(detail)).await?;
        }
        let detail = serde_json::json!({ "retired": retired });
        let entry = Entry::by(actor, "embedding_secret.create", "embedding_secret", &id);
        audit::record(&mut *tx, entry.detail(detail)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(NewEmbeddingSecret {
            secret: EmbeddingSecret {
                id,
                created_by: Some(actor.user_id.clone()),
                created_at: now,
                retired_at: None,
            },
            value,
            retired,
        })
    }

    /// The organization's secrets, newest first (the last 100). Admins
    /// only.
    pub async fn secrets(&self, actor: &Actor) -> Result<Vec<EmbeddingSecret>> {
        actor.require(Role::Admin, "managing embedding secrets")?;
        let rows = sqlx::query(
            "SELECT * FROM embedding_secrets WHERE org_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(actor.org_id.clone())
        .bind(LISTED)
        .fetch_all(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        rows.iter().map(secret).collect()
    }

    /// Retires a secret: tokens it signed are refused from now on. Admins
    /// only. Retiring a retired secret changes nothing.
    pub async fn retire_secret(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Role::Admin, "managing embedding secrets")?;
        let row = crate::meta::fetch_in_org(
            &self.shared.store,
            &actor.org_id,
            "SELECT * FROM embedding_secrets WHERE id = $1",
            "embedding secret",
            id,
        )
        .await?;
        if secret(&row)?.retired_at.is_some() {
            return Ok(());
        }
        let mut tx = self.shared.store.write().await?;
        let done = sqlx::query(
            "UPDATE embedding_secrets SET retired_at = $1 WHERE id = $2 AND retired_at IS NULL",
        )
        .bind(now_micros())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if done.rows_affected() > 0 {
            let entry = Entry::by(actor, "embedding_secret.retire", "embedding_secret", id);
            audit::record(&mut *tx, entry).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// The page an embedding token opens. No sign-in: the signature is the
    /// authority.
    ///
    /// # Errors
    /// Unauthenticated: `embed.invalid` for a token that is malformed, not
    /// HS256, names no secret in its `kid`, does not match its signature,
    /// or whose claims do not fit; `embed.retired_secret` when its secret
    /// was retired; `embed.expired` when it has expired or lives longer
    /// than `sharing.embed_max_lifetime`. Not found when its object is not
    /// in the secret's organization (or its owner is disabled).
    pub async fn open(&self, token: &str) -> Result<PublicPage> {
        let (claims, org_id) = self.verify(token, chrono::Utc::now().timestamp()).await?;
        let (kind, object_id) = match &claims.resource {
            Resource::Dashboard(id) => (ShareKind::Dashboard, id.as_str()),
            Resource::Visualization(id) => (ShareKind::Visualization, id.as_str()),
        };
        let owner = self
            .owner(&claims.resource, &org_id, claims.attributes.clone())
            .await?;
        let target = Target::load(&self.shared, &owner, kind, object_id).await?;
        let mut v = Validator::new();
        shares::check_values(&mut v, "params", target.parameters(), &claims.params);
        v.finish().map_err(|e| {
            invalid(format!(
                "the token's params do not fit the {}: {}",
                kind.as_str(),
                field_messages(&e)
            ))
        })?;
        let via = format!("embed:{}:{object_id}", kind.as_str());
        let freshness = Freshness {
            via: &via,
            max_age: self.shared.config.sharing.embed_max_age,
        };
        let mut page = shares::page(
            &self.shared,
            &owner,
            &target,
            &claims.params,
            &Choices::new(),
            freshness,
        )
        .await?;
        page.expires_at = claims.exp.checked_mul(1_000_000);
        Ok(page)
    }

    /// The actor an embedded object's page acts as: its owner, with the
    /// token's attributes (none when the token gives none) in place of
    /// theirs. An object of another organization, or whose owner is
    /// disabled, is not found.
    async fn owner(
        &self,
        resource: &Resource,
        org_id: &str,
        attributes: Option<Attributes>,
    ) -> Result<Actor> {
        let (what, sql, object_id) = match resource {
            Resource::Dashboard(id) => (
                "dashboard",
                "SELECT org_id, owner_id FROM dashboards WHERE id = $1",
                id,
            ),
            Resource::Visualization(id) => (
                "visualization",
                "SELECT org_id, owner_id FROM visualizations WHERE id = $1",
                id,
            ),
        };
        let row =
            crate::meta::fetch_in_org(&self.shared.store, org_id, sql, what, object_id).await?;
        let owner_id: String = col(&row, "owner_id")?;
        let users = UserService::new(self.shared.clone());
        let mut owner = match users.actor(&owner_id, None).await {
            Ok(owner) => owner,
            Err(e) if e.kind() == ErrorKind::Unauthenticated => {
                return Err(Error::not_found(what, object_id.clone()));
            }
            Err(e) => return Err(e),
        };
        let attributes = attributes.unwrap_or_default();
        let mut v = Validator::new();
        rls::validate_attributes(&mut v, &attributes);
        v.finish().map_err(|e| {
            invalid(format!(
                "the token's attributes are not valid: {}",
                field_messages(&e)
            ))
        })?;
        owner.attributes = attributes;
        Ok(owner)
    }

    /// Checks a token at `now` (Unix seconds): its form, its secret, its
    /// signature and its times. Returns its claims and the secret's
    /// organization.
    async fn verify(&self, token: &str, now: i64) -> Result<(Claims, String)> {
        const FORM: &str = "an embedding token is a JWT (header.claims.signature, base64url) signed with HS256, whose header's `kid` is an embedding secret's id";
        if token.len() > MAX_EMBED_TOKEN_BYTES {
            return Err(invalid(format!(
                "the token is longer than {MAX_EMBED_TOKEN_BYTES} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| invalid(format!("the token's header is not valid ({e}); {FORM}")))?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid(format!(
                "the token is signed with {:?}; {FORM}",
                header.alg
            )));
        }
        let kid = header
            .kid
            .filter(|k| !k.is_empty() && k.len() <= 100)
            .ok_or_else(|| invalid(format!("the token's header has no `kid`; {FORM}")))?;
        let row = find_one(
            &self.shared.store,
            "SELECT * FROM embedding_secrets WHERE id = $1",
            &kid,
        )
        .await?
        .ok_or_else(|| {
            invalid("the token's `kid` is not the id of an embedding secret; sign with a secret from POST /embedding/secrets and put its id in `kid`")
        })?;
        let found = secret(&row)?;
        let org_id: String = col(&row, "org_id")?;
        let sealed = Sealed::from_text(&col::<String>(&row, "secret")?)?;
        let key = self.keys()?.open(&sealed, &associated(&found.id))?;
        // Times are checked below, with messages of their own.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_secret(&key), &validation)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid(
                        "the token's signature does not match it: it was changed, or signed with another key than the secret its `kid` names",
                    ),
                    _ => invalid(format!("the token is not valid ({e}); {FORM}")),
                })?;
        let claims: Claims = serde_path_to_error::deserialize(data.claims).map_err(|e| {
            invalid(format!(
                "the token's claims are not valid at `{}`: {}; they are `resource` ({{\"dashboard\": id}} or {{\"visualization\": id}}), `params`, `attributes`, `iat` and `exp` (Unix seconds)",
                e.path(),
                e.inner()
            ))
        })?;
        if found.retired_at.is_some() {
            return Err(Error::unauthenticated(
                codes::EMBED_RETIRED_SECRET,
                format!(
                    "the token is signed with embedding secret {}, which was retired; sign tokens with an active secret",
                    found.id
                ),
            ));
        }
        let sharing = &self.shared.config.sharing;
        let leeway = i64::try_from(sharing.embed_leeway.as_secs()).unwrap_or(0);
        let longest = i64::try_from(sharing.embed_max_lifetime.as_secs()).unwrap_or(i64::MAX);
        if claims.exp <= claims.iat {
            return Err(invalid("the token's `exp` is not after its `iat`"));
        }
        if claims.iat > now.saturating_add(leeway) {
            return Err(invalid(format!(
                "the token was issued in the future (iat {} is {} s ahead of this server's clock); check the signing host's clock",
                claims.iat,
                claims.iat.saturating_sub(now)
            )));
        }
        let lifetime = claims.exp.saturating_sub(claims.iat);
        if lifetime > longest {
            return Err(expired(format!(
                "the token lives {lifetime} s (exp - iat); tokens may live at most {longest} s: sign one for each page view"
            )));
        }
        if claims.exp.saturating_add(leeway) < now {
            return Err(expired(format!(
                "the token expired {} s ago; sign a new one for each page view",
                now.saturating_sub(claims.exp)
            )));
        }
        Ok((claims, org_id))
    }
}

/// A validation error's fields and messages, on one line.
fn field_messages(error: &Error) -> String {
    error
        .field_errors()
        .iter()
        .map(|f| format!("{}: {}", f.field, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}
