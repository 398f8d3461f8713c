//! Users: creation and invitations, roles, disabling, passwords (argon2id),
//! one-time reset tokens, and logins with failed-login counting and a
//! lockout window.

use loupe_core::codes;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::actor::{Actor, Role, Via};
use super::audit::{self, Entry, Outcome};
use super::crypto::{Passwords, new_token, token_hash};
use super::organizations::EVERYONE;
use super::validate::{Validator, normalize_email, validate};
use crate::meta::update_at_revision;
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{col, fetch_in_org, fetch_one, fetch_optional, find_one, flag, taken};
use crate::services::Shared;
use loupe_core::{Error, Result};

/// A user of an organization. Never carries the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// Their organization.
    pub org_id: String,
    /// Their email, lowercase.
    pub email: String,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// A disabled user cannot sign in or use keys.
    pub disabled: bool,
    /// False until an invited user sets a password.
    pub has_password: bool,
    /// Set while the account is locked after failed logins (µs).
    pub locked_until: Option<i64>,
    /// The last successful login (µs).
    pub last_login_at: Option<i64>,
    /// Increases with each change.
    pub revision: i64,
    /// When the user was created (µs).
    pub created_at: i64,
    /// When the user last changed (µs).
    pub updated_at: i64,
}

/// A new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Email; unique in the organization, case-insensitively.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// A password, or `None` to invite the user to choose one.
    pub password: Option<SecretString>,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// New name.
    pub name: Option<String>,
    /// New role.
    pub role: Option<Role>,
    /// Disable or enable.
    pub disabled: Option<bool>,
}

/// A one-time token (invitation or password reset). Shown once; only its
/// hash is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OneTimeToken {
    /// The token to send to the user.
    pub token: String,
    /// When it stops working (µs).
    pub expires_at: i64,
}

/// A user's row, by id.
const BY_ID: &str = "SELECT * FROM users WHERE id = $1";

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "users u",
    alias: "u",
    sorts: &["name", "email", "created_at", "updated_at", "last_login_at"],
    default_sort: "name",
    filters: &[
        ("role", Filter::Equals("u.role")),
        ("disabled", Filter::Flag("u.disabled")),
        ("q", Filter::Contains("u.name")),
        ("email", Filter::Contains("u.email")),
    ],
    created: Some("u.created_at"),
    updated: None,
};

pub(crate) fn user(row: &AnyRow) -> Result<User> {
    let role: String = col(row, "role")?;
    Ok(User {
        id: col(row, "id")?,
        org_id: col(row, "org_id")?,
        email: col(row, "email")?,
        name: col(row, "name")?,
        role: Role::parse(&role).ok_or_else(|| Error::internal(format!("stored role {role:?}")))?,
        disabled: flag(row, "disabled")?,
        has_password: col::<Option<String>>(row, "password_hash")?.is_some(),
        locked_until: col(row, "locked_until")?,
        last_login_at: col(row, "last_login_at")?,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Inserts a user and puts them in the `everyone` group.
pub(crate) async fn insert_user(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    email: &str,
    name: &str,
    role: Role,
    password_hash: Option<String>,
) -> Result<User> {
    let now = now_micros();
    let id = new_id();
    sqlx::query(
        "INSERT INTO users (id, org_id, email, name, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.clone())
    .bind(org_id.to_owned())
    .bind(email.to_owned())
    .bind(name.to_owned())
    .bind(password_hash.clone())
    .bind(role.as_str())
    .bind(now)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(taken(
        "email",
        format!("a user with email {email} already exists"),
    ))?;
    sqlx::query(
        "INSERT INTO group_members (group_id, user_id, created_at) \
         SELECT id, $1, $2 FROM user_groups WHERE org_id = $3 AND name = $4",
    )
    .bind(id.clone())
    .bind(now)
    .bind(org_id.to_owned())
    .bind(EVERYONE)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(User {
        id,
        org_id: org_id.to_owned(),
        email: email.to_owned(),
        name: name.to_owned(),
        role,
        disabled: false,
        has_password: password_hash.is_some(),
        locked_until: None,
        last_login_at: None,
        revision: 1,
        created_at: now,
        updated_at: now,
    })
}

/// Users of an organization.
#[derive(Debug, Clone)]
pub struct UserService {
    shared: Arc<Shared>,
}

impl UserService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn passwords(&self) -> &Passwords {
        &self.shared.passwords
    }

    /// The row of user `id`, whatever their organization.
    async fn row(&self, id: &str) -> Result<AnyRow> {
        fetch_one(&self.shared.store, BY_ID, "user", id).await
    }

    /// A user of the actor's organization.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<User> {
        user(&fetch_in_org(&self.shared.store, &actor.org_id, BY_ID, "user", id).await?)
    }

    /// The organization's users.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<User>> {
        let rows = SPEC.org_rows(&actor.org_id);
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(user)
    }

    /// Creates a user with a password, or invites one (no password yet):
    /// the invitation token comes back to be sent to them. Admins only.
    pub async fn create(
        &self,
        actor: &Actor,
        new: NewUser,
    ) -> Result<(User, Option<OneTimeToken>)> {
        actor.require(Role::Admin, "adding users")?;
        let email = normalize_email(&new.email);
        let mut v = Validator::new();
        v.email("email", &email);
        v.name("name", new.name.trim());
        if let Some(password) = &new.password {
            v.password("password", password, &email);
        }
        v.finish()?;
        let hash = match &new.password {
            Some(p) => Some(self.passwords().hash(p).await?),
            None => None,
        };
        let mut tx = self.shared.store.write().await?;
        let created = insert_user(
            &mut tx,
            &actor.org_id,
            &email,
            new.name.trim(),
            new.role,
            hash,
        )
        .await?;
        let invitation = if new.password.is_none() {
            Some(
                issue_token(
                    &mut tx,
                    &created.id,
                    "invite",
                    self.shared.config.invite_ttl,
                )
                .await?,
            )
        } else {
            None
        };
        let action = if invitation.is_some() {
            "user.invite"
        } else {
            "user.create"
        };
        let detail = serde_json::json!({ "role": new.role });
        audit::record(
            &mut *tx,
            Entry::by(actor, action, "user", &created.id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok((created, invitation))
    }

    /// Changes a user's name, role or disabled flag, if `revision` is still
    /// current. Admins only; the last active admin cannot be demoted or
    /// disabled.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        change: UserUpdate,
    ) -> Result<User> {
        actor.require(Role::Admin, "changing users")?;
        let current = self.get(actor, id).await?;
        if let Some(name) = &change.name {
            validate(|v| v.name("name", name.trim()))?;
        }
        let demotes =
            change.role.is_some_and(|r| r != Role::Admin) || change.disabled == Some(true);
        let mut tx = self.shared.store.write().await?;
        if current.role == Role::Admin && !current.disabled && demotes {
            let (admins,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM users WHERE org_id = $1 AND role = 'admin' AND disabled = 0",
            )
            .bind(actor.org_id.clone())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
            if admins <= 1 {
                return Err(Error::conflict(
                    codes::CONFLICT_LAST_ADMIN,
                    "this is the organization's last active admin; make someone else admin first",
                ));
            }
        }
        let update = sqlx::query(
            "UPDATE users SET name = $1, role = $2, disabled = $3, revision = revision + 1, updated_at = $4 \
             WHERE id = $5 AND revision = $6",
        )
        .bind(change.name.as_deref().map_or(current.name.clone(), |n| n.trim().to_owned()))
        .bind(change.role.unwrap_or(current.role).as_str())
        .bind(i16::from(change.disabled.unwrap_or(current.disabled)));
        update_at_revision(&mut *tx, update, "user", id, revision).await?;
        if change.role.is_some_and(|r| r != current.role)
            || change.disabled.is_some_and(|d| d != current.disabled)
        {
            let detail = serde_json::json!({
                "role": change.role.unwrap_or(current.role),
                "disabled": change.disabled.unwrap_or(current.disabled),
            });
            let entry = Entry::by(actor, "user.permissions", "user", id).detail(detail);
            audit::record(&mut *tx, entry).await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// Changes the actor's own password; the current one is required.
    pub async fn change_password(
        &self,
        actor: &Actor,
        old: &SecretString,
        new: &SecretString,
    ) -> Result<()> {
        let row = self.row(&actor.user_id).await?;
        let me = user(&row)?;
        // The trail names the user's organization, whoever's key asked.
        let entry = Entry {
            actor: Some(actor),
            ..Entry::new(&me.org_id, "user.password_change", "user", &me.id)
        };
        let stored: Option<String> = col(&row, "password_hash")?;
        if !self.passwords().verify(old, stored.as_deref()).await? {
            let failed = entry.clone().outcome(Outcome::Failure);
            audit::record(self.shared.store.pool(), failed).await?;
            return Err(Error::field(
                "old_password",
                codes::field::WRONG_PASSWORD,
                "the current password is not right",
            ));
        }
        validate(|v| v.password("new_password", new, &me.email))?;
        let hash = self.passwords().hash(new).await?;
        let mut tx = self.shared.store.write().await?;
        set_password(&mut tx, &me.id, &hash).await?;
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)
    }

    /// Starts a password reset for a user: a one-time token, valid for the
    /// configured time. Admins only.
    pub async fn start_reset(&self, actor: &Actor, id: &str) -> Result<OneTimeToken> {
        actor.require(Role::Admin, "resetting passwords")?;
        let target = self.get(actor, id).await?;
        let mut tx = self.shared.store.write().await?;
        let token = issue_token(&mut tx, &target.id, "reset", self.shared.config.reset_ttl).await?;
        let entry = Entry::by(actor, "user.password_reset_start", "user", &target.id);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(token)
    }

    /// Sets a password with a one-time token (an invitation or a reset).
    /// The token works once, before it expires.
    pub async fn redeem(&self, token: &str, password: &SecretString) -> Result<User> {
        let hash_of_token = token_hash(token);
        let mut tx = self.shared.store.write().await?;
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.purpose, t.expires_at, t.used_at, u.* FROM user_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .bind(hash_of_token)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let invalid = || {
            Error::unauthenticated(
                codes::AUTH_INVALID_TOKEN,
                "this link is not valid or was already used; ask for a new one",
            )
        };
        let row = row.ok_or_else(invalid)?;
        let used: Option<i64> = col(&row, "used_at")?;
        let expires: i64 = col(&row, "expires_at")?;
        if used.is_some() || expires <= now_micros() {
            return Err(invalid());
        }
        let target = user(&row)?;
        if target.disabled {
            return Err(invalid());
        }
        validate(|v| v.password("password", password, &target.email))?;
        let hash = self.passwords().hash(password).await?;
        let token_id: String = col(&row, "token_id")?;
        let purpose: String = col(&row, "purpose")?;
        let marked =
            sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL")
                .bind(now_micros())
                .bind(token_id)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        if marked.rows_affected() == 0 {
            return Err(invalid());
        }
        set_password(&mut tx, &target.id, &hash).await?;
        let action = if purpose == "invite" {
            "user.invite_accept"
        } else {
            "user.password_reset"
        };
        let entry = Entry::new(&target.org_id, action, "user", &target.id);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        user(&self.row(&target.id).await?)
    }

    /// Checks an email and password. Failed attempts are counted; after the
    /// configured number in a row the account is locked for the lockout
    /// window. An unknown email takes as long as a wrong password. Every
    /// attempt is audited.
    ///
    /// `org_slug` names the organization; it may be left out while there is
    /// only one.
    pub async fn login(
        &self,
        org_slug: Option<&str>,
        email: &str,
        password: &SecretString,
        ip: Option<&str>,
    ) -> Result<User> {
        let invalid = || {
            Error::unauthenticated(
                codes::AUTH_INVALID_CREDENTIALS,
                "the email or password is not right",
            )
        };
        let org_id = match org_slug {
            Some(slug) => find_one(
                &self.shared.store,
                "SELECT id FROM organizations WHERE slug = $1",
                slug,
            )
            .await?
            .map(|r| col::<String>(&r, "id"))
            .transpose()?,
            None => {
                let rows = sqlx::query("SELECT id FROM organizations LIMIT 2")
                    .fetch_all(self.shared.store.pool())
                    .await
                    .map_err(db_error)?;
                if rows.len() > 1 {
                    return Err(Error::field(
                        "organization",
                        codes::field::REQUIRED,
                        "several organizations exist; say which one",
                    ));
                }
                rows.first().map(|r| col::<String>(r, "id")).transpose()?
            }
        };
        let row = match &org_id {
            Some(org) => {
                fetch_optional(
                    &self.shared.store,
                    sqlx::query("SELECT * FROM users WHERE org_id = $1 AND email = $2")
                        .bind(org.clone())
                        .bind(normalize_email(email)),
                )
                .await?
            }
            None => None,
        };
        let Some(row) = row else {
            // Spend the same time as a real check.
            let _ = self.passwords().verify(password, None).await?;
            return Err(invalid());
        };
        let found = user(&row)?;
        let actor = Actor {
            user_id: found.id.clone(),
            org_id: found.org_id.clone(),
            role: found.role,
            groups: Vec::new(),
            via: Via::Session,
            ip: ip.map(str::to_owned),
        };
        let now = now_micros();
        let login = Entry {
            actor: Some(&actor),
            ..Entry::new(&found.org_id, "user.login", "user", &found.id)
        };
        if let Some(until) = found.locked_until.filter(|u| *u > now) {
            let _ = self.passwords().verify(password, None).await?;
            let denied = login.clone().outcome(Outcome::Denied);
            let detail = serde_json::json!({ "reason": "locked" });
            audit::record(self.shared.store.pool(), denied.detail(detail)).await?;
            let minutes = (until - now) / 60_000_000 + 1;
            return Err(Error::unauthenticated(
                codes::AUTH_LOCKED,
                format!(
                    "too many failed logins; the account is locked for about {minutes} more minute(s)"
                ),
            ));
        }
        let stored: Option<String> = col(&row, "password_hash")?;
        let matched = self.passwords().verify(password, stored.as_deref()).await?;
        if !matched || found.disabled {
            let mut tx = self.shared.store.write().await?;
            if !matched {
                let threshold = i64::from(self.shared.config.lockout_threshold);
                let lock_until = now
                    + i64::try_from(self.shared.config.lockout_window.as_micros())
                        .unwrap_or(i64::MAX);
                sqlx::query(
                    "UPDATE users SET failed_logins = failed_logins + 1, \
                     locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END \
                     WHERE id = $3",
                )
                .bind(threshold)
                .bind(lock_until)
                .bind(found.id.clone())
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
            }
            let reason = if matched {
                "disabled"
            } else {
                "wrong_password"
            };
            let failed = login.clone().outcome(Outcome::Failure);
            let detail = serde_json::json!({ "reason": reason });
            audit::record(&mut *tx, failed.detail(detail)).await?;
            tx.commit().await.map_err(db_error)?;
            return Err(invalid());
        }
        let mut tx = self.shared.store.write().await?;
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = $1 WHERE id = $2")
            .bind(now)
            .bind(found.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        audit::record(&mut *tx, login).await?;
        tx.commit().await.map_err(db_error)?;
        user(&self.row(&found.id).await?)
    }

    /// The actor for a signed-in user: their role and groups, read now.
    /// Fails for a disabled or unknown user.
    pub async fn actor(&self, user_id: &str, ip: Option<&str>) -> Result<Actor> {
        let row = find_one(&self.shared.store, BY_ID, user_id)
            .await?
            .ok_or_else(|| {
                Error::unauthenticated(codes::AUTH_UNKNOWN_USER, "the user no longer exists")
            })?;
        let found = user(&row)?;
        if found.disabled {
            return Err(Error::unauthenticated(
                codes::AUTH_DISABLED,
                "the user is disabled",
            ));
        }
        Ok(Actor {
            groups: groups_of(&self.shared, &found.id).await?,
            user_id: found.id,
            org_id: found.org_id,
            role: found.role,
            via: Via::Session,
            ip: ip.map(str::to_owned),
        })
    }
}

/// The ids of the groups `user_id` belongs to.
pub(crate) async fn groups_of(shared: &Shared, user_id: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT group_id FROM group_members WHERE user_id = $1 ORDER BY group_id")
            .bind(user_id.to_owned())
            .fetch_all(shared.store.pool())
            .await
            .map_err(db_error)?;
    Ok(rows.into_iter().map(|(g,)| g).collect())
}

async fn set_password(tx: &mut Transaction<'static, Any>, user_id: &str, hash: &str) -> Result<()> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL, revision = revision + 1, updated_at = $2 WHERE id = $3",
    )
    .bind(hash.to_owned())
    .bind(now_micros())
    .bind(user_id.to_owned())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(())
}

async fn issue_token(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    purpose: &str,
    ttl: std::time::Duration,
) -> Result<OneTimeToken> {
    let token = new_token()?;
    let now = now_micros();
    let expires_at = now + i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX / 2);
    // A new token of a purpose replaces older unused ones.
    sqlx::query("UPDATE user_tokens SET used_at = $1 WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL")
        .bind(now)
        .bind(user_id.to_owned())
        .bind(purpose.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    sqlx::query(
        "INSERT INTO user_tokens (id, user_id, purpose, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(new_id())
    .bind(user_id.to_owned())
    .bind(purpose.to_owned())
    .bind(token_hash(&token))
    .bind(expires_at)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(OneTimeToken { token, expires_at })
}
