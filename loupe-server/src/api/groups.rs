//! `/groups`: groups of users, their members and their grants on
//! datasources. Who may do what is the services' rule (`GroupService`);
//! these handlers only parse, call and map.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{Access, Grant, GrantRules, Group};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

use super::ApiTags;
use super::bounded::Name;
use super::common::{NoContent, same_variants, ts};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Groups and grants (admins).
#[derive(Debug)]
pub(crate) struct GroupsApi(pub(crate) Arc<AppState>);

/// A group of users.
#[derive(Debug, Object)]
pub(crate) struct GroupDto {
    /// Its id.
    pub id: String,
    /// Its name, unique in the organization.
    pub name: String,
    /// Ids of its members.
    pub members: Vec<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl From<Group> for GroupDto {
    fn from(g: Group) -> Self {
        Self {
            id: g.id,
            name: g.name,
            members: g.members,
            created_at: ts(g.created_at),
        }
    }
}

/// What a group's members may do with a datasource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum AccessDto {
    /// See results, schema and queries; not run or edit.
    View,
    /// Also run queries on it.
    Run,
}

same_variants!(AccessDto, Access: View, Run);

/// A group's access to a datasource.
#[derive(Debug, Object)]
pub(crate) struct GrantDto {
    /// The group.
    pub group_id: String,
    /// The datasource.
    pub datasource_id: String,
    /// What the group's members may do.
    pub access: AccessDto,
    /// What the grant restricts its members to.
    pub rules: GrantRulesDto,
}

impl From<Grant> for GrantDto {
    fn from(g: Grant) -> Self {
        Self {
            group_id: g.group_id,
            datasource_id: g.datasource_id,
            access: g.access.into(),
            rules: g.rules.into(),
        }
    }
}

/// Row-level security on a grant. A member of several groups gets what
/// each allows: a grant without rules lifts the others' rules.
#[derive(Debug, Default, Object)]
pub(crate) struct GrantRulesDto {
    /// Members may run saved queries only, never ad-hoc SQL.
    #[oai(default)]
    pub saved_only: bool,
    /// Locked parameters: parameter name -> the attribute of the caller
    /// that binds it. No caller may give these parameters a value; a
    /// saved query that does not take one cannot run under the grant,
    /// nor can ad-hoc SQL.
    #[oai(default)]
    pub locked: BTreeMap<String, String>,
    /// Row filters (files datasources): table -> a boolean SQL expression
    /// over the table's columns and the caller's attributes, written
    /// `{{ attribute }}` (`region = {{ region }}`). Every reference to
    /// the table sees only the rows that pass.
    #[oai(default)]
    pub row_filters: BTreeMap<String, String>,
}

impl From<GrantRules> for GrantRulesDto {
    fn from(r: GrantRules) -> Self {
        Self {
            saved_only: r.saved_only,
            locked: r.locked,
            row_filters: r.row_filters,
        }
    }
}

impl From<GrantRulesDto> for GrantRules {
    fn from(r: GrantRulesDto) -> Self {
        Self {
            saved_only: r.saved_only,
            locked: r.locked,
            row_filters: r.row_filters,
        }
    }
}

/// A new group.
#[derive(Debug, Object)]
pub(crate) struct NewGroupDto {
    /// Its name, unique in the organization.
    pub name: Name,
}

/// The access to give a group.
#[derive(Debug, Object)]
pub(crate) struct GrantAccessDto {
    /// `view` (results, schema and queries) or `run` (also run queries).
    pub access: AccessDto,
    /// Row-level security; none when left out.
    #[oai(default)]
    pub rules: GrantRulesDto,
}

/// A created group.
#[derive(Debug, ApiResponse)]
pub(crate) enum CreatedGroup {
    /// Created.
    #[oai(status = 201)]
    Created(Json<GroupDto>),
}

#[OpenApi(prefix_path = "/groups", tag = "ApiTags::Groups")]
impl GroupsApi {
    /// The organization's groups, with their members.
    #[oai(path = "/", method = "get", operation_id = "listGroups")]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Groups>>>,
        /// Text in the name.
        q: Q<Option<FilterText>>,
    ) -> ApiResult<Json<Page<GroupDto>>> {
        let request = list_request(limit.0, offset.0, sort.0, &[("q", &q)]);
        let groups = &self.0.services().groups;
        Ok(page(groups.list(auth.actor(), &request).await?))
    }

    /// Create a group (admins).
    #[oai(path = "/", method = "post", operation_id = "createGroup")]
    async fn create(&self, auth: Auth, body: Json<NewGroupDto>) -> ApiResult<CreatedGroup> {
        let groups = &self.0.services().groups;
        let group = groups.create(auth.actor(), body.0.name.as_str()).await?;
        Ok(CreatedGroup::Created(Json(group.into())))
    }

    /// Get a group and its members.
    #[oai(path = "/:id", method = "get", operation_id = "getGroup")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<GroupDto>> {
        let group = self.0.services().groups.get(auth.actor(), &id).await?;
        Ok(Json(group.into()))
    }

    /// Delete a group with its memberships and grants (admins). The
    /// `everyone` group cannot be deleted.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteGroup")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0.services().groups.delete(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }

    /// Add a user to a group (admins). Adding a member twice is not an
    /// error.
    #[oai(
        path = "/:id/members/:user_id",
        method = "put",
        operation_id = "addGroupMember"
    )]
    async fn add_member(
        &self,
        auth: Auth,
        id: Path<String>,
        user_id: Path<String>,
    ) -> ApiResult<Json<GroupDto>> {
        let groups = &self.0.services().groups;
        let group = groups.add_member(auth.actor(), &id, &user_id).await?;
        Ok(Json(group.into()))
    }

    /// Remove a user from a group (admins); the group as it is now.
    #[oai(
        path = "/:id/members/:user_id",
        method = "delete",
        operation_id = "removeGroupMember"
    )]
    async fn remove_member(
        &self,
        auth: Auth,
        id: Path<String>,
        user_id: Path<String>,
    ) -> ApiResult<Json<GroupDto>> {
        let groups = &self.0.services().groups;
        let group = groups.remove_member(auth.actor(), &id, &user_id).await?;
        Ok(Json(group.into()))
    }

    /// Give a group's members access to a datasource, replacing what the
    /// group had (admins).
    #[oai(
        path = "/:id/grants/:datasource_id",
        method = "put",
        operation_id = "setGroupGrant"
    )]
    async fn grant(
        &self,
        auth: Auth,
        id: Path<String>,
        datasource_id: Path<String>,
        body: Json<GrantAccessDto>,
    ) -> ApiResult<Json<GrantDto>> {
        let body = body.0;
        let groups = &self.0.services().groups;
        let grant = groups
            .grant_with_rules(
                auth.actor(),
                &id,
                &datasource_id,
                body.access.into(),
                body.rules.into(),
            )
            .await?;
        Ok(Json(grant.into()))
    }

    /// Take a group's access to a datasource away (admins).
    #[oai(
        path = "/:id/grants/:datasource_id",
        method = "delete",
        operation_id = "revokeGroupGrant"
    )]
    async fn revoke(
        &self,
        auth: Auth,
        id: Path<String>,
        datasource_id: Path<String>,
    ) -> ApiResult<NoContent> {
        let groups = &self.0.services().groups;
        groups.revoke(auth.actor(), &id, &datasource_id).await?;
        Ok(NoContent::Done)
    }
}
