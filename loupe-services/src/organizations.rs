//! Organizations, and setting one up with its first admin.

use loupe_core::codes;
use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;

use super::actor::{Actor, Role};
use super::audit::{self, Entry};
use super::groups::insert_group;
use super::users::{User, insert_user};
use super::validate::{Validator, normalize_email, slugify, validate};
use crate::meta::{col, fetch_one, find_one, flag};
use crate::meta::{db_error, new_id, now_micros};
use crate::services::Shared;
use loupe_core::{Error, Result};

/// The name of the group every user of an organization belongs to.
pub const EVERYONE: &str = "everyone";

/// An organization: users, datasources and everything else belong to one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// A short unique name for URLs and logins.
    pub slug: String,
    /// When it was created (µs since the Unix epoch).
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
    /// Disabled by the instance's operator: its users cannot sign in and
    /// its tokens and API keys are refused.
    pub disabled: bool,
}

/// What an organization keeps in the result store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Stored results.
    pub stored_results: u64,
    /// Their bytes.
    pub stored_bytes: u64,
}

/// What setting up an organization needs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The organization's name.
    pub org_name: String,
    /// The first admin's email.
    pub admin_email: String,
    /// The first admin's name.
    pub admin_name: String,
    /// The first admin's password.
    pub admin_password: SecretString,
}

/// Organizations.
#[derive(Debug, Clone)]
pub struct OrganizationService {
    shared: Arc<Shared>,
}

fn organization(row: &sqlx::any::AnyRow) -> Result<Organization> {
    Ok(Organization {
        id: col(row, "id")?,
        name: col(row, "name")?,
        slug: col(row, "slug")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
        disabled: flag(row, "disabled")?,
    })
}

impl OrganizationService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// How many organizations exist (a fresh install has none).
    pub async fn count(&self) -> Result<u64> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM organizations")
            .fetch_one(self.shared.store.pool())
            .await
            .map_err(db_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Creates an organization, its `everyone` group and its first admin.
    /// This is set-up, not a user's action: it takes no actor.
    pub async fn create_with_admin(&self, setup: Setup) -> Result<(Organization, User)> {
        let mut v = Validator::new();
        v.name("org_name", &setup.org_name);
        v.name("admin_name", &setup.admin_name);
        v.email("admin_email", &setup.admin_email);
        v.password(
            "admin_password",
            &setup.admin_password,
            &setup.admin_email,
            &setup.admin_name,
        );
        v.finish()?;
        let hash = self.shared.passwords.hash(&setup.admin_password).await?;
        let now = now_micros();
        let org = Organization {
            id: new_id(),
            name: setup.org_name.trim().to_owned(),
            slug: self.free_slug(&slugify(&setup.org_name)).await?,
            created_at: now,
            updated_at: now,
            disabled: false,
        };
        let mut tx = self.shared.store.write().await?;
        sqlx::query("INSERT INTO organizations (id, name, slug, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(org.id.clone())
            .bind(org.name.clone())
            .bind(org.slug.clone())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_group(&mut tx, &org.id, EVERYONE).await?;
        let admin = insert_user(
            &mut tx,
            &org.id,
            &normalize_email(&setup.admin_email),
            setup.admin_name.trim(),
            Role::Admin,
            Some(hash),
        )
        .await?;
        let detail = serde_json::json!({ "admin": admin.id });
        let entry = Entry::new(&org.id, "organization.create", "organization", &org.id);
        audit::record(&mut *tx, entry.detail(detail)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok((org, admin))
    }

    async fn free_slug(&self, base: &str) -> Result<String> {
        for n in 0..1000 {
            let candidate = if n == 0 {
                base.to_owned()
            } else {
                format!("{base}-{n}")
            };
            let sql = "SELECT id FROM organizations WHERE slug = $1";
            let taken = find_one(&self.shared.store, sql, &candidate).await?;
            if taken.is_none() {
                return Ok(candidate);
            }
        }
        Err(Error::conflict(
            codes::CONFLICT_EXISTS,
            format!("no free slug for {base:?}"),
        ))
    }

    /// The actor's organization.
    pub async fn current(&self, actor: &Actor) -> Result<Organization> {
        self.by_id(&actor.org_id).await
    }

    /// What the actor's organization keeps in the result store (the same
    /// figure as the `loupe_stored_result_bytes` metric). Any member may
    /// see it.
    pub async fn usage(&self, actor: &Actor) -> Result<Usage> {
        let (results, bytes): (i64, i64) = sqlx::query_as(
            "SELECT count(*), CAST(COALESCE(sum(byte_count), 0) AS BIGINT) FROM runs \
             WHERE org_id = $1 AND result_location IS NOT NULL",
        )
        .bind(actor.org_id.clone())
        .fetch_one(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        Ok(Usage {
            stored_results: u64::try_from(results).unwrap_or(0),
            stored_bytes: u64::try_from(bytes).unwrap_or(0),
        })
    }

    async fn by_id(&self, id: &str) -> Result<Organization> {
        let sql = "SELECT * FROM organizations WHERE id = $1";
        organization(&fetch_one(&self.shared.store, sql, "organization", id).await?)
    }

    /// The organization with `slug` (for logins that name it).
    pub async fn by_slug(&self, slug: &str) -> Result<Organization> {
        let sql = "SELECT * FROM organizations WHERE slug = $1";
        organization(&fetch_one(&self.shared.store, sql, "organization", slug).await?)
    }

    /// Renames the actor's organization. Admins only.
    pub async fn rename(&self, actor: &Actor, name: &str) -> Result<Organization> {
        actor.require(Role::Admin, "renaming the organization")?;
        validate(|v| v.name("name", name))?;
        let mut tx = self.shared.store.write().await?;
        sqlx::query("UPDATE organizations SET name = $1, updated_at = $2 WHERE id = $3")
            .bind(name.trim().to_owned())
            .bind(now_micros())
            .bind(actor.org_id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let entry = Entry::by(actor, "organization.rename", "organization", &actor.org_id);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        self.by_id(&actor.org_id).await
    }

    // Instance administration: the operator of the whole instance acts
    // here (`loupe admin org …`), above every organization, so these take
    // no actor and are not offered by the HTTP API.

    /// Every organization, oldest first.
    pub async fn list_all(&self) -> Result<Vec<Organization>> {
        let rows = sqlx::query("SELECT * FROM organizations ORDER BY created_at, id")
            .fetch_all(self.shared.store.pool())
            .await
            .map_err(db_error)?;
        rows.iter().map(organization).collect()
    }

    /// The organization whose id or slug is `key`.
    pub async fn by_id_or_slug(&self, key: &str) -> Result<Organization> {
        let sql = "SELECT * FROM organizations WHERE id = $1 OR slug = $1";
        organization(&fetch_one(&self.shared.store, sql, "organization", key).await?)
    }

    /// Disables (or enables again) the organization whose id or slug is
    /// `key`. A disabled organization keeps everything it has; its users
    /// cannot sign in and its sessions and API keys are refused at once.
    pub async fn set_disabled(&self, key: &str, disabled: bool) -> Result<Organization> {
        let org = self.by_id_or_slug(key).await?;
        if org.disabled == disabled {
            return Ok(org);
        }
        let mut tx = self.shared.store.write().await?;
        sqlx::query("UPDATE organizations SET disabled = $1, updated_at = $2 WHERE id = $3")
            .bind(i16::from(disabled))
            .bind(now_micros())
            .bind(org.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let action = if disabled {
            "organization.disable"
        } else {
            "organization.enable"
        };
        audit::record(
            &mut *tx,
            Entry::new(&org.id, action, "organization", &org.id),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.by_id(&org.id).await
    }
}

/// Fails unless the organization `org_id` is enabled: every way in
/// (sessions, refresh tokens, API keys) asks this after finding the user.
pub(crate) async fn require_enabled(shared: &Shared, org_id: &str) -> Result<()> {
    let sql = "SELECT disabled FROM organizations WHERE id = $1";
    let row = fetch_one(&shared.store, sql, "organization", org_id).await?;
    if flag(&row, "disabled")? {
        return Err(Error::unauthenticated(
            codes::AUTH_ORG_DISABLED,
            "the organization is disabled; ask the instance's operator",
        ));
    }
    Ok(())
}
