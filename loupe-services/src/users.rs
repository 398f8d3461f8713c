//! Users: creation and invitations, roles, disabling, passwords (argon2id),
//! one-time reset tokens, and logins with a back-off per account and
//! source address.
//!
//! What a change of trust ends: disabling or enabling a user, changing
//! their role and setting their password end their sessions (the ones
//! the change did not come from), and all but the role change also
//! revoke their API keys, in the same transaction as the change. Who sees
//! what: admins and the user themselves see a user's email, role and
//! logins; everyone else in the organization sees their name
//! ([`UserView`]).
//!
//! A sign-in never says more than "the email or password is not right":
//! not whether the email exists, the account is disabled or the address
//! is backed off, and every answer costs one password hash.

use loupe_core::codes;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};

use super::actor::{Actor, Role, Via};
use super::api_keys::revoke_all_keys;
use super::audit::{self, Entry, Outcome};
use super::crypto::{Passwords, new_token, token_hash};
use super::organizations::EVERYONE;
use super::sessions::end_sessions;
use super::validate::{Validator, normalize_email, validate};
use crate::meta::update_at_revision;
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{
    col, fetch_in_org, fetch_one, fetch_optional, find_one, flag, json, taken, to_json,
};
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
    /// The last successful login (µs).
    pub last_login_at: Option<i64>,
    /// Increases with each change.
    pub revision: i64,
    /// When the user was created (µs).
    pub created_at: i64,
    /// When the user last changed (µs).
    pub updated_at: i64,
    /// Attributes for row-level security (name -> value), set by admins.
    pub attributes: crate::rls::Attributes,
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

/// A user as the caller may see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UserView {
    /// Everything: for admins, and for the user themselves.
    Full(User),
    /// Who the user is, not how to reach them, what they may do or when
    /// they sign in: for everyone else in the organization.
    Named {
        /// The user's id.
        id: String,
        /// Their name.
        name: String,
    },
}

impl UserView {
    /// What `actor` may see of `user`.
    pub(crate) fn for_actor(actor: &Actor, user: User) -> Self {
        if actor.is_admin() || actor.user_id == user.id {
            Self::Full(user)
        } else {
            Self::Named {
                id: user.id,
                name: user.name,
            }
        }
    }

    /// The user's id.
    pub fn id(&self) -> &str {
        match self {
            Self::Full(user) => &user.id,
            Self::Named { id, .. } => id,
        }
    }

    /// The user's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Full(user) => &user.name,
            Self::Named { name, .. } => name,
        }
    }

    /// The whole record, when the caller may see it.
    pub fn full(&self) -> Option<&User> {
        match self {
            Self::Full(user) => Some(user),
            Self::Named { .. } => None,
        }
    }
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
    /// Replaces every attribute (an empty map removes them all).
    pub attributes: Option<crate::rls::Attributes>,
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

/// List filters that would tell a non-admin what [`UserView::Named`]
/// hides (an email, a role, a disabled flag), one guess at a time.
const ADMIN_FILTERS: &[&str] = &["email", "role", "disabled"];

/// List sorts that would do the same, by order.
const ADMIN_SORTS: &[&str] = &["email", "updated_at", "last_login_at"];

/// The first delay of a backed-off source; each further failure doubles
/// it, up to the configured cap. Long enough to slow a script down at
/// once, short enough for a person who mistyped.
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

/// Failures of a source are forgotten after this long without another.
const FORGET_FAILURES: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The longest source address kept (the column's bound).
const SOURCE_LEN: usize = 100;

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
        last_login_at: col(row, "last_login_at")?,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        attributes: json(row, "attributes")?,
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
        last_login_at: None,
        revision: 1,
        created_at: now,
        updated_at: now,
        attributes: crate::rls::Attributes::new(),
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

    /// A user of the actor's organization, whole: for admins and for the
    /// user themselves ([`view`](Self::view) is for everyone).
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<User> {
        match self.view(actor, id).await? {
            UserView::Full(found) => Ok(found),
            UserView::Named { .. } => Err(Error::refused(
                codes::ACCESS_ROLE,
                "another user's email, role and logins are shown to admins only",
            )),
        }
    }

    /// A user of the actor's organization, as the actor may see them
    /// ([`UserView`]).
    pub async fn view(&self, actor: &Actor, id: &str) -> Result<UserView> {
        let row = fetch_in_org(&self.shared.store, &actor.org_id, BY_ID, "user", id).await?;
        Ok(UserView::for_actor(actor, user(&row)?))
    }

    /// The organization's users, each as the actor may see them. Only
    /// admins filter or sort by what only admins see.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<UserView>> {
        if !actor.is_admin() {
            let hidden = |what: &str| {
                Error::refused(
                    codes::ACCESS_ROLE,
                    format!("listing users by {what} needs the admin role"),
                )
            };
            if let Some(name) = request
                .filters
                .keys()
                .find(|name| ADMIN_FILTERS.contains(&name.as_str()))
            {
                return Err(hidden(name));
            }
            let sort = request.sort.as_deref().unwrap_or_default();
            let field = sort.strip_prefix('-').unwrap_or(sort);
            if ADMIN_SORTS.contains(&field) {
                return Err(hidden(field));
            }
        }
        let rows = SPEC.org_rows(&actor.org_id);
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(|row| Ok(UserView::for_actor(actor, user(row)?)))
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
            v.password("password", password, &email, new.name.trim());
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
    ///
    /// A new role or a change of the disabled flag ends every session of
    /// the user, so no token lives on with what the change took away (or
    /// comes back with an enabled user). Disabling and enabling also
    /// revoke the user's API keys: the keys of a disabled user must not
    /// wake up when the user is enabled again.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        change: UserUpdate,
    ) -> Result<User> {
        actor.require(Role::Admin, "changing users")?;
        let current = self.get(actor, id).await?;
        validate(|v| {
            if let Some(name) = &change.name {
                v.name("name", name.trim());
            }
            if let Some(attributes) = &change.attributes {
                crate::rls::validate_attributes(v, attributes);
            }
        })?;
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
        let attributes = change.attributes.as_ref().unwrap_or(&current.attributes);
        let update = sqlx::query(
            "UPDATE users SET name = $1, role = $2, disabled = $3, attributes = $4, revision = revision + 1, updated_at = $5 \
             WHERE id = $6 AND revision = $7",
        )
        .bind(change.name.as_deref().map_or(current.name.clone(), |n| n.trim().to_owned()))
        .bind(change.role.unwrap_or(current.role).as_str())
        .bind(i16::from(change.disabled.unwrap_or(current.disabled)))
        .bind(to_json(attributes)?);
        update_at_revision(&mut *tx, update, "user", id, revision).await?;
        if change
            .attributes
            .as_ref()
            .is_some_and(|a| *a != current.attributes)
        {
            // Names only: values may be personal, and the user's record
            // has them.
            let detail = serde_json::json!({ "attributes": attributes.keys().collect::<Vec<_>>() });
            let entry = Entry::by(actor, "user.attributes", "user", id).detail(detail);
            audit::record(&mut *tx, entry).await?;
        }
        let new_role = change.role.is_some_and(|r| r != current.role);
        let new_flag = change.disabled.is_some_and(|d| d != current.disabled);
        if new_role || new_flag {
            let now = now_micros();
            let sessions = end_sessions(&mut tx, id, None, now).await?;
            let keys = match new_flag {
                true => revoke_all_keys(&mut tx, id, now).await?,
                false => 0,
            };
            let detail = serde_json::json!({
                "role": change.role.unwrap_or(current.role),
                "disabled": change.disabled.unwrap_or(current.disabled),
                "sessions_ended": sessions,
                "keys_revoked": keys,
            });
            let entry = Entry::by(actor, "user.permissions", "user", id).detail(detail);
            audit::record(&mut *tx, entry).await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// Changes the actor's own password; the current one is required.
    /// Every other session of the user ends (`keep` names the session
    /// the change came from, which proved the current password), and
    /// every API key of the user is revoked.
    pub async fn change_password(
        &self,
        actor: &Actor,
        old: &SecretString,
        new: &SecretString,
        keep: Option<&str>,
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
        validate(|v| v.password("new_password", new, &me.email, &me.name))?;
        let hash = self.passwords().hash(new).await?;
        let mut tx = self.shared.store.write().await?;
        let ended = set_password(&mut tx, &me.id, &hash, keep).await?;
        audit::record(&mut *tx, entry.detail(ended)).await?;
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
    /// The token works once, before it expires. Every session of the user
    /// ends and every API key of the user is revoked.
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
        validate(|v| v.password("password", password, &target.email, &target.name))?;
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
        let ended = set_password(&mut tx, &target.id, &hash, None).await?;
        let action = if purpose == "invite" {
            "user.invite_accept"
        } else {
            "user.password_reset"
        };
        let entry = Entry::new(&target.org_id, action, "user", &target.id).detail(ended);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        user(&self.row(&target.id).await?)
    }

    /// Checks an email and password. Every attempt is audited.
    ///
    /// Whatever goes wrong (an unknown email, a wrong password, a disabled
    /// user, a backed-off source), the answer is the same and costs the
    /// same password hash, so it tells nothing about the account.
    ///
    /// Failures are counted per account and source address (`ip`): after
    /// the configured threshold in a row, that source waits before its
    /// next attempt for the account is even checked, 5 s at first, twice
    /// as long after each further failure, at most the configured cap. A
    /// stranger's failures so slow down only the stranger: the user signs
    /// in from their own address as usual. A success resets the count of
    /// its source; an admin's [`unlock`](Self::unlock) resets them all.
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
                    // A disabled organization's users are unknown here, so a
                    // sign-in takes as long and says as little as a wrong email.
                    sqlx::query(
                        "SELECT u.* FROM users u JOIN organizations o ON o.id = u.org_id \
                         WHERE u.org_id = $1 AND u.email = $2 AND o.disabled = 0",
                    )
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
            attributes: found.attributes.clone(),
        };
        let now = now_micros();
        let source = source_of(ip);
        let login = Entry {
            actor: Some(&actor),
            ..Entry::new(&found.org_id, "user.login", "user", &found.id)
        };
        let blocked = fetch_optional(
            &self.shared.store,
            sqlx::query(
                "SELECT blocked_until FROM login_backoffs WHERE user_id = $1 AND source = $2",
            )
            .bind(found.id.clone())
            .bind(source.clone()),
        )
        .await?
        .map(|r| col::<Option<i64>>(&r, "blocked_until"))
        .transpose()?
        .flatten()
        .filter(|until| *until > now);
        if let Some(until) = blocked {
            // Not checked, but answered (and paid for) like a wrong password.
            let _ = self.passwords().verify(password, None).await?;
            let denied = login.clone().outcome(Outcome::Denied);
            let detail = serde_json::json!({ "reason": "backoff", "until": until });
            audit::record(self.shared.store.pool(), denied.detail(detail)).await?;
            return Err(invalid());
        }
        let stored: Option<String> = col(&row, "password_hash")?;
        let matched = self.passwords().verify(password, stored.as_deref()).await?;
        if !matched || found.disabled {
            let mut tx = self.shared.store.write().await?;
            if !matched {
                self.count_failure(&mut tx, &found.id, &source).await?;
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
        sqlx::query("DELETE FROM login_backoffs WHERE user_id = $1 AND source = $2")
            .bind(found.id.clone())
            .bind(source)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
            .bind(now)
            .bind(found.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        audit::record(&mut *tx, login).await?;
        tx.commit().await.map_err(db_error)?;
        user(&self.row(&found.id).await?)
    }

    /// Counts a failed sign-in of `user_id` from `source` and, past the
    /// threshold, sets how long the source waits.
    async fn count_failure(
        &self,
        tx: &mut Transaction<'static, Any>,
        user_id: &str,
        source: &str,
    ) -> Result<()> {
        // The wait runs from now, after the password check, not from the
        // attempt's start.
        let now = now_micros();
        let forget_before = now - micros(FORGET_FAILURES);
        let (failures,): (i64,) = sqlx::query_as(
            "INSERT INTO login_backoffs (user_id, source, failures, last_failure_at) \
             VALUES ($1, $2, 1, $3) \
             ON CONFLICT (user_id, source) DO UPDATE SET \
             failures = CASE WHEN login_backoffs.last_failure_at < $4 THEN 1 \
             ELSE login_backoffs.failures + 1 END, \
             last_failure_at = $3 \
             RETURNING failures",
        )
        .bind(user_id.to_owned())
        .bind(source.to_owned())
        .bind(now)
        .bind(forget_before)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_error)?;
        let config = &self.shared.config;
        if let Some(delay) = backoff(
            failures,
            config.login_backoff_threshold,
            config.login_backoff_max,
        ) {
            sqlx::query(
                "UPDATE login_backoffs SET blocked_until = $1 WHERE user_id = $2 AND source = $3",
            )
            .bind(now + micros(delay))
            .bind(user_id.to_owned())
            .bind(source.to_owned())
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        }
        // Sources that stopped failing long ago are forgotten as they go,
        // so an account's rows stay few.
        sqlx::query("DELETE FROM login_backoffs WHERE user_id = $1 AND last_failure_at < $2")
            .bind(user_id.to_owned())
            .bind(forget_before)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Lifts every sign-in back-off of user `id`, from whatever source.
    /// Admins only; audited.
    pub async fn unlock(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Role::Admin, "unlocking users")?;
        let target = self.get(actor, id).await?;
        let mut tx = self.shared.store.write().await?;
        let cleared = sqlx::query("DELETE FROM login_backoffs WHERE user_id = $1")
            .bind(target.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let detail = serde_json::json!({ "sources_cleared": cleared.rows_affected() });
        let entry = Entry::by(actor, "user.unlock", "user", &target.id).detail(detail);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)
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
        super::organizations::require_enabled(&self.shared, &found.org_id).await?;
        Ok(Actor {
            groups: groups_of(&self.shared, &found.id).await?,
            user_id: found.id,
            org_id: found.org_id,
            role: found.role,
            via: Via::Session,
            ip: ip.map(str::to_owned),
            attributes: found.attributes,
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

/// Sets a user's password and ends what the old one opened: every
/// session but `keep` and every API key. Back-offs are lifted, so the user
/// signs in with the new password at once. Returns the counts, for the
/// audit trail.
async fn set_password(
    tx: &mut Transaction<'static, Any>,
    user_id: &str,
    hash: &str,
    keep: Option<&str>,
) -> Result<serde_json::Value> {
    let now = now_micros();
    sqlx::query(
        "UPDATE users SET password_hash = $1, revision = revision + 1, updated_at = $2 WHERE id = $3",
    )
    .bind(hash.to_owned())
    .bind(now)
    .bind(user_id.to_owned())
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    sqlx::query("DELETE FROM login_backoffs WHERE user_id = $1")
        .bind(user_id.to_owned())
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    let sessions = end_sessions(tx, user_id, keep, now).await?;
    let keys = revoke_all_keys(tx, user_id, now).await?;
    Ok(serde_json::json!({ "sessions_ended": sessions, "keys_revoked": keys }))
}

/// How long a source waits after its `failures`-th failure in a row:
/// nothing below `threshold`, then [`FIRST_BACKOFF`] doubled for each
/// failure past it, at most `cap`.
fn backoff(failures: i64, threshold: u32, cap: std::time::Duration) -> Option<std::time::Duration> {
    let past = failures.checked_sub(i64::from(threshold))?;
    if past < 0 {
        return None;
    }
    let doublings = u32::try_from(past).unwrap_or(u32::MAX).min(30);
    Some(FIRST_BACKOFF.saturating_mul(1 << doublings).min(cap))
}

/// The source of a sign-in as kept: its address, `unknown` without one.
fn source_of(ip: Option<&str>) -> String {
    match ip.map(str::trim).filter(|ip| !ip.is_empty()) {
        Some(ip) => ip.chars().take(SOURCE_LEN).collect(),
        None => "unknown".to_owned(),
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn backoff_starts_at_the_threshold_doubles_and_is_capped() {
        let cap = Duration::from_secs(15 * 60);
        let delays: Vec<Option<Duration>> = (1..=5).map(|n| backoff(n, 3, cap)).collect();
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(delays, [None, None, secs(5), secs(10), secs(20)]);
        assert_eq!(backoff(40, 3, cap), Some(cap));
        assert_eq!(backoff(i64::MAX, 3, cap), Some(cap));
    }

    #[test]
    fn sources_are_bounded() {
        assert_eq!(source_of(None), "unknown");
        assert_eq!(source_of(Some(" ")), "unknown");
        assert_eq!(source_of(Some("10.0.0.7")), "10.0.0.7");
        assert_eq!(source_of(Some(&"x".repeat(500))).len(), SOURCE_LEN);
    }
}
