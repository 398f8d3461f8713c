//! Sessions: a short-lived signed access token plus a rotating refresh
//! token.
//!
//! The access token is an HS256 JSON Web Token naming the user, the
//! organization and the session (`sid`). It is checked by signature and
//! expiry, and the session must not be revoked, so a logout takes effect at
//! once. The refresh token is opaque and random, stored as its SHA-256.
//! Each refresh replaces it with a new one in the same family; presenting a
//! replaced token again means it was copied, so the whole family (the
//! session) is revoked and audited.

use loupe_core::codes;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::actor::{Actor, Via};
use super::audit::{self, Entry, Outcome};
use super::crypto::{new_token, token_hash};
use super::users::{User, UserService};
use crate::meta::{col, fetch_optional};
use crate::meta::{db_error, new_id, now_micros};
use crate::services::Shared;
use loupe_core::{Error, Result};

/// Shortest signing secret accepted, in bytes.
pub const MIN_SIGNING_SECRET: usize = 32;

/// Placeholders found in example configurations; a secret containing one
/// was copied, not chosen.
const EXAMPLE_SECRETS: &[&str] = &[
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replace_me",
    "replaceme",
    "your-secret",
    "your_secret",
    "secret-key",
    "secretkey",
    "example",
    "password",
    "xxxxxxxx",
    "00000000",
    "12345678",
];

/// The key that signs access tokens.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A key from a secret of at least [`MIN_SIGNING_SECRET`] bytes that is
    /// not a known example value.
    pub fn new(secret: &SecretString) -> Result<Self> {
        let text = secret.expose_secret();
        if text.len() < MIN_SIGNING_SECRET {
            return Err(Error::config(format!(
                "the signing secret is {} bytes; use at least {MIN_SIGNING_SECRET} random bytes \
                 (for example the output of `openssl rand -base64 48`)",
                text.len()
            )));
        }
        let lower = text.to_ascii_lowercase();
        if let Some(example) = EXAMPLE_SECRETS.iter().find(|e| lower.contains(*e)) {
            return Err(Error::config(format!(
                "the signing secret contains the example value {example:?}; generate a random one"
            )));
        }
        let distinct = text
            .bytes()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if distinct < 8 {
            return Err(Error::config(
                "the signing secret repeats a few characters; generate a random one",
            ));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(text.as_bytes()),
            decoding: DecodingKey::from_secret(text.as_bytes()),
        })
    }

    /// A new random secret, base64 (48 bytes of entropy).
    pub fn generate_secret() -> Result<SecretString> {
        use base64::Engine;
        let bytes = super::crypto::random_bytes::<48>()?;
        Ok(SecretString::from(
            base64::engine::general_purpose::STANDARD.encode(bytes),
        ))
    }
}

/// How long tokens live.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Signs access tokens.
    pub key: SigningKey,
    /// Lifetime of an access token (15 minutes by default).
    pub access_ttl: Duration,
    /// Lifetime of a refresh token, renewed at each refresh (30 days by
    /// default).
    pub refresh_ttl: Duration,
}

impl SessionConfig {
    /// Default lifetimes with `key`.
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// The tokens of a session.
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    /// The signed-in user.
    pub user: User,
    /// The session's id (the refresh token family).
    pub session_id: String,
    /// Goes in `Authorization: Bearer …`.
    pub access_token: String,
    /// When the access token expires (µs).
    pub access_expires_at: i64,
    /// Trades for new tokens once; keep it secret.
    pub refresh_token: String,
    /// When the refresh token expires (µs).
    pub refresh_expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    org: String,
    sid: String,
    iat: i64,
    exp: i64,
}

/// Sign-in sessions.
#[derive(Debug, Clone)]
pub struct SessionService {
    shared: Arc<Shared>,
    users: UserService,
}

impl SessionService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            users: UserService::new(shared.clone()),
            shared,
        }
    }

    fn config(&self) -> Result<&SessionConfig> {
        self.shared
            .config
            .sessions
            .as_ref()
            .ok_or_else(|| Error::config("sessions need a signing key (ServicesConfig::sessions)"))
    }

    /// Checks an email and password ([`UserService::login`]: counting
    /// failures, locking) and starts a session.
    pub async fn login(
        &self,
        org_slug: Option<&str>,
        email: &str,
        password: &SecretString,
        ip: Option<&str>,
    ) -> Result<Session> {
        self.config()?;
        let user = self.users.login(org_slug, email, password, ip).await?;
        let family = new_id();
        let mut tx = self.shared.store.write().await?;
        let (_, refresh_token, refresh_expires_at) =
            self.insert_refresh(&mut tx, &user.id, &family).await?;
        tx.commit().await.map_err(db_error)?;
        self.session(user, family, refresh_token, refresh_expires_at)
    }

    /// Trades a refresh token for new tokens. The old token stops working.
    /// A token that was already traded revokes its whole session.
    pub async fn refresh(&self, refresh_token: &str, ip: Option<&str>) -> Result<Session> {
        self.config()?;
        let invalid = || {
            Error::unauthenticated(
                codes::AUTH_INVALID_REFRESH_TOKEN,
                "the refresh token is not valid; sign in again",
            )
        };
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash(refresh_token))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(invalid)?;
        let id: String = col(&row, "id")?;
        let user_id: String = col(&row, "user_id")?;
        let family: String = col(&row, "family_id")?;
        let revoked: Option<i64> = col(&row, "revoked_at")?;
        let replaced: Option<String> = col(&row, "replaced_by")?;
        let expires: i64 = col(&row, "expires_at")?;
        if replaced.is_some() {
            // Reuse of a rotated token: someone else has a copy.
            let revoked_now = revoke_family(&mut tx, &family, now).await?;
            let actor = self.users.actor(&user_id, ip).await.ok();
            if let Some(actor) = &actor {
                let detail = serde_json::json!({ "revoked_tokens": revoked_now });
                let entry = Entry::by(actor, "session.refresh_reuse", "session", &family);
                audit::record(&mut *tx, entry.outcome(Outcome::Denied).detail(detail)).await?;
            }
            tx.commit().await.map_err(db_error)?;
            return Err(Error::unauthenticated(
                codes::AUTH_REFRESH_TOKEN_REUSED,
                "this refresh token was already used, so the session was ended; sign in again",
            ));
        }
        if revoked.is_some() || expires <= now {
            return Err(invalid());
        }
        let actor = self.users.actor(&user_id, ip).await?;
        let (new_id, token, token_expires) =
            self.insert_refresh(&mut tx, &user_id, &family).await?;
        // Only one refresh may win the old token, even when two race.
        let marked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1, replaced_by = $2 \
             WHERE id = $3 AND revoked_at IS NULL AND replaced_by IS NULL",
        )
        .bind(now)
        .bind(new_id)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if marked.rows_affected() == 0 {
            return Err(invalid());
        }
        tx.commit().await.map_err(db_error)?;
        let user = self.users.get(&actor, &user_id).await?;
        self.session(user, family, token, token_expires)
    }

    /// Ends a session: its refresh tokens stop working, and so do access
    /// tokens issued for it.
    pub async fn logout(&self, actor: &Actor, session_id: &str) -> Result<()> {
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 \
             WHERE family_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(session_id.to_owned())
        .bind(actor.user_id.clone())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if revoked.rows_affected() > 0 {
            let entry = Entry::by(actor, "session.logout", "session", session_id);
            audit::record(&mut *tx, entry).await?;
        }
        tx.commit().await.map_err(db_error)
    }

    /// Ends every session of a user (after a password change or reset),
    /// but `keep`, the session that asked, if any. Returns how many tokens
    /// were revoked.
    pub async fn end_all(&self, user_id: &str, keep: Option<&str>) -> Result<u64> {
        let mut tx = self.shared.store.write().await?;
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 \
             WHERE user_id = $2 AND revoked_at IS NULL AND family_id <> $3",
        )
        .bind(now_micros())
        .bind(user_id.to_owned())
        .bind(keep.unwrap_or("").to_owned())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        Ok(done.rows_affected())
    }

    /// The actor behind an access token: a valid signature, not expired,
    /// the session not ended, the user neither gone nor disabled. Returns
    /// the actor and the session id.
    pub async fn authenticate(
        &self,
        access_token: &str,
        ip: Option<&str>,
    ) -> Result<(Actor, String)> {
        let config = self.config()?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims =
            jsonwebtoken::decode::<Claims>(access_token, &config.key.decoding, &validation)
                .map_err(|e| match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => Error::unauthenticated(
                        codes::AUTH_TOKEN_EXPIRED,
                        "the access token expired; refresh it or sign in again",
                    ),
                    _ => Error::unauthenticated(
                        codes::AUTH_INVALID_TOKEN,
                        "the access token is not valid",
                    ),
                })?
                .claims;
        let live = fetch_optional(
            &self.shared.store,
            sqlx::query(
                "SELECT id FROM refresh_tokens WHERE family_id = $1 AND user_id = $2 \
                 AND revoked_at IS NULL LIMIT 1",
            )
            .bind(claims.sid.clone())
            .bind(claims.sub.clone()),
        )
        .await?;
        if live.is_none() {
            return Err(Error::unauthenticated(
                codes::AUTH_SESSION_ENDED,
                "the session was ended; sign in again",
            ));
        }
        let actor = self.users.actor(&claims.sub, ip).await?;
        if actor.org_id != claims.org || actor.via != Via::Session {
            return Err(Error::unauthenticated(
                codes::AUTH_INVALID_TOKEN,
                "the access token is not valid",
            ));
        }
        Ok((actor, claims.sid))
    }

    async fn insert_refresh(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user_id: &str,
        family: &str,
    ) -> Result<(String, String, i64)> {
        let config = self.config()?;
        let id = new_id();
        let token = format!("lrt_{}", new_token()?);
        let now = now_micros();
        let expires_at = now + micros(config.refresh_ttl);
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.clone())
        .bind(user_id.to_owned())
        .bind(family.to_owned())
        .bind(token_hash(&token))
        .bind(expires_at)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        Ok((id, token, expires_at))
    }

    fn session(
        &self,
        user: User,
        family: String,
        refresh_token: String,
        refresh_expires_at: i64,
    ) -> Result<Session> {
        let config = self.config()?;
        let now = now_micros();
        let access_expires_at = now + micros(config.access_ttl);
        let claims = Claims {
            sub: user.id.clone(),
            org: user.org_id.clone(),
            sid: family.clone(),
            iat: now / 1_000_000,
            exp: access_expires_at / 1_000_000,
        };
        let access_token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &config.key.encoding,
        )
        .map_err(|e| Error::internal_from("sign an access token", e))?;
        Ok(Session {
            user,
            session_id: family,
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
        })
    }
}

async fn revoke_family(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    family: &str,
    now: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family.to_owned())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_signing_secrets_are_refused() {
        let refuse = |s: &str| SigningKey::new(&SecretString::from(s.to_owned())).is_err();
        assert!(refuse("short"));
        assert!(refuse("changeme-changeme-changeme-changeme-1234"));
        assert!(refuse(&"a".repeat(64)));
        assert!(refuse("abababababababababababababababababababab"));
        assert!(!refuse("q8Vv1rX0m3KpZ7tL2nY6wE4sA9dH5jF0gB1cN8uT"));
        let generated = SigningKey::generate_secret().unwrap_or_else(|_| SecretString::from(""));
        assert!(SigningKey::new(&generated).is_ok());
    }
}
