//! Schedules: a saved query, a cron expression (5 fields, or 6 with
//! seconds) in a time zone, and the parameter values to run it with.
//!
//! Making or changing a schedule needs the right to run its query; the
//! next fire time is computed (DST-correct, by croner) when it is saved.
//!
//! So that one editor cannot keep the runners busy for everyone, a cron
//! that fires more often than `ServicesConfig::min_schedule_interval` is
//! refused, and a user may own at most
//! `ServicesConfig::enabled_schedules_per_user` enabled schedules.

use loupe_core::codes;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::Serialize;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Transaction};

use super::actor::{Actor, Role};
use super::audit;
use super::groups::{self, visible_datasources};
use super::queries::value_errors;
use super::runs::RunStatus;
use super::validate::Validator;
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{col, fetch_in_org, find_in_org, flag, json, to_json, update_at_revision};
use crate::services::Shared;
use loupe_core::ParameterValues;
use loupe_core::Template;
use loupe_core::{Error, Result};

/// A schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    /// Its id.
    pub id: String,
    /// The query it runs.
    pub query_id: String,
    /// Who owns it.
    pub owner_id: String,
    /// When it fires: 5 cron fields, or 6 with seconds first.
    pub cron: String,
    /// The time zone the cron expression is read in (IANA name).
    pub timezone: String,
    /// Values for the query's parameters.
    pub parameters: ParameterValues,
    /// A disabled schedule does not fire.
    pub enabled: bool,
    /// The next time it fires (µs), when enabled.
    pub next_run_at: Option<i64>,
    /// The last time it fired (µs).
    pub last_run_at: Option<i64>,
    /// How its last run ended.
    pub last_status: Option<RunStatus>,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// A schedule's settings.
#[derive(Debug, Clone)]
pub struct ScheduleInput {
    /// The query to run.
    pub query_id: String,
    /// The cron expression.
    pub cron: String,
    /// The IANA time zone, such as `Europe/Berlin`.
    pub timezone: String,
    /// Values for the query's parameters.
    pub parameters: ParameterValues,
    /// Whether it fires.
    pub enabled: bool,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "schedules s JOIN queries q ON q.id = s.query_id",
    alias: "s",
    sorts: &["next_run_at", "created_at", "updated_at"],
    default_sort: "next_run_at",
    filters: &[
        ("query", Filter::Equals("s.query_id")),
        ("owner", Filter::Equals("s.owner_id")),
        ("enabled", Filter::Flag("s.enabled")),
    ],
    created: Some("s.created_at"),
    updated: None,
};

/// Parses a cron expression of 5 fields, or 6 with seconds, of at most
/// [`limits::CRON`](crate::limits::CRON) characters once trimmed (as it
/// is stored).
///
/// Shorthands such as `@daily` are refused with the fields they stand
/// for: a stored expression has 5 or 6 fields.
pub fn parse_cron(expression: &str) -> std::result::Result<Cron, String> {
    let trimmed = expression.trim();
    if let Some(shorthand) = trimmed.strip_prefix('@') {
        let fields = match shorthand {
            "yearly" | "annually" => "0 0 1 1 *",
            "monthly" => "0 0 1 * *",
            "weekly" => "0 0 * * 0",
            "daily" | "midnight" => "0 0 * * *",
            "hourly" => "0 * * * *",
            _ => "minute hour day month weekday",
        };
        return Err(format!(
            "{trimmed:?}: write the schedule as cron fields ({fields}); shorthands are not supported"
        ));
    }
    let most = crate::limits::CRON;
    let length = trimmed.chars().count();
    if length > most {
        return Err(format!(
            "a cron expression has at most {most} characters, not {length}; use ranges and steps (0-59/5) rather than long lists"
        ));
    }
    let fields = expression.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "a cron expression has 5 fields (minute hour day month weekday) or 6 (seconds first), not {fields}"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expression)
        .map_err(|e| format!("{expression:?} is not a cron expression: {e}"))
}

/// Parses an IANA time zone name.
pub fn parse_timezone(name: &str) -> std::result::Result<Tz, String> {
    Tz::from_str(name).map_err(|_| {
        format!("{name:?} is not a time zone; use an IANA name such as Europe/Berlin or UTC")
    })
}

/// The first fire time of `cron` in `tz` strictly after `after`.
pub fn next_fire(cron: &Cron, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&after.with_timezone(&tz), false)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// How far ahead [`closest_fires`] looks: a week and a day, so that a cron
/// of some weekdays is seen on two of its days, and the step from one
/// firing day to the next is seen too.
const SAMPLE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(8);
/// Most fires [`closest_fires`] looks at: a cron of every minute fires
/// 11,520 times in the window.
const SAMPLE_FIRES: usize = 20_000;

/// Two consecutive fires of `cron` in `tz` after `after` that are less
/// than `min` apart, if the sample has any: the next two fires, then
/// every pair within [`SAMPLE_WINDOW`] (or the first [`SAMPLE_FIRES`]).
/// The fields of a cron repeat the same times every day it fires, so a
/// burst anywhere shows within the window.
fn closest_fires(
    cron: &Cron,
    tz: Tz,
    after: DateTime<Utc>,
    min: Duration,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let min = chrono::TimeDelta::from_std(min).unwrap_or(chrono::TimeDelta::MAX);
    let end = after + SAMPLE_WINDOW;
    let mut previous = next_fire(cron, tz, after)?;
    for _ in 0..SAMPLE_FIRES {
        let next = next_fire(cron, tz, previous)?;
        if next - previous < min {
            return Some((previous, next));
        }
        if next > end {
            break;
        }
        previous = next;
    }
    None
}

pub(crate) fn schedule(row: &AnyRow) -> Result<Schedule> {
    let last_status: Option<String> = col(row, "last_status")?;
    Ok(Schedule {
        id: col(row, "id")?,
        query_id: col(row, "query_id")?,
        owner_id: col(row, "owner_id")?,
        cron: col(row, "cron")?,
        timezone: col(row, "timezone")?,
        parameters: json(row, "parameters")?,
        enabled: flag(row, "enabled")?,
        next_run_at: col(row, "next_run_at")?,
        last_run_at: col(row, "last_run_at")?,
        last_status: last_status.as_deref().and_then(RunStatus::parse),
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

/// Binds a schedule's settings and its next fire time, in the order both
/// the insert and the update name them: query, cron, time zone,
/// parameters, enabled, next run.
fn bind_settings(
    query: Query<'static, Any, AnyArguments>,
    input: &ScheduleInput,
    next: Option<i64>,
) -> Result<Query<'static, Any, AnyArguments>> {
    Ok(query
        .bind(input.query_id.clone())
        .bind(input.cron.trim().to_owned())
        .bind(input.timezone.clone())
        .bind(to_json(&input.parameters)?)
        .bind(i16::from(input.enabled))
        .bind(next))
}

/// Checks a cron expression and time zone (parsed, firing at some time,
/// not more often than the quotas allow) into `v`; the next fire time.
pub(crate) fn check_timing(
    shared: &Shared,
    v: &mut Validator,
    cron_text: &str,
    timezone: &str,
) -> Option<i64> {
    let cron = match parse_cron(cron_text) {
        Ok(c) => Some(c),
        Err(e) => {
            v.push("cron", codes::field::INVALID_CRON, e);
            None
        }
    };
    let tz = match parse_timezone(timezone) {
        Ok(tz) => Some(tz),
        Err(e) => {
            v.push("timezone", codes::field::INVALID_TIMEZONE, e);
            None
        }
    };
    let (Some(cron), Some(tz)) = (cron, tz) else {
        return None;
    };
    let next = next_fire(&cron, tz, Utc::now()).map(|t| t.timestamp_micros());
    if next.is_none() {
        v.push(
            "cron",
            codes::field::NEVER_FIRES,
            format!("{cron_text:?} never comes (such as February 30)"),
        );
    }
    let min = shared.config.min_schedule_interval;
    if let Some((first, second)) = closest_fires(&cron, tz, Utc::now(), min) {
        let gap = (second - first).to_std().unwrap_or_default();
        v.push(
            "cron",
            codes::field::TOO_FREQUENT,
            format!(
                "{:?} fires {} apart (at {first} and {second}); schedules may fire at most once every {}",
                cron_text.trim(),
                humantime::format_duration(gap),
                humantime::format_duration(min)
            ),
        );
    }
    next
}

/// Checks into `v` that the actor may run saved query `query_id` with
/// `values` (a query they cannot see is one they cannot name, so it is
/// reported as missing); the query when it may. What runs on the actor's
/// behalf later (a schedule, an alert, a subscription) is checked here
/// when it is saved.
pub(crate) async fn runnable_query(
    shared: &Shared,
    actor: &Actor,
    v: &mut Validator,
    field: &str,
    query_id: &str,
    values: &ParameterValues,
) -> Result<Option<super::queries::Query>> {
    let row = find_in_org(
        &shared.store,
        &actor.org_id,
        super::queries::BY_ID,
        query_id,
    )
    .await?;
    let query = match row {
        Some(row) => Some(super::queries::query(&row, Vec::new())?),
        None => None,
    };
    let query = match query {
        Some(query)
            if groups::access(shared, actor, &query.datasource_id)
                .await?
                .is_some() =>
        {
            query
        }
        _ => {
            v.push(field, codes::NOT_FOUND, format!("no query {query_id}"));
            return Ok(None);
        }
    };
    let hidden = super::queries::hidden(&query.id);
    groups::require_run(shared, actor, &query.datasource_id, hidden).await?;
    let kind: (String,) = sqlx::query_as("SELECT kind FROM datasources WHERE id = $1")
        .bind(query.datasource_id.clone())
        .fetch_one(shared.store.pool())
        .await
        .map_err(db_error)?;
    let dialect = shared.registry.factory(&kind.0)?.dialect();
    if let Err(e) = Template::parse(&query.sql, dialect)
        .map_err(Error::from)
        .and_then(|t| t.bind(&query.parameters, values))
    {
        let errors = value_errors("parameters", &e);
        if errors.is_empty() {
            return Err(e);
        }
        for f in errors {
            v.push(f.field, f.code, f.message);
        }
    }
    Ok(Some(query))
}

/// Schedules.
#[derive(Debug, Clone)]
pub struct ScheduleService {
    shared: Arc<Shared>,
}

impl ScheduleService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Checks the input against its query and returns the next fire time.
    async fn check(&self, actor: &Actor, input: &ScheduleInput) -> Result<Option<i64>> {
        let mut v = Validator::new();
        let next = check_timing(&self.shared, &mut v, &input.cron, &input.timezone);
        runnable_query(
            &self.shared,
            actor,
            &mut v,
            "query_id",
            &input.query_id,
            &input.parameters,
        )
        .await?;
        v.finish()?;
        Ok(next.filter(|_| input.enabled))
    }

    async fn load(&self, actor: &Actor, id: &str) -> Result<(Schedule, String)> {
        let sql = "SELECT s.*, q.datasource_id FROM schedules s JOIN queries q ON q.id = s.query_id WHERE s.id = $1";
        let row = fetch_in_org(&self.shared.store, &actor.org_id, sql, "schedule", id).await?;
        Ok((schedule(&row)?, col(&row, "datasource_id")?))
    }

    /// A schedule the actor may see.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Schedule> {
        let (found, datasource) = self.load(actor, id).await?;
        let hidden = || Error::not_found("schedule", id);
        groups::require_view(&self.shared, actor, &datasource, hidden).await?;
        Ok(found)
    }

    /// The schedules the actor may see.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Schedule>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        visible_datasources(&mut rows, actor, "q.datasource_id");
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(schedule)
    }

    /// Creates a schedule. Editors and admins who may run the query.
    pub async fn create(&self, actor: &Actor, input: ScheduleInput) -> Result<Schedule> {
        actor.require(Role::Editor, "scheduling queries")?;
        let next = self.check(actor, &input).await?;
        let id = new_id();
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        if input.enabled {
            self.require_room(&mut tx, &actor.user_id).await?;
        }
        let insert = sqlx::query(
            "INSERT INTO schedules (id, org_id, owner_id, query_id, cron, timezone, parameters, enabled, next_run_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(actor.user_id.clone());
        bind_settings(insert, &input, next)?
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Replaces a schedule's settings if `revision` is still current.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        input: ScheduleInput,
    ) -> Result<Schedule> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, false, "schedule")?;
        let next = self.check(actor, &input).await?;
        let update = sqlx::query(
            "UPDATE schedules SET query_id = $1, cron = $2, timezone = $3, parameters = $4, enabled = $5, next_run_at = $6, \
             revision = revision + 1, updated_at = $7 WHERE id = $8 AND revision = $9",
        );
        let update = bind_settings(update, &input, next)?;
        let mut tx = self.shared.store.write().await?;
        // Only turning a schedule on needs room: editing one that is on
        // already stays allowed when the cap was lowered since.
        if input.enabled && !current.enabled {
            self.require_room(&mut tx, &current.owner_id).await?;
        }
        update_at_revision(&mut *tx, update, "schedule", id, revision).await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// Fails with `schedule.too_many_enabled` unless `owner_id` may have
    /// one more enabled schedule. Run in the transaction that enables it.
    async fn require_room(&self, tx: &mut Transaction<'static, Any>, owner_id: &str) -> Result<()> {
        let cap = self.shared.config.enabled_schedules_per_user;
        if cap == 0 {
            return Ok(());
        }
        super::runs::take_turns(tx, super::runs::USER_SCHEDULE_LOCKS, owner_id).await?;
        let (enabled,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM schedules WHERE owner_id = $1 AND enabled = 1")
                .bind(owner_id.to_owned())
                .fetch_one(&mut **tx)
                .await
                .map_err(db_error)?;
        if enabled >= i64::from(cap) {
            return Err(Error::conflict(
                codes::SCHEDULE_TOO_MANY_ENABLED,
                format!(
                    "the schedule's owner has {enabled} enabled schedules, the most one user may have; disable or delete one of them first"
                ),
            ));
        }
        Ok(())
    }

    /// Turns a schedule on or off.
    pub async fn set_enabled(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        enabled: bool,
    ) -> Result<Schedule> {
        let current = self.get(actor, id).await?;
        self.update(
            actor,
            id,
            revision,
            ScheduleInput {
                query_id: current.query_id,
                cron: current.cron,
                timezone: current.timezone,
                parameters: current.parameters,
                enabled,
            },
        )
        .await
    }

    /// Deletes a schedule (its past runs stay, unlinked).
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        let current = self.get(actor, id).await?;
        actor.require_edit(&current.owner_id, false, "schedule")?;
        let detail = serde_json::json!({ "query": current.query_id });
        audit::delete_audited(
            &self.shared.store,
            actor,
            "schedules",
            "schedule",
            id,
            detail,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_or_six_fields() {
        assert!(parse_cron("30 2 * * *").is_ok());
        assert!(parse_cron("0 30 2 * * *").is_ok());
        assert!(parse_cron("* * * *").unwrap_err().contains("not 4"));
        assert!(parse_cron("0 0 0 1 1 * 2030").is_err());
        assert!(parse_cron("61 * * * *").is_err());
        assert!(parse_timezone("Mars/Olympus").is_err());
    }

    #[test]
    fn what_the_store_cannot_hold_is_refused_with_what_to_write() {
        // The store holds 9 to 200 characters: `@daily` was accepted
        // here and then refused by the database without naming a field.
        let e = parse_cron(" @daily").unwrap_err();
        assert!(e.contains("0 0 * * *"), "{e}");
        assert!(parse_cron("@hourly").unwrap_err().contains("0 * * * *"));
        let every_minute = format!(
            "{} * * * *",
            (0..60).map(|m| m.to_string()).collect::<Vec<_>>().join(",")
        );
        assert!(every_minute.len() <= crate::limits::CRON);
        assert!(parse_cron(&every_minute).is_ok());
        let too_long =
            format!("{every_minute} ").replace(" * * * *", " 0,1,2,3,4,5,6,7,8,9,10,11 * * *");
        assert!(
            parse_cron(&too_long).unwrap_err().contains("at most 200"),
            "{too_long}"
        );
    }

    #[test]
    fn bursts_closer_than_the_minimum_are_found_anywhere_in_the_week() {
        let monday_noon = Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap();
        let minute = Duration::from_secs(60);
        let hour = Duration::from_secs(3600);
        let close = |cron: &str, min: Duration| {
            let cron = parse_cron(cron).unwrap();
            closest_fires(&cron, Tz::UTC, monday_noon, min)
        };
        assert!(close("* * * * *", minute).is_none(), "the minimum itself");
        assert!(close("*/10 * * * * *", minute).is_some());
        // Two fires a second apart, once a week: found on its day.
        let (first, second) = close("0,1 0 3 * * 0", minute).unwrap();
        assert_eq!(first.to_rfc3339(), "2026-03-08T03:00:00+00:00");
        assert_eq!(second - first, chrono::TimeDelta::seconds(1));
        assert!(close("0 9,10 * * *", hour).is_none());
        // 23:00 then 00:00: the step from one day to the next counts too.
        assert!(close("0 0,23 * * *", 2 * hour).is_some());
        assert!(close("0 6 * * 1", hour).is_none());
    }

    #[test]
    fn berlin_at_half_past_two_across_both_changes() {
        let cron = parse_cron("30 2 * * *").unwrap();
        let tz = parse_timezone("Europe/Berlin").unwrap();
        // Spring forward, 2026-03-29: 02:30 does not exist; it runs at 03:30 CEST.
        let before = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let next = next_fire(&cron, tz, before).unwrap();
        assert_eq!(
            next.with_timezone(&tz).date_naive().to_string(),
            "2026-03-29"
        );
        let after_gap = next_fire(&cron, tz, next).unwrap();
        assert_eq!(
            after_gap.with_timezone(&tz).date_naive().to_string(),
            "2026-03-30"
        );
        // Fall back, 2026-10-25: 02:30 happens twice; it runs once.
        let before = Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        let first = next_fire(&cron, tz, before).unwrap();
        let second = next_fire(&cron, tz, first).unwrap();
        assert_eq!(
            first.with_timezone(&tz).date_naive().to_string(),
            "2026-10-25"
        );
        assert_eq!(
            second.with_timezone(&tz).date_naive().to_string(),
            "2026-10-26"
        );
    }
}
