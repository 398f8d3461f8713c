//! `/audit-events`: the audit trail, read-only. Core writes it with each
//! change and decides who may read it (admins).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::AuditEvent;
use poem_openapi::param::Query as Q;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

use super::ApiTags;
use super::common::ts;
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// The audit trail.
#[derive(Debug)]
pub(crate) struct AuditApi(pub(crate) Arc<AppState>);

/// One audited action.
#[derive(Debug, Object)]
pub(crate) struct AuditEventDto {
    /// Its id.
    pub id: String,
    /// The user who acted, if known (none for sign-ups and token redeems).
    #[oai(skip_serializing_if_is_none)]
    pub actor_user_id: Option<String>,
    /// The API key used, if any.
    #[oai(skip_serializing_if_is_none)]
    pub actor_key_id: Option<String>,
    /// What was done, such as `user.login` or `datasource.delete`.
    pub action: String,
    /// The kind of object acted on, such as `user` or `datasource`.
    pub resource_type: String,
    /// The object's id.
    #[oai(skip_serializing_if_is_none)]
    pub resource_id: Option<String>,
    /// `success`, `failure` (tried and failed, such as a wrong password)
    /// or `denied` (not allowed).
    pub outcome: String,
    /// Where the request came from.
    #[oai(skip_serializing_if_is_none)]
    pub ip: Option<String>,
    /// Anything else worth keeping about it (never a secret).
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<serde_json::Value>,
    /// When it happened.
    pub created_at: DateTime<Utc>,
}

impl From<AuditEvent> for AuditEventDto {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            actor_user_id: e.actor_user_id,
            actor_key_id: e.actor_key_id,
            action: e.action,
            resource_type: e.resource_type,
            resource_id: e.resource_id,
            outcome: e.outcome,
            ip: e.ip,
            detail: e.detail,
            created_at: ts(e.created_at),
        }
    }
}

/// How an audited action ended, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub(crate) enum OutcomeDto {
    /// It happened.
    Success,
    /// It was tried and failed.
    Failure,
    /// It was not allowed.
    Denied,
}

impl lists::FilterValue for OutcomeDto {
    fn filter_value(&self) -> String {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
        .to_owned()
    }
}

#[OpenApi(prefix_path = "/audit-events", tag = "ApiTags::Audit")]
impl AuditApi {
    /// The organization's audit trail, newest first unless sorted
    /// otherwise (admins).
    #[oai(path = "/", method = "get", operation_id = "listAuditEvents")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::AuditEvents>>>,
        /// Only this action, such as `user.login`.
        action: Q<Option<FilterText>>,
        /// Only on this kind of object, such as `datasource`.
        resource_type: Q<Option<FilterText>>,
        /// Only on the object with this id.
        resource_id: Q<Option<FilterText>>,
        /// Only by the user with this id.
        actor: Q<Option<FilterText>>,
        /// Only with this outcome.
        outcome: Q<Option<OutcomeDto>>,
        /// Only events at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only events before this time.
        created_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<AuditEventDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("action", &action),
                ("resource_type", &resource_type),
                ("resource_id", &resource_id),
                ("actor", &actor),
                ("outcome", &outcome),
                ("created_after", &created_after),
                ("created_before", &created_before),
            ],
        );
        let audit = &self.0.services().audit;
        Ok(page(audit.list(auth.actor(), &request).await?))
    }
}
