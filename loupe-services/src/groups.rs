//! Groups, memberships, and the grants that give a group's members access
//! to a datasource (`run`, or `view` for results only). Admins manage them;
//! every change is audited.

use loupe_core::codes;
use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Transaction};

use super::actor::{Access, Actor, Role};
use super::audit::{self, Entry};
use super::organizations::EVERYONE;
use super::rls::GrantRules;
use super::validate::validate;
use crate::meta::{Children, ids};
use crate::meta::{
    Filter, ListPage, ListRequest, ListSpec, SqlBuilder, db_error, new_id, now_micros,
};
use crate::meta::{col, fetch_in_org, only, taken, to_json};
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
    /// What the grant restricts its members to (row-level security).
    pub rules: GrantRules,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "user_groups g",
    alias: "g",
    sorts: &["name", "created_at"],
    default_sort: "name",
    filters: &[("q", Filter::Contains("g.name"))],
    created: None,
    updated: None,
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
///
/// An actor with no grant at all is answered `hidden()`: the not-found of
/// the object they asked for, word for word what they would get if it did
/// not exist, so that a refusal never confirms an object they cannot see.
/// The key's scope and a view-only grant are refused as such (403): by
/// then the actor can see the object.
pub(crate) async fn require_run(
    shared: &Shared,
    actor: &Actor,
    datasource_id: &str,
    hidden: impl FnOnce() -> Error,
) -> Result<()> {
    let access = access(shared, actor, datasource_id).await?;
    let Some(access) = access else {
        return Err(hidden());
    };
    if !actor.may_run() {
        return Err(Error::refused(
            codes::ACCESS_SCOPE,
            "this API key may not run queries",
        ));
    }
    match access {
        Access::Run => Ok(()),
        Access::View => Err(Error::refused(
            codes::ACCESS_VIEW_ONLY,
            "your groups may view results of this datasource but not run queries on it",
        )),
    }
}

/// Fails unless the actor may at least view the datasource's results; an
/// actor with no grant is answered `hidden()`, as in [`require_run`].
pub(crate) async fn require_view(
    shared: &Shared,
    actor: &Actor,
    datasource_id: &str,
    hidden: impl FnOnce() -> Error,
) -> Result<Access> {
    access(shared, actor, datasource_id)
        .await?
        .ok_or_else(hidden)
}

/// Fails with not-found unless datasource `id` is in the actor's
/// organization.
pub(crate) async fn datasource_in_org(shared: &Shared, actor: &Actor, id: &str) -> Result<()> {
    let sql = "SELECT org_id FROM datasources WHERE id = $1";
    fetch_in_org(&shared.store, &actor.org_id, sql, "datasource", id).await?;
    Ok(())
}

/// Inserts group `name` of organization `org_id` in `tx`; returns its id.
pub(crate) async fn insert_group(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    name: &str,
) -> Result<String> {
    let id = new_id();
    let now = now_micros();
    sqlx::query("INSERT INTO user_groups (id, org_id, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(id.clone())
        .bind(org_id.to_owned())
        .bind(name.to_owned())
        .bind(now)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(taken("name", format!("a group named {name:?} already exists")))?;
    Ok(id)
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

/// Appends to `sql` a 0/1 column expression: whether the actor may see
/// objects on datasource column `column` (always 1 for admins; 0 when the
/// column is NULL). Reads that hide some of their rows' parts (a dashboard's
/// widgets) decide in the statement that reads them, as
/// [`visible_datasources`] filters whole rows.
pub(crate) fn may_see(sql: &mut SqlBuilder, actor: &Actor, column: &str) {
    if actor.is_admin() {
        sql.push("CAST(1 AS SMALLINT)");
        return;
    }
    sql.push(&format!(
        "CAST(CASE WHEN {column} IN (SELECT g.datasource_id FROM datasource_grants g \
         JOIN group_members m ON m.group_id = g.group_id WHERE m.user_id = "
    ));
    sql.bind_text(&actor.user_id);
    sql.push(") THEN 1 ELSE 0 END AS SMALLINT)");
}

impl GroupService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    async fn group(&self, actor: &Actor, id: &str) -> Result<Group> {
        let sql = "SELECT * FROM user_groups WHERE id = $1";
        let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "group", id).await?;
        only(
            self.with_members(std::slice::from_ref(&row)).await?,
            "group",
        )
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
                    members: members.values(&id, "user_id")?,
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
        let rows = SPEC.org_rows(&actor.org_id);
        let page = SPEC.page(&self.shared.store, rows, request).await?;
        let items = self.with_members(&page.items).await?;
        Ok(page.with_items(items))
    }

    /// Creates a group. Admins only.
    pub async fn create(&self, actor: &Actor, name: &str) -> Result<Group> {
        actor.require(Role::Admin, "managing groups")?;
        validate(|v| v.name("name", name.trim()))?;
        let mut tx = self.shared.store.write().await?;
        let id = insert_group(&mut tx, &actor.org_id, name.trim()).await?;
        audit::record(&mut *tx, Entry::by(actor, "group.create", "group", &id)).await?;
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
                codes::CONFLICT_BUILTIN,
                "the everyone group cannot be deleted",
            ));
        }
        let mut tx = self.shared.store.write().await?;
        audit::delete_recorded(&mut tx, actor, "user_groups", "group", id, None).await?;
        tx.commit().await.map_err(db_error)
    }

    /// Adds a user of the organization to a group. Admins only.
    pub async fn add_member(&self, actor: &Actor, group_id: &str, user_id: &str) -> Result<Group> {
        actor.require(Role::Admin, "managing groups")?;
        self.group(actor, group_id).await?;
        let sql = "SELECT org_id FROM users WHERE id = $1";
        fetch_in_org(&self.shared.store, &actor.org_id, sql, "user", user_id).await?;
        let add = sqlx::query(
            "INSERT INTO group_members (group_id, user_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(group_id.to_owned())
        .bind(user_id.to_owned())
        .bind(now_micros());
        self.change_member(actor, group_id, user_id, "group.member_add", add)
            .await
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
        // Another organization's user is not found, as everywhere else.
        let sql = "SELECT org_id FROM users WHERE id = $1";
        fetch_in_org(&self.shared.store, &actor.org_id, sql, "user", user_id).await?;
        let remove = sqlx::query("DELETE FROM group_members WHERE group_id = $1 AND user_id = $2")
            .bind(group_id.to_owned())
            .bind(user_id.to_owned());
        self.change_member(actor, group_id, user_id, "group.member_remove", remove)
            .await
    }

    /// Runs `change`, which adds `user_id` to the group or removes them,
    /// and records `action` when it changed anything.
    async fn change_member(
        &self,
        actor: &Actor,
        group_id: &str,
        user_id: &str,
        action: &str,
        change: Query<'static, Any, AnyArguments>,
    ) -> Result<Group> {
        let mut tx = self.shared.store.write().await?;
        let changed = change.execute(&mut *tx).await.map_err(db_error)?;
        if changed.rows_affected() > 0 {
            let detail = serde_json::json!({ "user": user_id });
            let entry = Entry::by(actor, action, "group", group_id).detail(detail);
            audit::record(&mut *tx, entry).await?;
        }
        tx.commit().await.map_err(db_error)?;
        self.group(actor, group_id).await
    }

    /// Gives a group `access` to a datasource (replacing what it had,
    /// rules included). Admins only.
    pub async fn grant(
        &self,
        actor: &Actor,
        group_id: &str,
        datasource_id: &str,
        access: Access,
    ) -> Result<Grant> {
        self.grant_with_rules(
            actor,
            group_id,
            datasource_id,
            access,
            GrantRules::default(),
        )
        .await
    }

    /// Gives a group `access` to a datasource under `rules` (row-level
    /// security; see [`GrantRules`]), replacing what it had. Admins only.
    pub async fn grant_with_rules(
        &self,
        actor: &Actor,
        group_id: &str,
        datasource_id: &str,
        access: Access,
        rules: GrantRules,
    ) -> Result<Grant> {
        actor.require(Role::Admin, "managing grants")?;
        self.group(actor, group_id).await?;
        let sql = "SELECT org_id, kind FROM datasources WHERE id = $1";
        let row = fetch_in_org(
            &self.shared.store,
            &actor.org_id,
            sql,
            "datasource",
            datasource_id,
        )
        .await?;
        let kind: String = col(&row, "kind")?;
        validate(|v| rules.validate(v, &kind))?;
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO datasource_grants (group_id, datasource_id, access, rules, created_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (group_id, datasource_id) DO UPDATE SET access = excluded.access, rules = excluded.rules",
        )
        .bind(group_id.to_owned())
        .bind(datasource_id.to_owned())
        .bind(access.as_str())
        .bind(to_json(&rules)?)
        .bind(now_micros())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let detail =
            serde_json::json!({ "datasource": datasource_id, "access": access, "rules": rules });
        let entry = Entry::by(actor, "grant.set", "group", group_id).detail(detail);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(Grant {
            group_id: group_id.to_owned(),
            datasource_id: datasource_id.to_owned(),
            access,
            rules,
        })
    }

    /// Takes a group's access to a datasource away. Admins only.
    pub async fn revoke(&self, actor: &Actor, group_id: &str, datasource_id: &str) -> Result<()> {
        actor.require(Role::Admin, "managing grants")?;
        self.group(actor, group_id).await?;
        // Another organization's datasource is not found, as everywhere else.
        datasource_in_org(&self.shared, actor, datasource_id).await?;
        let mut tx = self.shared.store.write().await?;
        sqlx::query("DELETE FROM datasource_grants WHERE group_id = $1 AND datasource_id = $2")
            .bind(group_id.to_owned())
            .bind(datasource_id.to_owned())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        let detail = serde_json::json!({ "datasource": datasource_id });
        let entry = Entry::by(actor, "grant.revoke", "group", group_id).detail(detail);
        audit::record(&mut *tx, entry).await?;
        tx.commit().await.map_err(db_error)
    }

    /// The grants on a datasource. Admins only.
    pub async fn grants(&self, actor: &Actor, datasource_id: &str) -> Result<Vec<Grant>> {
        actor.require(Role::Admin, "reading grants")?;
        datasource_in_org(&self.shared, actor, datasource_id).await?;
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT group_id, access, rules FROM datasource_grants WHERE datasource_id = $1 ORDER BY group_id",
        )
        .bind(datasource_id.to_owned())
        .fetch_all(self.shared.store.pool())
        .await
        .map_err(db_error)?;
        rows.into_iter()
            .map(|(group_id, access, rules)| {
                Ok(Grant {
                    group_id,
                    datasource_id: datasource_id.to_owned(),
                    access: Access::parse(&access)
                        .ok_or_else(|| Error::internal(format!("stored access {access:?}")))?,
                    rules: serde_json::from_str(&rules)
                        .map_err(|e| Error::internal_from("a grant's stored rules", e))?,
                })
            })
            .collect()
    }
}
