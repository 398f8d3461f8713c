//! `/organization`, `/users`, `/groups`: administration. Who may do what
//! is core's rule (`OrganizationService`, `UserService`, `GroupService`);
//! these handlers only parse, call and map.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{
    Access, Grant, Group, NewUser, OneTimeToken, Organization, Role, User, UserUpdate,
};
use poem_openapi::param::{Header, Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::common::{
    NoContent, Page, Tagged, etag, if_match, list_request, page, tagged, ts, ts_opt,
};
use crate::auth::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// The organization.
#[derive(Debug)]
pub(crate) struct OrganizationApi(pub(crate) Arc<AppState>);

/// Users (admins).
#[derive(Debug)]
pub(crate) struct UsersApi(pub(crate) Arc<AppState>);

/// Groups and grants (admins).
#[derive(Debug)]
pub(crate) struct GroupsApi(pub(crate) Arc<AppState>);

/// A new name for the organization.
#[derive(Debug, Object)]
pub(crate) struct OrganizationRenameDto {
    /// The new name.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
}

#[OpenApi(prefix_path = "/organization", tag = "ApiTags::Organization")]
impl OrganizationApi {
    /// The caller's organization.
    #[oai(path = "/", method = "get", operation_id = "getOrganization")]
    async fn get(&self, auth: Auth) -> ApiResult<Json<OrganizationDto>> {
        let org = self
            .0
            .deployment
            .services
            .organizations
            .current(auth.actor())
            .await?;
        Ok(Json(org.into()))
    }

    /// Rename the caller's organization (admins). The slug used to sign in
    /// stays.
    #[oai(path = "/", method = "patch", operation_id = "renameOrganization")]
    async fn rename(
        &self,
        auth: Auth,
        body: Json<OrganizationRenameDto>,
    ) -> ApiResult<Json<OrganizationDto>> {
        let org = self
            .0
            .deployment
            .services
            .organizations
            .rename(auth.actor(), &body.0.name)
            .await?;
        Ok(Json(org.into()))
    }
}

/// A new user. Without a password the user is invited: the response
/// carries a one-time token for them to choose one.
#[derive(Debug, Object)]
pub(crate) struct NewUserDto {
    /// Email; unique in the organization, case-insensitively.
    #[oai(validator(min_length = 3, max_length = 320))]
    pub email: String,
    /// Display name.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// Role.
    pub role: RoleDto,
    /// A password (at least 12 characters, not the email), or absent to
    /// invite the user.
    #[oai(skip_serializing_if_is_none, validator(max_length = 256))]
    pub password: Option<String>,
}

/// Changes to a user; fields left out stay as they are.
#[derive(Debug, Object)]
pub(crate) struct UserUpdateDto {
    /// New display name.
    #[oai(
        skip_serializing_if_is_none,
        validator(min_length = 1, max_length = 200)
    )]
    pub name: Option<String>,
    /// New role. The last active admin cannot be demoted.
    #[oai(skip_serializing_if_is_none)]
    pub role: Option<RoleDto>,
    /// Disable (`true`) or enable (`false`). The last active admin cannot
    /// be disabled.
    #[oai(skip_serializing_if_is_none)]
    pub disabled: Option<bool>,
}

/// A one-time token (an invitation or a password reset). Shown once:
/// only its hash is stored.
#[derive(Debug, Object)]
pub(crate) struct OneTimeTokenDto {
    /// The token to send to the user; they redeem it with
    /// `POST /auth/password-reset` to set a password.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl From<OneTimeToken> for OneTimeTokenDto {
    fn from(t: OneTimeToken) -> Self {
        Self {
            token: t.token,
            expires_at: ts(t.expires_at),
        }
    }
}

/// A user just created, with the invitation when no password was given.
#[derive(Debug, Object)]
pub(crate) struct CreatedUserDto {
    /// The user as `GET /users/{id}` shows them.
    pub user: UserDto,
    /// The invitation (only when no password was given). Shown once.
    #[oai(skip_serializing_if_is_none)]
    pub invitation: Option<OneTimeTokenDto>,
}

/// A created user.
#[derive(Debug, ApiResponse)]
pub(crate) enum CreatedUser {
    /// Created; an invitation token, if any, is in the body, once.
    #[oai(status = 201)]
    Created(
        Json<CreatedUserDto>,
        /// The user's revision; send it back in `If-Match` to update them.
        #[oai(header = "ETag")]
        String,
        /// Invitation tokens are secrets: never cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// A started password reset.
#[derive(Debug, ApiResponse)]
pub(crate) enum ResetStarted {
    /// A new reset token (older unused ones stop working). Shown once.
    #[oai(status = 201)]
    Created(
        Json<OneTimeTokenDto>,
        /// Reset tokens are secrets: never cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[OpenApi(prefix_path = "/users", tag = "ApiTags::Users")]
impl UsersApi {
    /// The organization's users.
    #[oai(path = "/", method = "get", operation_id = "listUsers")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page (default 50, at most 200).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Q<Option<u32>>,
        /// Rows to skip.
        #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
        offset: Q<Option<u64>>,
        /// `name`, `email`, `created_at`, `updated_at` or `last_login_at`;
        /// `-` first for descending.
        #[oai(validator(pattern = "^(-?(name|email|created_at|updated_at|last_login_at))?$"))]
        sort: Q<Option<String>>,
        /// Only users with this role.
        role: Q<Option<RoleDto>>,
        /// Only disabled (`true`) or enabled (`false`) users.
        disabled: Q<Option<bool>>,
        /// Text in the name.
        #[oai(validator(max_length = 200))]
        q: Q<Option<String>>,
        /// Text in the email.
        #[oai(validator(max_length = 200))]
        email: Q<Option<String>>,
        /// Only users created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only users created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<UserDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("role", role.0.map(|r| Role::from(r).as_str().to_owned())),
                ("disabled", disabled.0.map(|d| d.to_string())),
                ("q", q.0),
                ("email", email.0),
                ("created_after", created_after.0.map(|t| t.to_rfc3339())),
                ("created_before", created_before.0.map(|t| t.to_rfc3339())),
            ],
        );
        let found = self
            .0
            .deployment
            .services
            .users
            .list(auth.actor(), &request)
            .await?;
        Ok(Json(page(found, UserDto::from)))
    }

    /// Add a user (admins). With a password the user can sign in at once;
    /// without one they are invited, and the response carries the
    /// invitation token to send them (shown only here).
    #[oai(path = "/", method = "post", operation_id = "createUser")]
    async fn create(&self, auth: Auth, body: Json<NewUserDto>) -> ApiResult<CreatedUser> {
        let body = body.0;
        let new = NewUser {
            email: body.email,
            name: body.name,
            role: body.role.into(),
            password: body.password.map(SecretString::from),
        };
        let (user, invitation) = self
            .0
            .deployment
            .services
            .users
            .create(auth.actor(), new)
            .await?;
        let revision = user.revision;
        let created = CreatedUserDto {
            user: user.into(),
            invitation: invitation.map(Into::into),
        };
        Ok(CreatedUser::Created(
            Json(created),
            etag(revision),
            "no-store".to_owned(),
        ))
    }

    /// Get a user of the organization.
    #[oai(path = "/:id", method = "get", operation_id = "getUser")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<UserDto>> {
        let user = self
            .0
            .deployment
            .services
            .users
            .get(auth.actor(), &id)
            .await?;
        let revision = user.revision;
        Ok(tagged(user.into(), revision))
    }

    /// Change a user's name, role or disabled flag (admins). Needs
    /// `If-Match` with the user's `ETag`.
    #[oai(path = "/:id", method = "patch", operation_id = "updateUser")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this user.
        #[oai(name = "If-Match", validator(pattern = r#"^(W/)?"[1-9][0-9]{0,17}"$"#))]
        if_match_header: Header<String>,
        body: Json<UserUpdateDto>,
    ) -> ApiResult<Tagged<UserDto>> {
        let revision = if_match(Some(if_match_header.0.as_str()))?;
        let body = body.0;
        let change = UserUpdate {
            name: body.name,
            role: body.role.map(Into::into),
            disabled: body.disabled,
        };
        let user = self
            .0
            .deployment
            .services
            .users
            .update(auth.actor(), &id, revision, change)
            .await?;
        let revision = user.revision;
        Ok(tagged(user.into(), revision))
    }

    /// Start a password reset for a user (admins): a one-time token to send
    /// them, shown only here. Older unused reset tokens stop working.
    #[oai(
        path = "/:id/password-reset",
        method = "post",
        operation_id = "startPasswordReset"
    )]
    async fn start_reset(&self, auth: Auth, id: Path<String>) -> ApiResult<ResetStarted> {
        let token = self
            .0
            .deployment
            .services
            .users
            .start_reset(auth.actor(), &id)
            .await?;
        Ok(ResetStarted::Created(
            Json(token.into()),
            "no-store".to_owned(),
        ))
    }
}

/// A new group.
#[derive(Debug, Object)]
pub(crate) struct NewGroupDto {
    /// Its name, unique in the organization.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
}

/// The access to give a group.
#[derive(Debug, Object)]
pub(crate) struct GrantAccessDto {
    /// `view` (results, schema and queries) or `run` (also run queries).
    pub access: AccessDto,
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
        /// Rows per page (default 50, at most 200).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Q<Option<u32>>,
        /// Rows to skip.
        #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000")))]
        offset: Q<Option<u64>>,
        /// `name` or `created_at`; `-` first for descending.
        #[oai(validator(pattern = "^(-?(name|created_at))?$"))]
        sort: Q<Option<String>>,
        /// Text in the name.
        #[oai(validator(max_length = 200))]
        q: Q<Option<String>>,
    ) -> ApiResult<Json<Page<GroupDto>>> {
        let request = list_request(limit.0, offset.0, sort.0, &[("q", q.0)]);
        let found = self
            .0
            .deployment
            .services
            .groups
            .list(auth.actor(), &request)
            .await?;
        Ok(Json(page(found, GroupDto::from)))
    }

    /// Create a group (admins).
    #[oai(path = "/", method = "post", operation_id = "createGroup")]
    async fn create(&self, auth: Auth, body: Json<NewGroupDto>) -> ApiResult<CreatedGroup> {
        let group = self
            .0
            .deployment
            .services
            .groups
            .create(auth.actor(), &body.0.name)
            .await?;
        Ok(CreatedGroup::Created(Json(group.into())))
    }

    /// Get a group and its members.
    #[oai(path = "/:id", method = "get", operation_id = "getGroup")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<GroupDto>> {
        let group = self
            .0
            .deployment
            .services
            .groups
            .get(auth.actor(), &id)
            .await?;
        Ok(Json(group.into()))
    }

    /// Delete a group with its memberships and grants (admins). The
    /// `everyone` group cannot be deleted.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteGroup")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .deployment
            .services
            .groups
            .delete(auth.actor(), &id)
            .await?;
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
        let group = self
            .0
            .deployment
            .services
            .groups
            .add_member(auth.actor(), &id, &user_id)
            .await?;
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
        let group = self
            .0
            .deployment
            .services
            .groups
            .remove_member(auth.actor(), &id, &user_id)
            .await?;
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
        let grant = self
            .0
            .deployment
            .services
            .groups
            .grant(auth.actor(), &id, &datasource_id, body.0.access.into())
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
        self.0
            .deployment
            .services
            .groups
            .revoke(auth.actor(), &id, &datasource_id)
            .await?;
        Ok(NoContent::Done)
    }
}

/// A role in the organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum RoleDto {
    /// Reads what their groups may see.
    Viewer,
    /// Also creates and edits their own and shared objects.
    Editor,
    /// Also manages users, groups, grants and datasources.
    Admin,
}

impl From<Role> for RoleDto {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => Self::Viewer,
            Role::Editor => Self::Editor,
            Role::Admin => Self::Admin,
        }
    }
}

impl From<RoleDto> for Role {
    fn from(role: RoleDto) -> Self {
        match role {
            RoleDto::Viewer => Self::Viewer,
            RoleDto::Editor => Self::Editor,
            RoleDto::Admin => Self::Admin,
        }
    }
}

/// A user. Never carries a password or its hash.
#[derive(Debug, Object)]
pub(crate) struct UserDto {
    /// Its id.
    pub id: String,
    /// Email, lowercase.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: RoleDto,
    /// A disabled user cannot sign in or use keys.
    pub disabled: bool,
    /// False until an invited user sets a password.
    pub has_password: bool,
    /// Set while the account is locked after failed logins.
    #[oai(skip_serializing_if_is_none)]
    pub locked_until: Option<DateTime<Utc>>,
    /// The last successful login.
    #[oai(skip_serializing_if_is_none)]
    pub last_login_at: Option<DateTime<Utc>>,
    /// Increases with each change; the `ETag`.
    pub revision: i64,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
    /// When the user last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            name: u.name,
            role: u.role.into(),
            disabled: u.disabled,
            has_password: u.has_password,
            locked_until: ts_opt(u.locked_until),
            last_login_at: ts_opt(u.last_login_at),
            revision: u.revision,
            created_at: ts(u.created_at),
            updated_at: ts(u.updated_at),
        }
    }
}

/// An organization.
#[derive(Debug, Object)]
pub(crate) struct OrganizationDto {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// A short unique name, used to sign in when several exist.
    pub slug: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Organization> for OrganizationDto {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id,
            name: o.name,
            slug: o.slug,
            created_at: ts(o.created_at),
            updated_at: ts(o.updated_at),
        }
    }
}

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

impl From<Access> for AccessDto {
    fn from(access: Access) -> Self {
        match access {
            Access::View => Self::View,
            Access::Run => Self::Run,
        }
    }
}

impl From<AccessDto> for Access {
    fn from(access: AccessDto) -> Self {
        match access {
            AccessDto::View => Self::View,
            AccessDto::Run => Self::Run,
        }
    }
}

/// A group's access to a datasource.
#[derive(Debug, Object)]
pub(crate) struct GrantDto {
    /// The group.
    pub group_id: String,
    /// The datasource.
    pub datasource_id: String,
    /// What the group's members may do.
    pub access: AccessDto,
}

impl From<Grant> for GrantDto {
    fn from(g: Grant) -> Self {
        Self {
            group_id: g.group_id,
            datasource_id: g.datasource_id,
            access: g.access.into(),
        }
    }
}
