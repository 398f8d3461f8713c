//! Groups, memberships, and the grants that give a group's members access
//! to a datasource (`run`, or `view` for results only). Admins manage them;
//! every change is audited.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;

use super::actor::{Access, Actor, Role};
use super::audit::{self, Entry, Outcome, count};
use super::organizations::EVERYONE;
use super::validate::Validator;
use crate::meta::{Children, ids};
use crate::meta::{
    Filter, ListPage, ListRequest, ListSpec, SqlBuilder, db_error, new_id, now_micros,
};
use crate::meta::{col, fetch_optional};
use crate::services::Shared;
use loupe_core::{Error, Result};

/// A group of users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    /// Its id.
    pub id: String,
    /// Its name, unique in the organization.
    pub name: String,
    /// Ids of its members.
    pub members: Vec<String>,
    /// When it was created (µs).
    pub created_at: i64,
}

/// A group's access to a datasource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The group.
    pub group_id: String,
    /// The datasource.
    pub datasource_id: String,
    /// What its members may do.
    pub access: Access,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    alias: "g",
    sorts: &[("name", "g.name"), ("created_at", "g.created_at")],
    default_sort: "name",
    filters: &[("q", Filter::Contains("g.name"))],
};

/// Groups and grants.
#[derive(Debug, Clone)]
pub struct GroupService {
    shared: Arc<Shared>,
}

/// The access `actor` has to datasource `datasource_id` (which must be in
/// the actor's organization): admins run everything; others get the best
/// grant of the groups they belong to (read from the store, not the actor,
/// so a revoked grant takes effect at once).
pub(crate) async fn access(
    shared: &Shared,
    actor: &Actor,
    datasource_id: &str,
) -> Result<Option<Access>> {
    Ok(access_to_each(shared, actor, &[datasource_id.to_owned()])
        .await?
        .remove(datasource_id))
}

/// [`access`] to each of `datasource_ids`, in one statement however many
/// there are (a page of datasources). A datasource the actor has no access
/// to is left out.
pub(crate) async fn access_to_each(
    shared: &Shared,
    actor: &Actor,
    datasource_ids: &[String],
) -> Result<HashMap<String, Access>> {
    if actor.is_admin() {
        return Ok(datasource_ids
            .iter()
            .map(|id| (id.clone(), Access::Run))
            .collect());
    }
    let mut select = SqlBuilder::new(
        "SELECT g.datasource_id, g.access FROM datasource_grants g \
         JOIN group_members m ON m.group_id = g.group_id WHERE m.user_id = ",
    );
    select
        .bind_text(&actor.user_id)
        .push(" AND g.datasource_id");
    let grants = Children::load(&shared.store, select, datasource_ids, "", "datasource_id").await?;
    let mut best = HashMap::new();
    for id in datasource_ids {
        let mut found = None;
        for grant in grants.get(id) {
            // `None` sorts below every access: this keeps the best grant,
            // and a stored value this build does not know grants nothing.
            found = found.max(Access::parse(&col::<String>(grant, "access")?));
        }
        if let Some(access) = found {
            best.insert(id.clone(), access);
        }
    }
    Ok(best)
}

/// Fails unless the actor may run queries on the datasource.
pub(crate) async fn require_run(shared: &Shared, actor: &Actor, datasource_id: &str) -> Result<()> {
    if !actor.may_run() {
        return Err(Error::refused(
            "access.scope",
            "this API key may not run queries",
        ));
    }
    match access(shared, actor, datasource_id).await? {
        Some(Access::Run) => Ok(()),
        Some(Access::View) => Err(Error::refused(
            "access.view_only",
            "your groups may view results of this datasource but not run queries on it",
        )),
        None => Err(Error::refused(
            "access.no_grant",
            "none of your groups has access to this datasource",
        )),
    }
}

/// Fails unless the actor may at least view the datasource's results.
pub(crate) async fn require_view(
    shared: &Shared,
    actor: &Actor,
    datasource_id: &str,
) -> Result<Access> {
    access(shared, actor, datasource_id).await?.ok_or_else(|| {
        Error::refused(
            "access.no_grant",
            "none of your groups has access to this datasource",
        )
    })
}

/// The SQL condition "the actor may see objects on datasource column
/// `column`", appended to `sql` (nothing for admins).
pub(crate) fn visible_datasources(sql: &mut SqlBuilder, actor: &Actor, column: &str) {
    if actor.is_admin() {
        return;
    }
    sql.push(&format!(
        " AND {column} IN (SELECT g.datasource_id FROM datasource_grants g \
         JOIN group_members m ON m.group_id = g.group_id WHERE m.user_id = "
    ));
    sql.bind_text(&actor.user_id);
    sql.push(")");
}

impl GroupService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn group(&self, actor: &Actor, id: &str) -> Result<Group> {
        let row = fetch_optional(
            &self.shared.store,
            sqlx::query("SELECT * FROM user_groups WHERE id = $1").bind(id.to_owned()),
        )
        .await?
        .ok_or_else(|| Error::not_found("group", id))?;
        let org: String = col(&row, "org_id")?;
        actor.same_org(&org, "group", id)?;
        self.with_members(std::slice::from_ref(&row))
            .await?
            .pop()
            .ok_or_else(|| Error::internal("a group row was read but not built"))
    }

    /// The groups of `rows` with their members: one statement for the
    /// members however many rows, so a list page costs as much as a
    /// single read.
    async fn with_members(&self, rows: &[AnyRow]) -> Result<Vec<Group>> {
        let ids = ids(rows)?;
        let members = Children::load(
            &self.shared.store,
            SqlBuilder::new("SELECT group_id, user_id FROM group_members WHERE group_id"),
            &ids,
            " ORDER BY group_id, user_id",
            "group_id",
        )
        .await?;
        rows.iter()
            .zip(ids)
            .map(|(row, id)| {
                Ok(Group {
                    name: col(row, "name")?,
                    members: members
                        .get(&id)
                        .iter()
                        .map(|m| col(m, "user_id"))
                        .collect::<Result<_>>()?,
                    created_at: col(row, "created_at")?,
                    id,
                })
            })
            .collect()
    }

    /// A group of the actor's organization.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Group> {
        self.group(actor, id).await
    }

    /// The organization's groups.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Group>> {
        let mut filter = SqlBuilder::new(" FROM user_groups g WHERE g.org_id = ");
        filter.bind_text(&actor.org_id);
        let paging = SPEC.apply(&mut filter, request)?;
        let total = count(&self.shared, &filter).await?;
        let mut select = filter.prefixed("SELECT g.*");
        select.page(&paging);
        let rows = select
            .query()
            .fetch_all(self.shared.store.pool())
            .await
            .map_err(db_error)?;
        Ok(ListPage {
            items: self.with_members(&rows).await?,
            total,
            limit: paging.limit,
            offset: paging.offset,
        })
    }

    /// Creates a group. Admins only.
    pub async fn create(&self, actor: &Actor, name: &str) -> Result<Group> {
        actor.require(Role::Admin, "managing groups")?;
        let mut v = Validator::new();
        v.name("name", name.trim());
        v.finish()?;
        let id = new_id();
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        sqlx::query("INSERT INTO user_groups (id, org_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id.clone())
            .bind(actor.org_id.clone())
            .bind(name.trim().to_owned())
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| match db_error(e) {
                Error::Conflict { .. } => Error::field("name", "taken", format!("a group named {:?} already exists", name.trim())),
                other => other,
            })?;
        self.audit(&mut tx, actor, "group.create", &id, None)
            .await?;
        tx.commit().await.map_err(db_error)?;
        self.group(actor, &id).await
    }

    /// Deletes a group (its grants and memberships go with it). The
    /// `everyone` group stays. Admins only.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Role::Admin, "managing groups")?;
        let group = self.group(actor, id).await?;
        if group.name == EVERYONE {
            return Err(Error::conflict(
                "conflict.builtin",
                "the everyone group cannot be deleted",
            ));
        }
        let mut tx = self.shared.store.write().await?;
        sqlx::query("DELETE FROM user_groups WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        self.audit(&mut tx, actor, "group.delete", id, None).await?;
        tx.commit().await.map_err(db_error)
    }

    /// Adds a user of the organization to a group. Admins only.
    pub async fn add_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group> {
        actor.require(Role::Admin, "managing groups")?;
        self.group(actor, group_id).await?;
        self.same_org_user(actor, user_id).await?;
        let mut tx = self.shared.store.write().await?;
        let inserted = sqlx::query(
            "INSERT INTO group_members (group_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(group_id.to_owned())
        .bind(user_id.to_owned())
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        if inserted.rows_affected() > 0 {
            self.audit(
                &mut tx,
                actor,
                "group.member_add",
                group_id,
                Some(serde_json::json!({ "user": user_id })),
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.group(actor, group_id).await
    }

    /// Removes a user from a group. Admins only.
    pub async fn remove_member(
        &self,
        actor: &Actor,
        group_id: &str,
        user_id: &str,
    ) -> Result<Group> {
        actor.require(Role::Admin, "managing groups")?;
        self.group(actor, group_id).await?;
        let mut tx = self.shared.store.write().await?;
        let removed = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id.to_owned())
            .bind(user_id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        if removed.rows_affected() > 0 {
            self.audit(
                &mut tx,
                actor,
                "group.member_remove",
                group_id,
                Some(serde_json::json!({ "user": user_id })),
            )
            .await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.group(actor, group_id).await
    }

    /// Gives a group `access` to a datasource (replacing what it had).
    /// Admins only.
    pub async fn grant(
        &self,
        actor: &Actor,
        group_id: &str,
        datasource_id: &str,
        access: Access,
    ) -> Result<Grant> {
        actor.require(Role::Admin, "managing grants")?;
        self.group(actor, group_id).await?;
        self.same_org_datasource(actor, datasource_id).await?;
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO datasource_grants (group_id, datasource_id, access, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (group_id, datasource_id) DO UPDATE SET access = excluded.access",
        )
        .bind(group_id.to_owned())
        .bind(datasource_id.to_owned())
        .bind(access.as_str())
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        self.audit(
            &mut tx,
            actor,
            "grant.set",
            group_id,
            Some(serde_json::json!({ "datasource": datasource_id, "access": access })),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Grant {
            group_id: group_id.to_owned(),
            datasource_id: datasource_id.to_owned(),
            access,
        })
    }

    /// Takes a group's access to a datasource away. Admins only.
    pub async fn revoke(&self, actor: &Actor, group_id: &str, datasource_id: &str) -> Result<()> {
        actor.require(Role::Admin, "managing grants")?;
        self.group(actor, group_id).await?;
        let mut tx = self.shared.store.write().await?;
        sqlx::query("DELETE FROM datasource_grants WHERE group_id = $1 AND datasource_id = $2")
            .bind(group_id.to_owned())
            .bind(datasource_id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        self.audit(
            &mut tx,
            actor,
            "grant.revoke",
            group_id,
            Some(serde_json::json!({ "datasource": datasource_id })),
        )
        .await?;
        tx.commit().await.map_err(db_error)
    }

    /// The grants on a datasource. Admins only.
    pub async fn grants(&self, actor: &Actor, datasource_id: &str) -> Result<Vec<Grant>> {
        actor.require(Role::Admin, "reading grants")?;
        self.same_org_datasource(actor, datasource_id).await?;
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT group_id, access FROM datasource_grants WHERE datasource_id = $1 ORDER BY group_id",
        )
        .bind(datasource_id.to_owned())
        .fetch_all(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(group_id, access)| {
                Ok(Grant {
                    group_id,
                    datasource_id: datasource_id.to_owned(),
                    access: Access::parse(&access)
                        .ok_or_else(|| Error::internal(format!("stored access {access:?}")))?,
                })
            })
            .collect()
    }

    async fn same_org_user(&self, actor: &Actor, user_id: &str) -> Result<()> {
        let row = fetch_optional(
            &self.shared.store,
            sqlx::query("SELECT org_id FROM users WHERE id = $1").bind(user_id.to_owned()),
        )
        .await?
        .ok_or_else(|| Error::not_found("user", user_id))?;
        actor.same_org(&col::<String>(&row, "org_id")?, "user", user_id)
    }

    async fn same_org_datasource(&self, actor: &Actor, datasource_id: &str) -> Result<()> {
        let row = fetch_optional(
            &self.shared.store,
            sqlx::query("SELECT org_id FROM datasources WHERE id = $1")
                .bind(datasource_id.to_owned()),
        )
        .await?
        .ok_or_else(|| Error::not_found("datasource", datasource_id))?;
        actor.same_org(&col::<String>(&row, "org_id")?, "datasource", datasource_id)
    }

    async fn audit(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        actor: &Actor,
        action: &str,
        group_id: &str,
        detail: Option<serde_json::Value>,
    ) -> Result<()> {
        audit::record(
            &mut **tx,
            Entry {
                org_id: &actor.org_id,
                actor: Some(actor),
                action,
                resource_type: "group",
                resource_id: Some(group_id),
                outcome: Outcome::Success,
                detail,
            },
        )
        .await
    }
}
