//! `/alerts`: conditions on a saved query's stored result, and
//! `/subscriptions`: schedules that deliver results, charts and dashboards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loupe_core::ExportFormat;
use loupe_services::{
    Alert, AlertInput, AlertState, Change, Comparison, Condition, Literal, Quantifier,
    Subscription, SubscriptionInput, TargetKind, Threshold,
};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Union};

use super::ApiTags;
use super::bounded::Name;
use super::common::{
    Created, IfMatch, NoContent, Stamps, Tagged, created, same_variants, tagged, ts_opt,
};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use super::runs::parameter_values;
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Alerts.
#[derive(Debug)]
pub(crate) struct AlertsApi(pub(crate) Arc<AppState>);

/// Subscriptions.
#[derive(Debug)]
pub(crate) struct SubscriptionsApi(pub(crate) Arc<AppState>);

/// How a value compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub(crate) enum ComparisonDto {
    /// Equal.
    #[oai(rename = "=")]
    Eq,
    /// Not equal.
    #[oai(rename = "!=")]
    Ne,
    /// Less than.
    #[oai(rename = "<")]
    Lt,
    /// At most.
    #[oai(rename = "<=")]
    Le,
    /// Greater than.
    #[oai(rename = ">")]
    Gt,
    /// At least.
    #[oai(rename = ">=")]
    Ge,
}

same_variants!(ComparisonDto, Comparison: Eq, Ne, Lt, Le, Gt, Ge);

/// Which rows must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum QuantifierDto {
    /// At least one row.
    Any,
    /// Every row (and there is at least one).
    All,
    /// No row.
    None,
}

same_variants!(QuantifierDto, Quantifier: Any, All, None);

/// Which way a value moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum ChangeDto {
    /// It is different.
    Changed,
    /// It went up.
    Increased,
    /// It went down.
    Decreased,
}

same_variants!(ChangeDto, Change: Changed, Increased, Decreased);

/// The number of rows compares with `value`.
#[derive(Debug, Object)]
pub(crate) struct RowCountConditionDto {
    /// How.
    pub op: ComparisonDto,
    /// With what.
    pub value: f64,
}

/// Any, all or no row has `column` comparing with `value`. NULL cells
/// never match; a number compares numerically, text as text, `true` and
/// `false` with a boolean column.
#[derive(Debug, Object)]
pub(crate) struct RowsConditionDto {
    /// Which rows must match.
    pub quantifier: QuantifierDto,
    /// The column.
    pub column: String,
    /// How.
    pub op: ComparisonDto,
    /// A number, a string or a boolean.
    pub value: serde_json::Value,
}

/// By how much a value must move: `amount` or `percent` of the previous
/// value.
#[derive(Debug, Object)]
pub(crate) struct ThresholdDto {
    /// By more than this amount.
    #[oai(skip_serializing_if_is_none)]
    pub amount: Option<f64>,
    /// By more than this percentage.
    #[oai(skip_serializing_if_is_none)]
    pub percent: Option<f64>,
}

/// `column` in the last row changed since the previous evaluation.
#[derive(Debug, Object)]
pub(crate) struct ChangeConditionDto {
    /// The column.
    pub column: String,
    /// Which way.
    pub change: ChangeDto,
    /// By more than how much; any change without it.
    #[oai(skip_serializing_if_is_none)]
    pub by: Option<ThresholdDto>,
}

/// When an alert triggers; `kind` says which condition.
#[derive(Debug, Union)]
#[oai(discriminator_name = "kind", one_of)]
pub(crate) enum ConditionDto {
    /// On the number of rows.
    #[oai(mapping = "row_count")]
    RowCount(RowCountConditionDto),
    /// On the rows' values.
    #[oai(mapping = "rows")]
    Rows(RowsConditionDto),
    /// On the last row's value against the previous run's.
    #[oai(mapping = "change")]
    Change(ChangeConditionDto),
}

impl From<Condition> for ConditionDto {
    fn from(c: Condition) -> Self {
        match c {
            Condition::RowCount { op, value } => Self::RowCount(RowCountConditionDto {
                op: op.into(),
                value,
            }),
            Condition::Rows {
                quantifier,
                column,
                op,
                value,
            } => Self::Rows(RowsConditionDto {
                quantifier: quantifier.into(),
                column,
                op: op.into(),
                value: serde_json::to_value(value).unwrap_or_default(),
            }),
            Condition::Change { column, change, by } => Self::Change(ChangeConditionDto {
                column,
                change: change.into(),
                by: by.map(|t| match t {
                    Threshold::Amount(n) => ThresholdDto {
                        amount: Some(n),
                        percent: None,
                    },
                    Threshold::Percent(n) => ThresholdDto {
                        amount: None,
                        percent: Some(n),
                    },
                }),
            }),
        }
    }
}

impl TryFrom<ConditionDto> for Condition {
    type Error = loupe_core::Error;

    fn try_from(c: ConditionDto) -> Result<Self, Self::Error> {
        let invalid = |field: &str, message: &str| {
            loupe_core::Error::field(field, loupe_core::codes::field::INVALID, message)
        };
        Ok(match c {
            ConditionDto::RowCount(c) => Self::RowCount {
                op: c.op.into(),
                value: c.value,
            },
            ConditionDto::Rows(c) => Self::Rows {
                quantifier: c.quantifier.into(),
                column: c.column,
                op: c.op.into(),
                value: match c.value {
                    serde_json::Value::Bool(b) => Literal::Bool(b),
                    serde_json::Value::String(s) => Literal::Text(s),
                    serde_json::Value::Number(n) => Literal::Number(
                        n.as_f64()
                            .ok_or_else(|| invalid("condition.value", "not a number"))?,
                    ),
                    _ => {
                        return Err(invalid(
                            "condition.value",
                            "compare with a number, a string or a boolean",
                        ));
                    }
                },
            },
            ConditionDto::Change(c) => Self::Change {
                column: c.column,
                change: c.change.into(),
                by: match c.by {
                    None => None,
                    Some(ThresholdDto {
                        amount: Some(n),
                        percent: None,
                    }) => Some(Threshold::Amount(n)),
                    Some(ThresholdDto {
                        amount: None,
                        percent: Some(n),
                    }) => Some(Threshold::Percent(n)),
                    Some(_) => {
                        return Err(invalid("condition.by", "give either amount or percent"));
                    }
                },
            },
        })
    }
}

/// An alert's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum AlertStateDto {
    /// The condition does not hold.
    Ok,
    /// The condition holds.
    Triggered,
    /// Not evaluated yet, or the last run failed.
    Unknown,
}

same_variants!(AlertStateDto, AlertState: Ok, Triggered, Unknown);

/// An alert on a saved query's result.
#[derive(Debug, Object)]
pub(crate) struct AlertDto {
    /// Its id.
    pub id: String,
    /// The query whose results it watches.
    pub query_id: String,
    /// Who owns it.
    pub owner_id: String,
    /// Its name.
    pub name: String,
    /// The parameter values of the runs it watches.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// When it triggers.
    pub condition: ConditionDto,
    /// Where it notifies.
    pub destinations: Vec<String>,
    /// Notify again this often (seconds) while it stays triggered.
    #[oai(skip_serializing_if_is_none)]
    pub renotify_secs: Option<i64>,
    /// No notifications until then.
    #[oai(skip_serializing_if_is_none)]
    pub muted_until: Option<DateTime<Utc>>,
    /// Whether it is evaluated.
    pub enabled: bool,
    /// Its state.
    pub state: AlertStateDto,
    /// How many runs it was evaluated on.
    pub evaluations: i64,
    /// The value its last evaluation found.
    #[oai(skip_serializing_if_is_none)]
    pub last_value: Option<serde_json::Value>,
    /// The run it was last evaluated on.
    #[oai(skip_serializing_if_is_none)]
    pub last_run_id: Option<String>,
    /// When it was last evaluated.
    #[oai(skip_serializing_if_is_none)]
    pub last_evaluated_at: Option<DateTime<Utc>>,
    /// When it last notified.
    #[oai(skip_serializing_if_is_none)]
    pub last_notified_at: Option<DateTime<Utc>>,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Alert> for AlertDto {
    fn from(a: Alert) -> Self {
        Self {
            stamps: Stamps::of(&a),
            id: a.id,
            query_id: a.query_id,
            owner_id: a.owner_id,
            name: a.name,
            parameters: a.parameters,
            condition: a.condition.into(),
            destinations: a.destinations,
            renotify_secs: a.renotify_secs,
            muted_until: ts_opt(a.muted_until),
            enabled: a.enabled,
            state: a.state.into(),
            evaluations: a.evaluations,
            last_value: a.last_value,
            last_run_id: a.last_run_id,
            last_evaluated_at: ts_opt(a.last_evaluated_at),
            last_notified_at: ts_opt(a.last_notified_at),
        }
    }
}

fn enabled_by_default() -> bool {
    true
}

/// An alert's settings, for create and (whole) update.
#[derive(Debug, Object)]
pub(crate) struct AlertInputDto {
    /// The query to watch; the caller must be allowed to run it.
    pub query_id: String,
    /// Its name.
    pub name: Name,
    /// The parameter values of the runs it watches; defaults fill the rest.
    #[oai(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// When it triggers.
    pub condition: ConditionDto,
    /// Destination ids to notify (1 to 20).
    pub destinations: Vec<String>,
    /// Notify again this often (seconds, at least 60) while it stays
    /// triggered.
    pub renotify_secs: Option<u32>,
    /// No notifications until then.
    pub muted_until: Option<DateTime<Utc>>,
    /// Whether it is evaluated (default `true`).
    #[oai(default = "enabled_by_default")]
    pub enabled: bool,
}

impl TryFrom<AlertInputDto> for AlertInput {
    type Error = loupe_core::Error;

    fn try_from(a: AlertInputDto) -> Result<Self, Self::Error> {
        Ok(Self {
            query_id: a.query_id,
            name: a.name.into(),
            parameters: parameter_values(a.parameters),
            condition: a.condition.try_into()?,
            destinations: a.destinations,
            renotify_every: a.renotify_secs.map(|s| Duration::from_secs(u64::from(s))),
            muted_until: a.muted_until.map(|t| t.timestamp_micros()),
            enabled: a.enabled,
        })
    }
}

#[OpenApi(prefix_path = "/alerts", tag = "ApiTags::Deliveries")]
impl AlertsApi {
    /// List the alerts on queries the caller may see.
    #[oai(path = "/", method = "get", operation_id = "listAlerts")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Alerts>>>,
        /// Only on this query.
        query: Q<Option<FilterText>>,
        /// Only this owner's.
        owner: Q<Option<FilterText>>,
        /// Only in this state (`ok`, `triggered`, `unknown`).
        state: Q<Option<FilterText>>,
        /// Only enabled (`true`) or disabled (`false`) ones.
        enabled: Q<Option<bool>>,
        /// Only created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
        /// Only changed at or after this time.
        updated_after: Q<Option<DateTime<Utc>>>,
        /// Only changed before this time.
        updated_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<AlertDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("query", &query),
                ("owner", &owner),
                ("state", &state),
                ("enabled", &enabled),
                ("created_after", &created_after),
                ("created_before", &created_before),
                ("updated_after", &updated_after),
                ("updated_before", &updated_before),
            ],
        );
        let alerts = &self.0.services().alerts;
        Ok(page(alerts.list(auth.actor(), &request).await?))
    }

    /// Create an alert. Editors and admins who may run the query.
    #[oai(path = "/", method = "post", operation_id = "createAlert")]
    async fn create(&self, auth: Auth, body: Json<AlertInputDto>) -> ApiResult<Created<AlertDto>> {
        let alerts = &self.0.services().alerts;
        Ok(created(
            alerts.create(auth.actor(), body.0.try_into()?).await?,
        ))
    }

    /// Get an alert.
    #[oai(path = "/:id", method = "get", operation_id = "getAlert")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<AlertDto>> {
        Ok(tagged(
            self.0.services().alerts.get(auth.actor(), &id).await?,
        ))
    }

    /// Replace an alert's settings; changing the query, parameters or
    /// condition starts it over as `unknown`. Its owner or admins; needs
    /// `If-Match`.
    #[oai(path = "/:id", method = "put", operation_id = "updateAlert")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this alert.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<AlertInputDto>,
    ) -> ApiResult<Tagged<AlertDto>> {
        let alerts = &self.0.services().alerts;
        let updated = alerts
            .update(auth.actor(), &id, if_match.revision(), body.0.try_into()?)
            .await?;
        Ok(tagged(updated))
    }

    /// Delete an alert; its deliveries stay in the log.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteAlert")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        self.0.services().alerts.delete(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }
}

/// What a subscription delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum TargetKindDto {
    /// A saved query's result.
    Query,
    /// A visualization, as an image.
    Visualization,
    /// A dashboard's visualizations, as images.
    Dashboard,
}

same_variants!(TargetKindDto, TargetKind: Query, Visualization, Dashboard);

/// The format a result is attached in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum AttachmentDto {
    /// Comma-separated values.
    Csv,
    /// An Excel workbook.
    Xlsx,
    /// Apache Parquet.
    Parquet,
}

impl From<AttachmentDto> for ExportFormat {
    fn from(a: AttachmentDto) -> Self {
        match a {
            AttachmentDto::Csv => Self::Csv,
            AttachmentDto::Xlsx => Self::Xlsx,
            AttachmentDto::Parquet => Self::Parquet,
        }
    }
}

fn attachment_of(format: ExportFormat) -> Option<AttachmentDto> {
    match format {
        ExportFormat::Csv => Some(AttachmentDto::Csv),
        ExportFormat::Xlsx => Some(AttachmentDto::Xlsx),
        ExportFormat::Parquet => Some(AttachmentDto::Parquet),
        _ => None,
    }
}

/// A subscription.
#[derive(Debug, Object)]
pub(crate) struct SubscriptionDto {
    /// Its id.
    pub id: String,
    /// Who owns it (its runs start as them).
    pub owner_id: String,
    /// Its name (the subject of its messages).
    pub name: String,
    /// What it delivers.
    pub target_kind: TargetKindDto,
    /// The query, visualization or dashboard.
    pub target_id: String,
    /// When it fires: 5 cron fields, or 6 with seconds first.
    pub cron: String,
    /// The IANA time zone.
    pub timezone: String,
    /// Parameter values (a dashboard's, for a dashboard).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The result attached as a file in this format.
    #[oai(skip_serializing_if_is_none)]
    pub attachment: Option<AttachmentDto>,
    /// Where it delivers.
    pub destinations: Vec<String>,
    /// Whether it fires.
    pub enabled: bool,
    /// The next time it fires.
    #[oai(skip_serializing_if_is_none)]
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last time it fired.
    #[oai(skip_serializing_if_is_none)]
    pub last_run_at: Option<DateTime<Utc>>,
    /// Occurrences in a row that failed.
    pub failure_streak: i64,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Subscription> for SubscriptionDto {
    fn from(s: Subscription) -> Self {
        Self {
            stamps: Stamps::of(&s),
            id: s.id,
            owner_id: s.owner_id,
            name: s.name,
            target_kind: s.target_kind.into(),
            target_id: s.target_id,
            cron: s.cron,
            timezone: s.timezone,
            parameters: s.parameters,
            attachment: s.attachment.and_then(attachment_of),
            destinations: s.destinations,
            enabled: s.enabled,
            next_run_at: ts_opt(s.next_run_at),
            last_run_at: ts_opt(s.last_run_at),
            failure_streak: s.failure_streak,
        }
    }
}

/// A subscription's settings, for create and (whole) update.
#[derive(Debug, Object)]
pub(crate) struct SubscriptionInputDto {
    /// Its name.
    pub name: Name,
    /// What it delivers.
    pub target_kind: TargetKindDto,
    /// The query, visualization or dashboard; the caller must be allowed
    /// to run every query it needs.
    pub target_id: String,
    /// 5 cron fields (`0 8 * * 1`), or 6 with seconds first.
    pub cron: String,
    /// An IANA time zone, such as `Europe/Berlin` or `UTC`.
    pub timezone: String,
    /// Parameter values (a dashboard's, for a dashboard).
    #[oai(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Attach the result in this format (queries and visualizations).
    pub attachment: Option<AttachmentDto>,
    /// Destination ids (1 to 20).
    pub destinations: Vec<String>,
    /// Whether it fires (default `true`).
    #[oai(default = "enabled_by_default")]
    pub enabled: bool,
}

impl From<SubscriptionInputDto> for SubscriptionInput {
    fn from(s: SubscriptionInputDto) -> Self {
        Self {
            name: s.name.into(),
            target_kind: s.target_kind.into(),
            target_id: s.target_id,
            cron: s.cron,
            timezone: s.timezone,
            parameters: parameter_values(s.parameters),
            attachment: s.attachment.map(Into::into),
            destinations: s.destinations,
            enabled: s.enabled,
        }
    }
}

#[OpenApi(prefix_path = "/subscriptions", tag = "ApiTags::Deliveries")]
impl SubscriptionsApi {
    /// List subscriptions: the caller's own, or all for admins.
    #[oai(path = "/", method = "get", operation_id = "listSubscriptions")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Subscriptions>>>,
        /// Only this owner's.
        owner: Q<Option<FilterText>>,
        /// Only of this kind of target (`query`, `visualization`, `dashboard`).
        target_kind: Q<Option<FilterText>>,
        /// Only of this target.
        target: Q<Option<FilterText>>,
        /// Only enabled (`true`) or disabled (`false`) ones.
        enabled: Q<Option<bool>>,
        /// Only created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
        /// Only changed at or after this time.
        updated_after: Q<Option<DateTime<Utc>>>,
        /// Only changed before this time.
        updated_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<SubscriptionDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("owner", &owner),
                ("target_kind", &target_kind),
                ("target", &target),
                ("enabled", &enabled),
                ("created_after", &created_after),
                ("created_before", &created_before),
                ("updated_after", &updated_after),
                ("updated_before", &updated_before),
            ],
        );
        let subscriptions = &self.0.services().subscriptions;
        Ok(page(subscriptions.list(auth.actor(), &request).await?))
    }

    /// Create a subscription. Editors and admins who may run what it
    /// delivers.
    #[oai(path = "/", method = "post", operation_id = "createSubscription")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<SubscriptionInputDto>,
    ) -> ApiResult<Created<SubscriptionDto>> {
        let subscriptions = &self.0.services().subscriptions;
        Ok(created(
            subscriptions.create(auth.actor(), body.0.into()).await?,
        ))
    }

    /// Get a subscription.
    #[oai(path = "/:id", method = "get", operation_id = "getSubscription")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<SubscriptionDto>> {
        let subscriptions = &self.0.services().subscriptions;
        Ok(tagged(subscriptions.get(auth.actor(), &id).await?))
    }

    /// Replace a subscription's settings. Its owner or admins; needs
    /// `If-Match`.
    #[oai(path = "/:id", method = "put", operation_id = "updateSubscription")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this subscription.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<SubscriptionInputDto>,
    ) -> ApiResult<Tagged<SubscriptionDto>> {
        let subscriptions = &self.0.services().subscriptions;
        let updated = subscriptions
            .update(auth.actor(), &id, if_match.revision(), body.0.into())
            .await?;
        Ok(tagged(updated))
    }

    /// Delete a subscription; its deliveries stay in the log.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteSubscription")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        let subscriptions = &self.0.services().subscriptions;
        subscriptions.delete(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }
}
