//! `/users`: the organization's users, invitations, password resets and
//! sign-in unlocks. Who may do and see what is the services' rule
//! (`UserService`, `UserView`); these handlers only parse, call and map.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{NewUser, OneTimeToken, Role, User, UserUpdate, UserView, limits};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use secrecy::SecretString;

use super::ApiTags;
use super::bounded::{Name, Text};
use super::common::{
    IfMatch, NoContent, Tagged, etag, no_store, same_variants, tagged, ts, ts_opt,
};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Users (admins).
#[derive(Debug)]
pub(crate) struct UsersApi(pub(crate) Arc<AppState>);

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

same_variants!(RoleDto, Role: Viewer, Editor, Admin);

impl lists::FilterValue for RoleDto {
    fn filter_value(&self) -> String {
        Role::from(*self).as_str().to_owned()
    }
}

/// A user. Never carries a password or its hash. Admins, and the user
/// themselves, see every field; everyone else sees `id` and `name` only.
#[derive(Debug, Object)]
pub(crate) struct UserDto {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email, lowercase. Admins and the user themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub email: Option<String>,
    /// Role. Admins and the user themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub role: Option<RoleDto>,
    /// A disabled user cannot sign in or use keys. Admins and the user
    /// themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub disabled: Option<bool>,
    /// False until an invited user sets a password. Admins and the user
    /// themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub has_password: Option<bool>,
    /// The last successful login. Admins and the user themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub last_login_at: Option<DateTime<Utc>>,
    /// Increases with each change; the `ETag`. Admins and the user
    /// themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub revision: Option<i64>,
    /// When the user was created. Admins and the user themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub created_at: Option<DateTime<Utc>>,
    /// When the user last changed. Admins and the user themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub updated_at: Option<DateTime<Utc>>,
    /// Attributes for row-level security: name -> text, number, boolean,
    /// or a list of text or numbers. Admins and the user themselves only.
    #[oai(skip_serializing_if_is_none)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            name: u.name,
            email: Some(u.email),
            role: Some(u.role.into()),
            disabled: Some(u.disabled),
            has_password: Some(u.has_password),
            last_login_at: ts_opt(u.last_login_at),
            revision: Some(u.revision),
            created_at: Some(ts(u.created_at)),
            updated_at: Some(ts(u.updated_at)),
            attributes: Some(u.attributes),
        }
    }
}

impl From<UserView> for UserDto {
    fn from(view: UserView) -> Self {
        match view {
            UserView::Full(user) => user.into(),
            UserView::Named { id, name } => Self {
                id,
                name,
                email: None,
                role: None,
                disabled: None,
                has_password: None,
                last_login_at: None,
                revision: None,
                created_at: None,
                updated_at: None,
                attributes: None,
            },
        }
    }
}

/// A new user. Without a password the user is invited: the response
/// carries a one-time token for them to choose one.
#[derive(Debug, Object)]
pub(crate) struct NewUserDto {
    /// Email; unique in the organization, case-insensitively.
    pub email: Text<{ limits::EMAIL_MIN }, { limits::EMAIL }>,
    /// Display name.
    pub name: Name,
    /// Role.
    pub role: RoleDto,
    /// A password, or absent to invite the user. At least 12 characters;
    /// not a common password, a repeated character or pattern, a simple
    /// sequence, or the user's name or email.
    #[oai(skip_serializing_if_is_none)]
    pub password: Option<Text<0, { limits::PASSWORD }>>,
}

/// Changes to a user; fields left out stay as they are.
#[derive(Debug, Object)]
pub(crate) struct UserUpdateDto {
    /// New display name.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<Name>,
    /// New role. The last active admin cannot be demoted.
    #[oai(skip_serializing_if_is_none)]
    pub role: Option<RoleDto>,
    /// Disable (`true`) or enable (`false`). The last active admin cannot
    /// be disabled.
    #[oai(skip_serializing_if_is_none)]
    pub disabled: Option<bool>,
    /// Replaces every attribute (`{}` removes them all): name -> text,
    /// number, boolean, or a non-empty list of text or numbers. Names are
    /// letters, digits and underscores. Grants bind them to locked
    /// parameters and row filters, and PostgreSQL datasources with
    /// `user_settings` pass them on as `loupe.user.<name>`.
    #[oai(skip_serializing_if_is_none)]
    pub attributes: Option<BTreeMap<String, serde_json::Value>>,
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

/// A user, as the caller may see them.
#[derive(Debug, ApiResponse)]
pub(crate) enum UserResponse {
    /// The user.
    #[oai(status = 200)]
    Ok(
        Json<UserDto>,
        /// The user's revision, to send back in `If-Match` to update them;
        /// only with the whole user (admins, the user themselves).
        #[oai(header = "ETag")]
        Option<String>,
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
    /// The organization's users. Admins see every field; everyone else
    /// sees each user's `id` and `name` (and all of their own), and may
    /// not filter by `email`, `role` or `disabled`, nor sort by `email`,
    /// `updated_at` or `last_login_at` (403).
    #[oai(path = "/", method = "get", operation_id = "listUsers")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Users>>>,
        /// Only users with this role (admins).
        role: Q<Option<RoleDto>>,
        /// Only disabled (`true`) or enabled (`false`) users (admins).
        disabled: Q<Option<bool>>,
        /// Text in the name.
        q: Q<Option<FilterText>>,
        /// Text in the email (admins).
        email: Q<Option<FilterText>>,
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
                ("role", &role),
                ("disabled", &disabled),
                ("q", &q),
                ("email", &email),
                ("created_after", &created_after),
                ("created_before", &created_before),
            ],
        );
        let users = &self.0.services().users;
        Ok(page(users.list(auth.actor(), &request).await?))
    }

    /// Add a user (admins). With a password the user can sign in at once;
    /// without one they are invited, and the response carries the
    /// invitation token to send them (shown only here).
    #[oai(path = "/", method = "post", operation_id = "createUser")]
    async fn create(&self, auth: Auth, body: Json<NewUserDto>) -> ApiResult<CreatedUser> {
        let body = body.0;
        let new = NewUser {
            email: body.email.into(),
            name: body.name.into(),
            role: body.role.into(),
            password: body.password.map(|p| SecretString::from(p.into_string())),
        };
        let (user, invitation) = self.0.services().users.create(auth.actor(), new).await?;
        let revision = user.revision;
        let created = CreatedUserDto {
            user: user.into(),
            invitation: invitation.map(Into::into),
        };
        Ok(CreatedUser::Created(
            Json(created),
            etag(revision),
            no_store(),
        ))
    }

    /// Get a user of the organization: every field for admins and for the
    /// user themselves, `id` and `name` for everyone else.
    #[oai(path = "/:id", method = "get", operation_id = "getUser")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<UserResponse> {
        let view = self.0.services().users.view(auth.actor(), &id).await?;
        let revision = view.full().map(|user| etag(user.revision));
        Ok(UserResponse::Ok(Json(view.into()), revision))
    }

    /// Change a user's name, role, disabled flag or attributes (admins). Needs
    /// `If-Match` with the user's `ETag`.
    #[oai(path = "/:id", method = "patch", operation_id = "updateUser")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this user.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<UserUpdateDto>,
    ) -> ApiResult<Tagged<UserDto>> {
        let body = body.0;
        let change = UserUpdate {
            name: body.name.map(Into::into),
            role: body.role.map(Into::into),
            disabled: body.disabled,
            attributes: body.attributes,
        };
        let users = &self.0.services().users;
        let user = users
            .update(auth.actor(), &id, if_match.revision(), change)
            .await?;
        Ok(tagged(user))
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
            .services()
            .users
            .start_reset(auth.actor(), &id)
            .await?;
        Ok(ResetStarted::Created(Json(token.into()), no_store()))
    }

    /// Lift every sign-in back-off of a user (admins): after repeated
    /// wrong passwords from an address, that address waits before its
    /// next attempt is checked; this ends the wait for every address.
    #[oai(path = "/:id/unlock", method = "post", operation_id = "unlockUser")]
    async fn unlock(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0.services().users.unlock(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }
}
