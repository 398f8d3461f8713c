//! `/organization`: the caller's organization, its name and what it keeps
//! in the result store. Who may rename it is the services' rule
//! (`OrganizationService`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{Organization, Usage};
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

/// An organization, with what it keeps in the result store.
#[derive(Debug, Object)]
pub(crate) struct OrganizationDetailsDto {
    #[oai(flatten)]
    organization: OrganizationDto,
    /// Results it keeps in the result store. Retention deletes results
    /// older than its `max_age` (30 days by default), except the latest of
    /// each saved query and of each schedule.
    pub stored_results: u64,
    /// Their bytes.
    pub stored_bytes: u64,
}

impl OrganizationDetailsDto {
    fn new(o: Organization, usage: Usage) -> Self {
        Self {
            organization: o.into(),
            stored_results: usage.stored_results,
            stored_bytes: usage.stored_bytes,
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
    /// The caller's organization, with what it keeps in the result store.
    #[oai(path = "/", method = "get", operation_id = "getOrganization")]
    async fn get(&self, auth: Auth) -> ApiResult<Json<OrganizationDetailsDto>> {
        let organizations = &self.0.services().organizations;
        let org = organizations.current(auth.actor()).await?;
        let usage = organizations.usage(auth.actor()).await?;
        Ok(Json(OrganizationDetailsDto::new(org, usage)))
    }

    /// Rename the caller's organization (admins). The slug used to sign in
    /// stays.
    #[oai(path = "/", method = "patch", operation_id = "renameOrganization")]
    async fn rename(
        &self,
        auth: Auth,
        body: Json<OrganizationRenameDto>,
    ) -> ApiResult<Json<OrganizationDetailsDto>> {
        let organizations = &self.0.services().organizations;
        let org = organizations
            .rename(auth.actor(), body.0.name.as_str())
            .await?;
        let usage = organizations.usage(auth.actor()).await?;
        Ok(Json(OrganizationDetailsDto::new(org, usage)))
    }
}
