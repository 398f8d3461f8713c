//! `/organization`, `/users`, `/groups`: administration.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_core::services::{Organization, Role, User};
use poem_openapi::{Enum, Object, OpenApi};

use super::common::{ts, ts_opt};
use crate::state::AppState;

/// The organization.
#[derive(Debug)]
pub(crate) struct OrganizationApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl OrganizationApi {}

/// Users (admins).
#[derive(Debug)]
pub(crate) struct UsersApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl UsersApi {}

/// Groups and grants (admins).
#[derive(Debug)]
pub(crate) struct GroupsApi(pub(crate) Arc<AppState>);

#[OpenApi]
impl GroupsApi {}

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
    pub locked_until: Option<DateTime<Utc>>,
    /// The last successful login.
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

/// A group.
#[derive(Debug, Object)]
pub(crate) struct GroupDto {
    /// Its id.
    pub id: String,
}
