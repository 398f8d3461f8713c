//! API keys: long random secrets for scripts and other programs.
//!
//! A key reads `loupe_<prefix>_<secret>`. The prefix (12 hex characters)
//! is stored in clear to find the key and to show it in lists; the whole
//! key is stored only as a SHA-256 and compared in constant time. The key
//! itself is shown once, when it is created. A key acts for its owner,
//! never above the owner's role and never above its scopes. Setting the
//! owner's password, or disabling or enabling the owner, revokes every
//! key of theirs (`users`).
//!
//! A key may be scoped to one saved query its owner can see: it then reads
//! that query's latest results (`LatestResultService`) and nothing else,
//! with its owner's access and restrictions. Such a key is what goes into
//! a spreadsheet's import URL, where a leaked key should open as little as
//! possible. The server refuses it every other route (`caller`).

use loupe_core::codes;
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;

use super::actor::{Actor, Role, Scope, Via};
use super::audit::{self, Entry};
use super::crypto::{new_token, random_bytes, same_hash, token_hash};
use super::validate::Validator;
use crate::meta::{col, fetch_in_org, fetch_optional, find_in_org, flag, json, to_json};
use crate::meta::{db_error, new_id, now_micros};
use crate::services::Shared;
use loupe_core::{Error, Result};

const KEY_PREFIX: &str = "loupe_";
const PREFIX_LEN: usize = 12;
/// The longest lifetime a key may be given.
const MAX_LIFETIME_MICROS: i64 = 2 * 366 * 24 * 3600 * 1_000_000;
/// `last_used_at` is written at most this often per key.
const LAST_USED_GRANULARITY_MICROS: i64 = 60 * 1_000_000;

/// An API key as listed: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Its id.
    pub id: String,
    /// Who it acts for.
    pub user_id: String,
    /// Its name.
    pub name: String,
    /// The visible start of the key (`loupe_<prefix>`), to recognize it.
    pub prefix: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The one saved query it reads the latest results of, if it is
    /// scoped to one.
    pub query_id: Option<String>,
    /// When it was last used (µs), to the minute.
    pub last_used_at: Option<i64>,
    /// When it stops working (µs).
    pub expires_at: Option<i64>,
    /// When it was revoked (µs).
    pub revoked_at: Option<i64>,
    /// When it was created (µs).
    pub created_at: i64,
}

/// A key just created: the only time the secret is shown.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// The key as stored.
    pub key: ApiKey,
    /// The whole key, to give to the program that uses it.
    pub secret: String,
}

fn api_key(row: &AnyRow) -> Result<ApiKey> {
    let prefix: String = col(row, "prefix")?;
    Ok(ApiKey {
        id: col(row, "id")?,
        user_id: col(row, "user_id")?,
        name: col(row, "name")?,
        prefix: format!("{KEY_PREFIX}{prefix}"),
        scopes: json(row, "scopes")?,
        query_id: col(row, "query_id")?,
        last_used_at: col(row, "last_used_at")?,
        expires_at: col(row, "expires_at")?,
        revoked_at: col(row, "revoked_at")?,
        created_at: col(row, "created_at")?,
    })
}

/// Splits `loupe_<prefix>_<secret>` into its prefix, or `None` when the
/// text is not shaped like a key.
fn parse(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let prefix = rest.get(..PREFIX_LEN)?;
    let secret = rest.get(PREFIX_LEN..)?.strip_prefix('_')?;
    let valid = prefix.chars().all(|c| c.is_ascii_hexdigit())
        && secret.len() >= 32
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    valid.then_some(prefix)
}

/// Revokes every API key of `user_id` that still works, in `tx`: when
/// the user's password is set or their account disabled or enabled, no
/// key made before lives on. Returns how many were revoked.
pub(crate) async fn revoke_all_keys(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    now: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id.to_owned())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
}

fn invalid_key() -> Error {
    Error::unauthenticated(codes::AUTH_INVALID_KEY, "the API key is not valid")
}

/// API keys.
#[derive(Debug, Clone)]
pub struct ApiKeyService {
    shared: Arc<Shared>,
}

impl ApiKeyService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Creates a key for the actor, with `scopes`, valid until
    /// `expires_at` (µs) if given. Signed-in users only: a key does not
    /// make keys.
    pub async fn create(
        &self,
        actor: &Actor,
        name: &str,
        scopes: &[Scope],
        expires_at: Option<i64>,
    ) -> Result<NewApiKey> {
        self.create_with_query(actor, name, scopes, expires_at, None)
            .await
    }

    /// [`create`](Self::create), optionally scoped to the saved query
    /// `query_id`: the key then reads that query's latest results and
    /// nothing else. The actor must be able to see the query (one they
    /// cannot see is reported as missing, `query_id`), and such a key only
    /// reads: its scopes must be `[read]`.
    pub async fn create_with_query(
        &self,
        actor: &Actor,
        name: &str,
        scopes: &[Scope],
        expires_at: Option<i64>,
        query_id: Option<&str>,
    ) -> Result<NewApiKey> {
        if actor.key_id().is_some() {
            return Err(Error::refused(
                codes::ACCESS_KEY,
                "an API key cannot create API keys; sign in",
            ));
        }
        let now = now_micros();
        let mut v = Validator::new();
        v.name("name", name.trim());
        v.check(!scopes.is_empty(), "scopes", codes::field::REQUIRED, || {
            "name at least one scope".into()
        });
        v.check(
            !scopes.contains(&Scope::Admin) || actor.role == Role::Admin,
            "scopes",
            codes::field::ABOVE_ROLE,
            || "only admins may create keys with the admin scope".into(),
        );
        if let Some(query_id) = query_id {
            v.check(
                scopes.iter().all(|s| *s == Scope::Read),
                "scopes",
                codes::field::INVALID,
                || {
                    "a key scoped to one query only reads its latest results; give the scopes [\"read\"]".into()
                },
            );
            if !self.may_see_query(actor, query_id).await? {
                v.push(
                    "query_id",
                    codes::field::NOT_FOUND,
                    format!("no query {query_id}"),
                );
            }
        }
        if let Some(at) = expires_at {
            v.check(at > now, "expires_at", codes::field::IN_THE_PAST, || {
                "the expiry must be in the future".into()
            });
            v.check(
                at <= now + MAX_LIFETIME_MICROS,
                "expires_at",
                codes::field::TOO_FAR,
                || "a key lives at most two years".into(),
            );
        }
        v.finish()?;
        let mut scopes = scopes.to_vec();
        scopes.sort();
        scopes.dedup();
        let prefix: String = random_bytes::<6>()?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let secret = format!("{KEY_PREFIX}{prefix}_{}", new_token()?);
        let id = new_id();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, user_id, name, prefix, key_hash, scopes, expires_at, created_at, query_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(actor.user_id.clone())
        .bind(name.trim().to_owned())
        .bind(prefix)
        .bind(token_hash(&secret))
        .bind(to_json(&scopes)?)
        .bind(expires_at)
        .bind(now)
        .bind(query_id.map(str::to_owned))
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let detail = match query_id {
            Some(query) => serde_json::json!({ "scopes": scopes, "query": query }),
            None => serde_json::json!({ "scopes": scopes }),
        };
        let entry = Entry::by(actor, "api_key.create", "api_key", &id).detail(detail);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(NewApiKey {
            key: self.get(actor, &id).await?,
            secret,
        })
    }

    /// Whether `query_id` is a saved query of the actor's organization on a
    /// datasource their groups give them access to.
    async fn may_see_query(&self, actor: &Actor, query_id: &str) -> Result<bool> {
        let sql = crate::queries::BY_ID;
        let Some(row) = find_in_org(&self.shared.store, &actor.org_id, sql, query_id).await? else {
            return Ok(false);
        };
        let datasource_id: String = col(&row, "datasource_id")?;
        Ok(super::groups::access(&self.shared, actor, &datasource_id)
            .await?
            .is_some())
    }

    /// A key of the actor's (or, for admins, of anyone in the organization).
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<ApiKey> {
        let sql = "SELECT * FROM api_keys WHERE id = $1";
        let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "API key", id).await?;
        let key = api_key(&row)?;
        if key.user_id != actor.user_id && !actor.is_admin() {
            return Err(Error::not_found("API key", id));
        }
        Ok(key)
    }

    /// The actor's keys, newest first; `all` lists the organization's keys
    /// (admins only).
    pub async fn list(&self, actor: &Actor, all: bool) -> Result<Vec<ApiKey>> {
        let (sql, owner) = if all {
            actor.require(Role::Admin, "listing everyone's API keys")?;
            (
                "SELECT * FROM api_keys WHERE org_id = $1 ORDER BY created_at DESC",
                &actor.org_id,
            )
        } else {
            (
                "SELECT * FROM api_keys WHERE user_id = $1 ORDER BY created_at DESC",
                &actor.user_id,
            )
        };
        let rows = sqlx::query(sql)
            .bind(owner.clone())
            .fetch_all(self.shared.store.pool())
            .await
            .map_err(db_error)?;
        rows.iter().map(api_key).collect()
    }

    /// Revokes a key: it stops working at once. Its owner or an admin.
    pub async fn revoke(&self, actor: &Actor, id: &str) -> Result<ApiKey> {
        let key = self.get(actor, id).await?;
        let mut tx = self.shared.store.write().await?;
        sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_micros())
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let detail = serde_json::json!({ "owner": key.user_id });
        let entry = Entry::by(actor, "api_key.revoke", "api_key", id).detail(detail);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// The actor behind `key`, or [`Error::Refused`] (the same for every
    /// reason: unknown, revoked, expired, owner disabled).
    pub async fn authenticate(&self, key: &str, ip: Option<&str>) -> Result<Actor> {
        let Some(prefix) = parse(key) else {
            return Err(invalid_key());
        };
        let row = fetch_optional(
            &self.shared.store,
            sqlx::query(
                "SELECT k.*, u.role, u.disabled, u.attributes, o.disabled AS org_disabled FROM api_keys k \
                 JOIN users u ON u.id = k.user_id JOIN organizations o ON o.id = k.org_id \
                 WHERE k.prefix = $1",
            )
            .bind(prefix.to_owned()),
        )
        .await?;
        let hash = token_hash(key);
        let Some(row) = row else {
            // Compare anyway, so a missing prefix takes as long as a wrong key.
            let _ = same_hash(&hash, &token_hash(""));
            return Err(invalid_key());
        };
        let stored: String = col(&row, "key_hash")?;
        let found = api_key(&row)?;
        let now = now_micros();
        let usable = same_hash(&hash, &stored)
            && found.revoked_at.is_none()
            && found.expires_at.is_none_or(|at| at > now)
            && !flag(&row, "disabled")?
            && !flag(&row, "org_disabled")?;
        if !usable {
            return Err(invalid_key());
        }
        let role: String = col(&row, "role")?;
        let role =
            Role::parse(&role).ok_or_else(|| Error::internal(format!("stored role {role:?}")))?;
        if found
            .last_used_at
            .is_none_or(|at| now - at >= LAST_USED_GRANULARITY_MICROS)
        {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(found.id.clone())
                .execute(self.shared.store.pool())
                .await
                .map_err(db_error)?;
        }
        Ok(Actor {
            groups: super::users::groups_of(&self.shared, &found.user_id).await?,
            user_id: found.user_id,
            org_id: col(&row, "org_id")?,
            role,
            via: Via::ApiKey {
                key_id: found.id,
                scopes: found.scopes,
                query_id: found.query_id,
            },
            ip: ip.map(str::to_owned),
            attributes: crate::meta::json(&row, "attributes")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_keys_parse() {
        let secret = "A".repeat(43);
        assert_eq!(
            parse(&format!("loupe_0123456789ab_{secret}")),
            Some("0123456789ab")
        );
        for bad in [
            String::new(),
            "loupe_".into(),
            format!("loupe_0123456789ab{secret}"),
            format!("loupe_0123456789az_{secret}"),
            "loupe_0123456789ab_short".into(),
            format!("Key loupe_0123456789ab_{secret}"),
            format!("loupe_0123456789ab_{secret}'; --"),
            "loupe_é123456789ab_x".into(),
        ] {
            assert_eq!(parse(&bad), None, "{bad:?}");
        }
    }
}
