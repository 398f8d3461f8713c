//! Sessions: a short-lived signed access token plus a rotating refresh
//! token.
//!
//! The access token is an HS256 JSON Web Token naming the user, the
//! organization and the session (`sid`). It is checked by signature and
//! expiry, and the session must not be revoked, so a logout takes effect at
//! once. The refresh token is opaque, stored as its SHA-256. Each refresh
//! replaces it with a new one in the same family.
//!
//! A refresh is idempotent for [`REFRESH_GRACE`]: the token just traded,
//! presented again that soon (a second tab, a retry after a lost answer),
//! gets the very same new tokens, not a sign-out. This needs no secret at
//! rest: the successor of a refresh token is derived from it with a key
//! from the signing secret, and the access token from the successor's
//! row. Presented again later, a traded token means it was copied, so the
//! whole family (the session) is revoked and audited.
//!
//! Changes of trust end sessions at once (`users`): a disabled or enabled
//! account, a new role, a new password.

use loupe_core::codes;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::actor::{Actor, Via};
use super::audit::{self, Entry, Outcome};
use super::crypto::{hmac_sha256, new_token, same_hash, token_hash, token_text};
use super::users::{User, UserService};
use crate::meta::{col, fetch_optional};
use crate::meta::{db_error, new_id, now_micros};
use crate::services::Shared;
use loupe_core::{Error, Result};

/// Shortest signing secret accepted, in bytes.
pub const MIN_SIGNING_SECRET: usize = 32;

/// How long after a refresh the token it traded still gets the same new
/// tokens: long enough for parallel tabs and retries, short enough that a
/// copy used later still ends the session.
pub const REFRESH_GRACE: Duration = Duration::from_secs(30);

/// The start of every refresh token.
const REFRESH_PREFIX: &str = "lrt_";

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

/// The key that signs access tokens (and derives refresh tokens'
/// successors).
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Derives the successor of a refresh token; a key of its own, so the
    /// two uses of the secret never meet.
    successor: [u8; 32],
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
            successor: hmac_sha256(text.as_bytes(), b"loupe refresh token successor v1")?,
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
    /// failures, backing off) and starts a session.
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
        let token = format!("{REFRESH_PREFIX}{}", new_token()?);
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        let expires_at = self
            .insert_refresh(&mut tx, &new_id(), &user.id, &family, &token, now)
            .await?;
        tx.commit().await.map_err(db_error)?;
        self.session(user, family, token, now, expires_at)
    }

    /// Trades a refresh token for new tokens. The old token stops working,
    /// except that for [`REFRESH_GRACE`] after the trade it gets the same
    /// new tokens again. Traded longer ago, it revokes its whole session.
    pub async fn refresh(&self, refresh_token: &str, ip: Option<&str>) -> Result<Session> {
        self.config()?;
        // A refresh that loses the race for a token (two at once on
        // PostgreSQL) reads it again, now traded, and takes the grace path.
        for _ in 0..2 {
            if let Some(session) = self.try_refresh(refresh_token, ip).await? {
                return Ok(session);
            }
        }
        Err(invalid_refresh())
    }

    /// One attempt at [`refresh`](Self::refresh): `None` when another
    /// refresh traded the token between reading and claiming it.
    async fn try_refresh(&self, refresh_token: &str, ip: Option<&str>) -> Result<Option<Session>> {
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        let row = sqlx::query("SELECT * FROM refresh_tokens WHERE token_hash = $1")
            .bind(token_hash(refresh_token))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(invalid_refresh)?;
        let old = RefreshRow::of(&row)?;
        if old.expires_at <= now {
            return Err(invalid_refresh());
        }
        let successor = self.successor(refresh_token)?;
        match (&old.replaced_by, old.revoked_at) {
            (None, None) => {
                let next_id = new_id();
                // Only one refresh may win the old token, even when two race.
                let claimed = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1, replaced_by = $2 \
                     WHERE id = $3 AND revoked_at IS NULL AND replaced_by IS NULL",
                )
                .bind(now)
                .bind(next_id.clone())
                .bind(old.id.clone())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
                if claimed.rows_affected() == 0 {
                    return Ok(None);
                }
                let actor = self.users.actor(&old.user_id, ip).await?;
                let expires_at = self
                    .insert_refresh(
                        &mut tx,
                        &next_id,
                        &old.user_id,
                        &old.family,
                        &successor,
                        now,
                    )
                    .await?;
                tx.commit().await.map_err(db_error)?;
                let user = self.users.get(&actor, &old.user_id).await?;
                self.session(user, old.family, successor, now, expires_at)
                    .map(Some)
            }
            (Some(next_id), Some(traded_at)) if now - traded_at <= micros(REFRESH_GRACE) => {
                let next = sqlx::query("SELECT * FROM refresh_tokens WHERE id = $1")
                    .bind(next_id.clone())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .map(|r| RefreshRow::of(&r))
                    .transpose()?;
                match next {
                    Some(next)
                        if next.revoked_at.is_none()
                            && next.expires_at > now
                            && same_hash(&token_hash(&successor), &next.token_hash) =>
                    {
                        let actor = self.users.actor(&old.user_id, ip).await?;
                        drop(tx);
                        let user = self.users.get(&actor, &old.user_id).await?;
                        self.session(
                            user,
                            old.family,
                            successor,
                            next.created_at,
                            next.expires_at,
                        )
                        .map(Some)
                    }
                    // The successor was traded in turn: someone else is
                    // ahead with this session.
                    Some(next) if next.replaced_by.is_some() => {
                        self.reused(tx, &old, now, ip).await
                    }
                    // Ended (a logout, a change of trust) or not derivable
                    // any more (a new signing secret).
                    _ => Err(invalid_refresh()),
                }
            }
            (Some(_), _) => self.reused(tx, &old, now, ip).await,
            (None, Some(_)) => Err(invalid_refresh()),
        }
    }

    /// A traded refresh token presented again, past the grace: someone
    /// else has a copy, so the whole session ends, audited.
    async fn reused(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        old: &RefreshRow,
        now: i64,
        ip: Option<&str>,
    ) -> Result<Option<Session>> {
        let revoked_now = revoke_family(&mut tx, &old.family, now).await?;
        let actor = self.users.actor(&old.user_id, ip).await.ok();
        if let Some(actor) = &actor {
            let detail = serde_json::json!({ "revoked_tokens": revoked_now });
            let entry = Entry::by(actor, "session.refresh_reuse", "session", &old.family);
            audit::record(&mut *tx, entry.outcome(Outcome::Denied).detail(detail)).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Err(Error::unauthenticated(
            codes::AUTH_REFRESH_TOKEN_REUSED,
            "this refresh token was already used, so the session was ended; sign in again",
        ))
    }

    /// The successor of a refresh token: always the same for the same
    /// token and signing secret, unguessable without the secret.
    fn successor(&self, refresh_token: &str) -> Result<String> {
        let key = &self.config()?.key.successor;
        let derived = hmac_sha256(key, refresh_token.as_bytes())?;
        Ok(format!("{REFRESH_PREFIX}{}", token_text(&derived)))
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

    /// Ends every session of a user but `keep`, if any. Returns how many
    /// tokens were revoked. (The services end sessions themselves where a
    /// change calls for it; this is for hosts and embedders.)
    pub async fn end_all(&self, user_id: &str, keep: Option<&str>) -> Result<u64> {
        let mut tx = self.shared.store.write().await?;
        let done = end_sessions(&mut tx, user_id, keep, now_micros()).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(done)
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

    /// Stores refresh token `token` (its hash) as row `id`, issued at
    /// `now`; returns when it expires.
    async fn insert_refresh(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        id: &str,
        user_id: &str,
        family: &str,
        token: &str,
        now: i64,
    ) -> Result<i64> {
        let config = self.config()?;
        let expires_at = now + micros(config.refresh_ttl);
        sqlx::query(
            "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_owned())
        .bind(user_id.to_owned())
        .bind(family.to_owned())
        .bind(token_hash(token))
        .bind(expires_at)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
        Ok(expires_at)
    }

    /// The tokens of a session whose refresh token was issued at
    /// `issued_at`. The access token follows from the refresh token's row
    /// alone, so a refresh repeated within the grace gets the same one.
    fn session(
        &self,
        user: User,
        family: String,
        refresh_token: String,
        issued_at: i64,
        refresh_expires_at: i64,
    ) -> Result<Session> {
        let config = self.config()?;
        let access_expires_at = issued_at + micros(config.access_ttl);
        let claims = Claims {
            sub: user.id.clone(),
            org: user.org_id.clone(),
            sid: family.clone(),
            iat: issued_at / 1_000_000,
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

/// A refresh token's row.
struct RefreshRow {
    id: String,
    user_id: String,
    family: String,
    token_hash: String,
    revoked_at: Option<i64>,
    replaced_by: Option<String>,
    expires_at: i64,
    created_at: i64,
}

impl RefreshRow {
    fn of(row: &sqlx::any::AnyRow) -> Result<Self> {
        Ok(Self {
            id: col(row, "id")?,
            user_id: col(row, "user_id")?,
            family: col(row, "family_id")?,
            token_hash: col(row, "token_hash")?,
            revoked_at: col(row, "revoked_at")?,
            replaced_by: col(row, "replaced_by")?,
            expires_at: col(row, "expires_at")?,
            created_at: col(row, "created_at")?,
        })
    }
}

fn invalid_refresh() -> Error {
    Error::unauthenticated(
        codes::AUTH_INVALID_REFRESH_TOKEN,
        "the refresh token is not valid; sign in again",
    )
}

/// Ends every session of `user_id` but `keep`, in `tx`: their refresh
/// tokens stop working, and so do access tokens issued for them (each
/// request checks that its session still has a live refresh token).
/// Returns how many tokens were revoked.
pub(crate) async fn end_sessions(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: &str,
    keep: Option<&str>,
    now: i64,
) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 \
         WHERE user_id = $2 AND revoked_at IS NULL AND family_id <> $3",
    )
    .bind(now)
    .bind(user_id.to_owned())
    .bind(keep.unwrap_or("").to_owned())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
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
