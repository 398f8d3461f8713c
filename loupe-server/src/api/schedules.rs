//! `/schedules`: a saved query run on a cron expression in a time zone.
//! The core parses the expression and computes the next fire time.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::{Schedule, ScheduleInput};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::ApiTags;
use super::common::{Created, IfMatch, NoContent, Stamps, Tagged, created, tagged, ts_opt};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use super::runs::{RunStatusDto, parameter_values};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Schedules.
#[derive(Debug)]
pub(crate) struct SchedulesApi(pub(crate) Arc<AppState>);

/// A schedule of a saved query.
#[derive(Debug, Object)]
pub(crate) struct ScheduleDto {
    /// Its id.
    pub id: String,
    /// The query it runs.
    pub query_id: String,
    /// Who owns it.
    pub owner_id: String,
    /// When it fires: 5 cron fields (minute hour day month weekday), or 6
    /// with seconds first.
    pub cron: String,
    /// The IANA time zone the cron expression is read in.
    pub timezone: String,
    /// Values for the query's parameters.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// A disabled schedule does not fire.
    pub enabled: bool,
    /// The next time it fires, when enabled.
    #[oai(skip_serializing_if_is_none)]
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last time it fired.
    #[oai(skip_serializing_if_is_none)]
    pub last_run_at: Option<DateTime<Utc>>,
    /// How its last run ended.
    #[oai(skip_serializing_if_is_none)]
    pub last_status: Option<RunStatusDto>,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Schedule> for ScheduleDto {
    fn from(s: Schedule) -> Self {
        Self {
            stamps: Stamps::of(&s),
            id: s.id,
            query_id: s.query_id,
            owner_id: s.owner_id,
            cron: s.cron,
            timezone: s.timezone,
            parameters: s.parameters,
            enabled: s.enabled,
            next_run_at: ts_opt(s.next_run_at),
            last_run_at: ts_opt(s.last_run_at),
            last_status: s.last_status.map(Into::into),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

/// A schedule's settings, for create and (whole) update.
#[derive(Debug, Object)]
pub(crate) struct ScheduleInputDto {
    /// The query to run; the caller must be allowed to run it.
    pub query_id: String,
    /// 5 cron fields (`30 2 * * *`), or 6 with seconds first.
    pub cron: String,
    /// An IANA time zone, such as `Europe/Berlin` or `UTC`.
    pub timezone: String,
    /// Values for the query's parameters; defaults fill the rest.
    #[oai(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Whether it fires (default `true`).
    #[oai(default = "enabled_by_default")]
    pub enabled: bool,
}

impl From<ScheduleInputDto> for ScheduleInput {
    fn from(s: ScheduleInputDto) -> Self {
        Self {
            query_id: s.query_id,
            cron: s.cron,
            timezone: s.timezone,
            parameters: parameter_values(s.parameters),
            enabled: s.enabled,
        }
    }
}

#[OpenApi(prefix_path = "/schedules", tag = "ApiTags::Schedules")]
impl SchedulesApi {
    /// List the schedules of queries the caller may see.
    #[oai(path = "/", method = "get", operation_id = "listSchedules")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Schedules>>>,
        /// Only of this query.
        query: Q<Option<FilterText>>,
        /// Only this owner's.
        owner: Q<Option<FilterText>>,
        /// Only enabled (`true`) or disabled (`false`) ones.
        enabled: Q<Option<bool>>,
        /// Only created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<ScheduleDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("query", &query),
                ("owner", &owner),
                ("enabled", &enabled),
                ("created_after", &created_after),
                ("created_before", &created_before),
            ],
        );
        let schedules = &self.0.services().schedules;
        Ok(page(schedules.list(auth.actor(), &request).await?))
    }

    /// Schedule a saved query. Editors and admins who may run it.
    #[oai(path = "/", method = "post", operation_id = "createSchedule")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<ScheduleInputDto>,
    ) -> ApiResult<Created<ScheduleDto>> {
        let schedules = &self.0.services().schedules;
        let schedule = schedules.create(auth.actor(), body.0.into()).await?;
        Ok(created(schedule))
    }

    /// Get a schedule.
    #[oai(path = "/:id", method = "get", operation_id = "getSchedule")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<ScheduleDto>> {
        let schedule = self.0.services().schedules.get(auth.actor(), &id).await?;
        Ok(tagged(schedule))
    }

    /// Replace a schedule's settings.
    ///
    /// The next fire time is computed again. Its owner or admins. Needs
    /// `If-Match` with the schedule's `ETag`.
    #[oai(path = "/:id", method = "put", operation_id = "updateSchedule")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this schedule.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<ScheduleInputDto>,
    ) -> ApiResult<Tagged<ScheduleDto>> {
        let schedules = &self.0.services().schedules;
        let schedule = schedules
            .update(auth.actor(), &id, if_match.revision(), body.0.into())
            .await?;
        Ok(tagged(schedule))
    }

    /// Turn a schedule on; it fires next at `next_run_at`. Needs `If-Match`.
    #[oai(path = "/:id/enable", method = "post", operation_id = "enableSchedule")]
    async fn enable(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this schedule.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
    ) -> ApiResult<Tagged<ScheduleDto>> {
        self.set_enabled(&auth, &id, if_match, true).await
    }

    /// Turn a schedule off; it does not fire until enabled. Needs `If-Match`.
    #[oai(
        path = "/:id/disable",
        method = "post",
        operation_id = "disableSchedule"
    )]
    async fn disable(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this schedule.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
    ) -> ApiResult<Tagged<ScheduleDto>> {
        self.set_enabled(&auth, &id, if_match, false).await
    }

    /// Delete a schedule; its past runs stay.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteSchedule")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0
            .services()
            .schedules
            .delete(auth.actor(), &id)
            .await?;
        Ok(NoContent::Done)
    }
}

impl SchedulesApi {
    async fn set_enabled(
        &self,
        auth: &Auth,
        id: &str,
        if_match: IfMatch,
        enabled: bool,
    ) -> ApiResult<Tagged<ScheduleDto>> {
        let schedules = &self.0.services().schedules;
        let schedule = schedules
            .set_enabled(auth.actor(), id, if_match.revision(), enabled)
            .await?;
        Ok(tagged(schedule))
    }
}
