//! `/organization`: the caller's organization, its name. Who may rename it
//! is the services' rule (`OrganizationService`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::Organization;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::bounded::Name;
use super::common::ts;
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// The organization.
#[derive(Debug)]
pub(crate) struct OrganizationApi(pub(crate) Arc<AppState>);

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

/// A new name for the organization.
#[derive(Debug, Object)]
pub(crate) struct OrganizationRenameDto {
    /// The new name.
    pub name: Name,
}

#[OpenApi(prefix_path = "/organization", tag = "ApiTags::Organization")]
impl OrganizationApi {
    /// The caller's organization.
    #[oai(path = "/", method = "get", operation_id = "getOrganization")]
    async fn get(&self, auth: Auth) -> ApiResult<Json<OrganizationDto>> {
        let org = self
            .0
            .services()
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
        let organizations = &self.0.services().organizations;
        let org = organizations
            .rename(auth.actor(), body.0.name.as_str())
            .await?;
        Ok(Json(org.into()))
    }
}
