//! The delivery log and the dispatcher that works through it.
//!
//! Every notification is a row: what it is about (an alert transition, a
//! subscription's occurrence or failure, a test), where it goes, its
//! status, each attempt. Rows are queued in the transaction that decides
//! them (an alert's evaluation, a subscription's firing turning done), with
//! a unique key on source, occurrence and destination, so a transition or
//! an occurrence is queued once however many processes decide.
//!
//! The dispatcher claims due rows one at a time by compare-and-set (two
//! dispatchers never send the same row at once; a row whose sender died is
//! claimed again when its lease runs out), builds the message from stored
//! results (never by running SQL), sends it, and records the attempt:
//! delivered; retried with doubling waits on a transient failure (an SMTP
//! 4xx reply, an HTTP 5xx, a timeout) while attempts remain; failed on a
//! permanent one.
//!
//! The dispatcher also turns subscription firings whose runs have all
//! ended into deliveries (or, when a run failed, into one notice to the
//! owner per failure streak).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use loupe_core::{BatchWriter, Error, ExportFormat, PageRequest, Result, ResultId};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Transaction};
use tokio_util::sync::CancellationToken;

use super::actor::Actor;
use crate::delivery::{Attachment, Image, Link, Message, Outbound};
use crate::destinations::Stored as StoredDestination;
use crate::links::{LinkKey, Resource};
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{col, json, to_json};
use crate::runs::{Run, RunStatus};
use crate::services::{Services, Shared};

/// What a delivery is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// An alert's transition (or reminder).
    Alert,
    /// A subscription's occurrence.
    Subscription,
    /// A subscription's runs failed: a notice to its owner.
    Failure,
    /// A destination's test message.
    Test,
}

impl SourceKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Subscription => "subscription",
            Self::Failure => "failure",
            Self::Test => "test",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "alert" => Self::Alert,
            "subscription" => Self::Subscription,
            "failure" => Self::Failure,
            "test" => Self::Test,
            other => return Err(Error::internal(format!("a delivery of kind {other:?}"))),
        })
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// Being sent.
    Sending,
    /// The destination accepted it.
    Delivered,
    /// Given up: a permanent failure, or no attempts left.
    Failed,
}

impl DeliveryStatus {
    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "pending" => Self::Pending,
            "sending" => Self::Sending,
            "delivered" => Self::Delivered,
            _ => Self::Failed,
        }
    }
}

/// One attempt at a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// When it ended (µs).
    pub at: i64,
    /// `delivered`, `retry` (a transient failure) or `failed`.
    pub outcome: String,
    /// What the destination answered, or what went wrong.
    pub detail: String,
}

/// A notification and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Its id (webhooks send it as `Loupe-Delivery`).
    pub id: String,
    /// Where it goes (none once the destination is deleted).
    pub destination_id: Option<String>,
    /// What it is about.
    pub source_kind: SourceKind,
    /// The alert, subscription or destination it is about.
    pub source_id: String,
    /// The alert's evaluation or the subscription's occurrence (µs).
    pub occurrence: i64,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: i32,
    /// Each attempt.
    pub attempt_log: Vec<Attempt>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When the next attempt is due (µs).
    pub next_attempt_at: i64,
    /// When it was queued (µs).
    pub created_at: i64,
    /// When it was delivered (µs).
    pub delivered_at: Option<i64>,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "deliveries d",
    alias: "d",
    sorts: &["created_at", "next_attempt_at"],
    default_sort: "-created_at",
    filters: &[
        ("status", Filter::Equals("d.status")),
        ("source_kind", Filter::Equals("d.source_kind")),
        ("source", Filter::Equals("d.source_id")),
        ("destination", Filter::Equals("d.destination_id")),
    ],
    created: Some("d.created_at"),
    updated: None,
};

fn delivery(row: &AnyRow) -> Result<Delivery> {
    let kind: String = col(row, "source_kind")?;
    let status: String = col(row, "status")?;
    Ok(Delivery {
        id: col(row, "id")?,
        destination_id: col(row, "destination_id")?,
        source_kind: SourceKind::parse(&kind)?,
        source_id: col(row, "source_id")?,
        occurrence: col(row, "occurrence")?,
        status: DeliveryStatus::parse(&status),
        attempts: col(row, "attempts")?,
        attempt_log: json(row, "attempt_log")?,
        last_error: col(row, "last_error")?,
        next_attempt_at: col(row, "next_attempt_at")?,
        created_at: col(row, "created_at")?,
        delivered_at: col(row, "delivered_at")?,
    })
}

/// Queues one delivery per destination of `source`'s `occurrence`, in
/// `tx` (the transaction that decided it). A delivery already queued for
/// the same source, occurrence and destination is left as it is.
pub(crate) async fn queue(
    tx: &mut Transaction<'static, Any>,
    org_id: &str,
    kind: SourceKind,
    source_id: &str,
    occurrence: i64,
    destinations: &[String],
    content: &serde_json::Value,
) -> Result<()> {
    let now = now_micros();
    for destination in destinations {
        sqlx::query(
            "INSERT INTO deliveries (id, org_id, destination_id, source_kind, source_id, occurrence, content, status, next_attempt_at, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8 \
             WHERE NOT EXISTS (SELECT 1 FROM deliveries WHERE source_kind = $4 AND source_id = $5 AND occurrence = $6 AND destination_id = $3)",
        )
        .bind(new_id())
        .bind(org_id.to_owned())
        .bind(destination.clone())
        .bind(kind.as_str())
        .bind(source_id.to_owned())
        .bind(occurrence)
        .bind(content.to_string())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    }
    Ok(())
}

/// Escapes text for HTML.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How deliveries are made: the transports, links, and limits.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// The transports, behind the egress rules; without them this process
    /// sends nothing (an embedder's services that only record).
    pub outbound: Option<Outbound>,
    /// Signs links in notifications; without it (or without a public URL)
    /// notifications carry no links and large results are not attached.
    pub link_key: Option<LinkKey>,
    /// Where people reach Loupe, such as `https://loupe.example.com`.
    pub public_url: Option<String>,
    /// The largest attachment.
    pub attachment_max_bytes: u64,
    /// How long signed links stay valid.
    pub link_ttl: Duration,
    /// Attempts before a delivery fails.
    pub max_attempts: u32,
    /// The first retry's wait (doubling, at most an hour).
    pub retry_after: Duration,
    /// Rows of a result shown in a notification.
    pub preview_rows: u32,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            outbound: None,
            link_key: None,
            public_url: None,
            attachment_max_bytes: 10 * 1024 * 1024,
            link_ttl: Duration::from_secs(7 * 24 * 3600),
            max_attempts: 6,
            retry_after: Duration::from_secs(30),
            preview_rows: 10,
        }
    }
}

/// The delivery log.
#[derive(Debug, Clone)]
pub struct DeliveryService {
    shared: Arc<Shared>,
}

impl DeliveryService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The deliveries the actor may see: all of the organization's for
    /// admins; others, those of the alerts and subscriptions they own.
    pub async fn list(&self, actor: &Actor, request: &ListRequest) -> Result<ListPage<Delivery>> {
        let mut rows = SPEC.org_rows(&actor.org_id);
        if !actor.is_admin() {
            rows.push(" AND d.source_id IN (SELECT id FROM alerts WHERE owner_id = ");
            rows.bind_text(&actor.user_id);
            rows.push(" UNION SELECT id FROM subscriptions WHERE owner_id = ");
            rows.bind_text(&actor.user_id);
            rows.push(")");
        }
        SPEC.page(&self.shared.store, rows, request)
            .await?
            .try_map(delivery)
    }

    /// One delivery the actor may see.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Delivery> {
        let row = crate::meta::fetch_in_org(
            &self.shared.store,
            &actor.org_id,
            "SELECT * FROM deliveries WHERE id = $1",
            "delivery",
            id,
        )
        .await?;
        let found = delivery(&row)?;
        if !actor.is_admin() {
            let owned: Option<(String,)> = sqlx::query_as(
                "SELECT id FROM alerts WHERE id = $1 AND owner_id = $2 UNION SELECT id FROM subscriptions WHERE id = $1 AND owner_id = $2",
            )
            .bind(found.source_id.clone())
            .bind(actor.user_id.clone())
            .fetch_optional(self.shared.store.pool())
            .await
            .map_err(db_error)?;
            if owned.is_none() {
                return Err(Error::not_found("delivery", id));
            }
        }
        Ok(found)
    }
}

impl DeliveryService {
    /// Checks a signed link's signature and expiry.
    fn check_link(&self, resource: &Resource<'_>, expires: i64, signature: &str) -> Result<()> {
        let key = self
            .shared
            .config
            .deliveries
            .link_key
            .as_ref()
            .ok_or_else(|| {
                Error::refused(
                    loupe_core::codes::LINK_INVALID,
                    "this server signs no links (it has no signing secret)",
                )
            })?;
        key.verify(resource, expires, signature, chrono::Utc::now().timestamp())
    }

    /// The stored result a signed download link gives, and its run: the
    /// link must be as signed and not expired, and the run must have a
    /// result.
    pub async fn linked_result(
        &self,
        run_id: &str,
        format: ExportFormat,
        expires: i64,
        signature: &str,
    ) -> Result<(Run, ResultId)> {
        let resource = Resource::Download {
            run_id,
            format: format.name(),
        };
        self.check_link(&resource, expires, signature)?;
        let run = crate::RunService::new(self.shared.clone())
            .get_unchecked(run_id)
            .await?;
        match (&run.status, &run.result_location) {
            (RunStatus::Succeeded, Some(location)) => {
                let result = ResultId::parse(location)?;
                Ok((run, result))
            }
            _ => Err(Error::not_found("result", run_id)),
        }
    }

    /// The chart a signed image link gives.
    pub async fn linked_image(
        &self,
        visualization_id: &str,
        run_id: &str,
        format: crate::ImageFormat,
        expires: i64,
        signature: &str,
    ) -> Result<crate::RenderedImage> {
        let resource = Resource::Image {
            visualization_id,
            run_id,
            format: format.name(),
        };
        self.check_link(&resource, expires, signature)?;
        crate::VisualizationService::new(self.shared.clone())
            .image_of_run(visualization_id, run_id, format, None)
            .await
    }
}

/// Sends `message` to `destination` now, as a delivery of `kind` recorded
/// in the log with its one attempt; the delivery as it ended.
pub(crate) async fn send_now(
    shared: &Shared,
    actor: &Actor,
    destination: &StoredDestination,
    kind: SourceKind,
    mut message: Message,
) -> Result<Delivery> {
    let id = new_id();
    let now = now_micros();
    sqlx::query(
        "INSERT INTO deliveries (id, org_id, destination_id, source_kind, source_id, occurrence, content, status, attempts, next_attempt_at, created_at, claimed_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'sending', 0, $6, $6, $8)",
    )
    .bind(id.clone())
    .bind(actor.org_id.clone())
    .bind(destination.id.clone())
    .bind(kind.as_str())
    .bind(destination.id.clone())
    .bind(now)
    .bind(message.event.to_string())
    .bind(actor.user_id.clone())
    .execute(shared.store.pool())
    .await
    .map_err(db_error)?;
    message.id = id.clone();
    let secrets = crate::destinations::open(shared, destination)?;
    let sent = match &shared.config.deliveries.outbound {
        Some(outbound) => {
            outbound
                .send(&destination.settings, &secrets, &message)
                .await
        }
        None => Err(no_outbound()),
    };
    let (status, outcome, detail) = match &sent {
        Ok(sent) => (DeliveryStatus::Delivered, "delivered", sent.detail.clone()),
        Err(e) => (DeliveryStatus::Failed, "failed", e.message.clone()),
    };
    record_attempt(shared, &id, status, outcome, &detail, None).await?;
    let row = crate::meta::fetch_one(
        &shared.store,
        "SELECT * FROM deliveries WHERE id = $1",
        "delivery",
        &id,
    )
    .await?;
    delivery(&row)
}

fn no_outbound() -> crate::delivery::SendError {
    crate::delivery::SendError::permanent(
        "this process has no transports for notifications (DeliveryConfig::outbound)",
    )
}

/// Records an attempt's end: the status, the log entry, and when the next
/// attempt is due (for a retry).
async fn record_attempt(
    shared: &Shared,
    id: &str,
    status: DeliveryStatus,
    outcome: &str,
    detail: &str,
    next_attempt_at: Option<i64>,
) -> Result<()> {
    let now = now_micros();
    let mut tx = shared.store.write().await?;
    let (log,): (String,) = sqlx::query_as("SELECT attempt_log FROM deliveries WHERE id = $1")
        .bind(id.to_owned())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_error)?;
    let mut log: Vec<Attempt> = serde_json::from_str(&log).unwrap_or_default();
    log.push(Attempt {
        at: now,
        outcome: outcome.to_owned(),
        detail: truncate(detail, 1000),
    });
    let error = (status != DeliveryStatus::Delivered).then(|| truncate(detail, 1000));
    sqlx::query(
        "UPDATE deliveries SET status = $1, attempts = attempts + 1, attempt_log = $2, last_error = COALESCE($3, last_error), \
         next_attempt_at = COALESCE($4, next_attempt_at), claimed_by = NULL, lease_until = NULL, \
         delivered_at = CASE WHEN $1 = 'delivered' THEN $5 ELSE delivered_at END WHERE id = $6",
    )
    .bind(status.as_str())
    .bind(to_json(&log)?)
    .bind(error)
    .bind(next_attempt_at)
    .bind(now)
    .bind(id.to_owned())
    .execute(&mut *tx)
    .await
    .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    crate::ops::delivery_attempted(outcome);
    Ok(())
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Works through the delivery log.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    services: Services,
    name: String,
    interval: Duration,
    lease: Duration,
}

impl Dispatcher {
    /// A dispatcher named `name` (in `claimed_by`) that looks for due
    /// deliveries every `interval`.
    pub fn new(services: &Services, name: &str, interval: Duration) -> Self {
        Self {
            services: services.clone(),
            name: name.to_owned(),
            interval,
            lease: Duration::from_secs(300),
        }
    }

    fn shared(&self) -> &Shared {
        &self.services.shared
    }

    /// One pass: firings whose runs ended become deliveries, then due
    /// deliveries are sent. How many deliveries it sent (or tried).
    pub async fn tick(&self) -> Result<usize> {
        crate::subscriptions::resolve_firings(&self.services).await?;
        let now = now_micros();
        let due: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM deliveries WHERE (status = 'pending' AND next_attempt_at <= $1) \
             OR (status = 'sending' AND lease_until IS NOT NULL AND lease_until < $1) ORDER BY next_attempt_at LIMIT 50",
        )
        .bind(now)
        .fetch_all(self.shared().store.pool())
        .await
        .map_err(db_error)?;
        let mut sent = 0;
        for (id,) in due {
            if !self.claim(&id).await? {
                continue;
            }
            sent += 1;
            if let Err(e) = self.deliver(&id).await {
                tracing::warn!(delivery = %id, error = %e, "a delivery could not be attempted");
                let detail = format!("could not build the message: {e}");
                self.after_failure(
                    &id,
                    &detail,
                    !matches!(
                        e.kind(),
                        loupe_core::ErrorKind::InvalidInput
                            | loupe_core::ErrorKind::NotFound
                            | loupe_core::ErrorKind::Forbidden
                    ),
                )
                .await?;
            }
        }
        Ok(sent)
    }

    /// Takes delivery `id` if it is still due: true when this dispatcher
    /// holds it now.
    async fn claim(&self, id: &str) -> Result<bool> {
        let now = now_micros();
        let lease = i64::try_from(self.lease.as_micros()).unwrap_or(i64::MAX);
        let claimed = sqlx::query(
            "UPDATE deliveries SET status = 'sending', claimed_by = $1, lease_until = $2 \
             WHERE id = $3 AND ((status = 'pending' AND next_attempt_at <= $4) \
             OR (status = 'sending' AND lease_until IS NOT NULL AND lease_until < $4))",
        )
        .bind(self.name.clone())
        .bind(now.saturating_add(lease))
        .bind(id.to_owned())
        .bind(now)
        .execute(self.shared().store.pool())
        .await
        .map_err(db_error)?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Builds and sends one claimed delivery and records the attempt.
    async fn deliver(&self, id: &str) -> Result<()> {
        let shared = self.shared();
        let row = crate::meta::fetch_one(
            &shared.store,
            "SELECT * FROM deliveries WHERE id = $1",
            "delivery",
            id,
        )
        .await?;
        let found = delivery(&row)?;
        let content: serde_json::Value = json(&row, "content")?;
        let org_id: String = col(&row, "org_id")?;
        let Some(destination_id) = &found.destination_id else {
            return self.give_up(id, "its destination was deleted").await;
        };
        let destination = match crate::destinations::load(shared, &org_id, destination_id).await {
            Ok(d) => d,
            Err(Error::NotFound { .. }) => {
                return self.give_up(id, "its destination was deleted").await;
            }
            Err(e) => return Err(e),
        };
        let mut message = compose(&self.services, &org_id, found.source_kind, &content).await?;
        message.id = id.to_owned();
        let mut settings = destination.settings.clone();
        if found.source_kind == SourceKind::Failure
            && let (crate::delivery::DestinationSettings::Email(email), Some(owner)) =
                (&mut settings, content["owner_email"].as_str())
        {
            // A failure notice goes to the subscription's owner, through the
            // email destination's server.
            email.to = vec![owner.to_owned()];
        }
        let secrets = crate::destinations::open(shared, &destination)?;
        let sent = match &shared.config.deliveries.outbound {
            Some(outbound) => outbound.send(&settings, &secrets, &message).await,
            None => Err(no_outbound()),
        };
        match sent {
            Ok(sent) => {
                record_attempt(
                    shared,
                    id,
                    DeliveryStatus::Delivered,
                    "delivered",
                    &sent.detail,
                    None,
                )
                .await
            }
            Err(e) => self.after_failure(id, &e.message, e.transient).await,
        }
    }

    async fn give_up(&self, id: &str, why: &str) -> Result<()> {
        record_attempt(
            self.shared(),
            id,
            DeliveryStatus::Failed,
            "failed",
            why,
            None,
        )
        .await
    }

    /// Records a failed attempt: retried later when it may pass and
    /// attempts remain, else failed.
    async fn after_failure(&self, id: &str, detail: &str, transient: bool) -> Result<()> {
        let shared = self.shared();
        let (attempts,): (i32,) = sqlx::query_as("SELECT attempts FROM deliveries WHERE id = $1")
            .bind(id.to_owned())
            .fetch_one(shared.store.pool())
            .await
            .map_err(db_error)?;
        let config = &shared.config.deliveries;
        let attempted = u32::try_from(attempts).unwrap_or(0) + 1;
        if transient && attempted < config.max_attempts {
            let wait = retry_wait(config.retry_after, attempted);
            let next = now_micros() + i64::try_from(wait.as_micros()).unwrap_or(i64::MAX / 2);
            record_attempt(
                shared,
                id,
                DeliveryStatus::Pending,
                "retry",
                detail,
                Some(next),
            )
            .await
        } else {
            record_attempt(shared, id, DeliveryStatus::Failed, "failed", detail, None).await
        }
    }

    /// Starts dispatching in the background until the handle is shut down.
    pub fn start(self) -> DispatcherHandle {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let join = tokio::spawn(async move {
            loop {
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "a delivery pass failed");
                }
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(self.interval) => {}
                }
            }
        });
        DispatcherHandle { stop, join }
    }
}

/// The wait before attempt `attempted + 1`: `first`, doubling, at most an
/// hour.
fn retry_wait(first: Duration, attempted: u32) -> Duration {
    let doubled = first.saturating_mul(1u32 << attempted.saturating_sub(1).min(20));
    doubled.min(Duration::from_secs(3600))
}

/// A dispatcher started in the background.
#[derive(Debug)]
pub struct DispatcherHandle {
    stop: CancellationToken,
    join: tokio::task::JoinHandle<()>,
}

impl DispatcherHandle {
    /// Stops after the current pass.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.join.await;
    }
}

/// The message for a delivery of `kind` with `content`.
async fn compose(
    services: &Services,
    org_id: &str,
    kind: SourceKind,
    content: &serde_json::Value,
) -> Result<Message> {
    let text = |key: &str| content[key].as_str().unwrap_or_default().to_owned();
    match kind {
        SourceKind::Alert => {
            let name = text("alert_name");
            let to = text("to");
            let headline = match (to.as_str(), content["renotify"].as_bool() == Some(true)) {
                ("triggered", true) => format!("Alert \"{name}\" is still triggered"),
                ("triggered", false) => format!("Alert \"{name}\" triggered"),
                ("ok", _) => format!("Alert \"{name}\" is back to normal"),
                _ => format!("Alert \"{name}\" could not be evaluated"),
            };
            let run = run_in_org(services, org_id, &text("run_id")).await?;
            let mut message = Message {
                subject: format!("[Loupe] {headline}"),
                event: serde_json::json!({ "type": "alert", "alert": content }),
                ..Message::default()
            };
            let lines = [
                format!("Condition: {}", text("condition")),
                format!("Found: {}", text("summary")),
                format!("Value: {}", content["value"]),
            ];
            message.text = format!("{headline}.\n\n{}\n", lines.join("\n"));
            message.html = format!(
                "<p><b>{}</b></p><ul>{}</ul>",
                escape_html(&headline),
                lines
                    .iter()
                    .map(|l| format!("<li>{}</li>", escape_html(l)))
                    .collect::<String>()
            );
            if let Some(run) = &run {
                add_result(services, &mut message, run, None).await?;
            }
            Ok(message)
        }
        SourceKind::Subscription => crate::subscriptions::compose(services, org_id, content).await,
        SourceKind::Failure => {
            let name = text("subscription_name");
            let errors = text("errors");
            Ok(Message {
                subject: format!("[Loupe] Subscription \"{name}\" could not run"),
                text: format!(
                    "The subscription \"{name}\" did not deliver: {errors}\nYou will hear again once it delivers or fails after a success.\n"
                ),
                html: format!(
                    "<p>The subscription <b>{}</b> did not deliver: {}</p><p>You will hear again once it delivers or fails after a success.</p>",
                    escape_html(&name),
                    escape_html(&errors)
                ),
                event: serde_json::json!({ "type": "subscription_failed", "subscription": content }),
                ..Message::default()
            })
        }
        SourceKind::Test => Ok(Message {
            subject: "[Loupe] Test message".to_owned(),
            text: "This is a test message from Loupe.\n".to_owned(),
            html: "<p>This is a test message from Loupe.</p>".to_owned(),
            event: serde_json::json!({ "type": "test" }),
            ..Message::default()
        }),
    }
}

/// A run of the organization, if it still exists.
pub(crate) async fn run_in_org(
    services: &Services,
    org_id: &str,
    run_id: &str,
) -> Result<Option<Run>> {
    match services.runs.get_unchecked(run_id).await {
        Ok(run) => {
            let owner: Option<(String,)> = sqlx::query_as("SELECT org_id FROM runs WHERE id = $1")
                .bind(run_id.to_owned())
                .fetch_optional(services.store().pool())
                .await
                .map_err(db_error)?;
            Ok(owner.filter(|(o,)| o == org_id).map(|_| run))
        }
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A signed link to `resource` under the public URL, if both are set.
pub(crate) fn signed_link(shared: &Shared, resource: &Resource<'_>) -> Result<Option<String>> {
    let config = &shared.config.deliveries;
    let (Some(key), Some(base)) = (&config.link_key, &config.public_url) else {
        return Ok(None);
    };
    let ttl = i64::try_from(config.link_ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let expires = chrono::Utc::now().timestamp().saturating_add(ttl);
    let signature = key.sign(resource, expires)?;
    Ok(Some(format!(
        "{}{}",
        base.trim_end_matches('/'),
        resource.path(expires, &signature)
    )))
}

/// Adds a run's result to a message: the first rows as a table, a link to
/// the result, and (with `attach`) the whole result as a file, or past the
/// size cap a signed link to its download.
pub(crate) async fn add_result(
    services: &Services,
    message: &mut Message,
    run: &Run,
    attach: Option<ExportFormat>,
) -> Result<()> {
    let shared = &services.shared;
    let Some(location) = &run.result_location else {
        return Ok(());
    };
    let results = shared
        .results
        .as_ref()
        .ok_or_else(|| Error::config("deliveries need the result store"))?;
    let id = ResultId::parse(location)?;
    let preview = u64::from(shared.config.deliveries.preview_rows);
    let page = results
        .read_page(&id, &PageRequest::new(0, preview))
        .await?;
    let (text, html) = preview_table(&page.schema, &page.batches, page.total_rows)?;
    message.text.push_str(&format!("\n{text}"));
    message.html.push_str(&html);
    if let Some(base) = &shared.config.deliveries.public_url {
        message.links.push(Link {
            label: "Open the result".to_owned(),
            url: format!("{}/api/v1/runs/{}", base.trim_end_matches('/'), run.id),
        });
    }
    let Some(format) = attach else {
        return Ok(());
    };
    let cap = shared.config.deliveries.attachment_max_bytes;
    let bytes = match export_capped(results.as_ref(), &id, format, cap).await? {
        Some(bytes) => bytes,
        None => {
            let resource = Resource::Download {
                run_id: &run.id,
                format: format.name(),
            };
            let note = format!(
                "The result is larger than {} bytes, the most that is attached",
                cap
            );
            match signed_link(shared, &resource)? {
                Some(url) => {
                    message
                        .text
                        .push_str(&format!("\n{note}; download it: {url}\n"));
                    message.html.push_str(&format!(
                        "<p>{}; <a href=\"{}\">download it</a> (the link expires).</p>",
                        escape_html(&note),
                        escape_html(&url)
                    ));
                    message.links.push(Link {
                        label: format!("Download ({})", format.name()),
                        url,
                    });
                }
                None => {
                    message
                        .text
                        .push_str(&format!("\n{note}; open it in Loupe.\n"));
                    message
                        .html
                        .push_str(&format!("<p>{}; open it in Loupe.</p>", escape_html(&note)));
                }
            }
            return Ok(());
        }
    };
    message.attachments.push(Attachment {
        file_name: format!("result-{}.{}", run.id, format.extension()),
        content_type: format.content_type().to_owned(),
        bytes,
    });
    Ok(())
}

/// The stored result in `format`, or none when it is larger than `cap`
/// bytes (writing stops as soon as it is).
async fn export_capped(
    results: &dyn loupe_core::ResultStore,
    id: &ResultId,
    format: ExportFormat,
    cap: u64,
) -> Result<Option<Bytes>> {
    let mut stream = results.scan(id, None).await?;
    let schema = stream.schema();
    let written = Arc::new(AtomicU64::new(0));
    let out = Counted {
        bytes: Vec::new(),
        written: written.clone(),
    };
    let mut writer = BatchWriter::new(format, out, schema)?;
    while let Some(batch) = stream.next().await {
        writer.write(&batch?)?;
        if written.load(Ordering::Relaxed) > cap {
            return Ok(None);
        }
    }
    let out = writer.finish()?;
    if out.bytes.len() as u64 > cap {
        return Ok(None);
    }
    Ok(Some(Bytes::from(out.bytes)))
}

/// A buffer that says how much was written to it, while a writer owns it.
struct Counted {
    bytes: Vec<u8>,
    written: Arc<AtomicU64>,
}

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes.extend_from_slice(buf);
        self.written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first rows as a plain-text table and an HTML table.
fn preview_table(
    schema: &loupe_core::deps::arrow::datatypes::SchemaRef,
    batches: &[loupe_core::deps::arrow::array::RecordBatch],
    total: u64,
) -> Result<(String, String)> {
    let rows = loupe_core::json_rows(batches)?;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    // `| a | b |` lines: the table form Slack messages show as a block.
    let mut text = format!("| {} |\n", names.join(" | "));
    let mut html = String::from(
        "<table style=\"border-collapse:collapse\" border=\"1\" cellpadding=\"4\"><thead><tr>",
    );
    for name in &names {
        html.push_str(&format!("<th>{}</th>", escape_html(name)));
    }
    html.push_str("</tr></thead><tbody>");
    for row in &rows {
        let cells: Vec<String> = row.iter().map(cell).collect();
        text.push_str(&format!("| {} |\n", cells.join(" | ")));
        html.push_str("<tr>");
        for c in &cells {
            html.push_str(&format!("<td>{}</td>", escape_html(c)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</tbody></table>");
    let shown = rows.len() as u64;
    if total > shown {
        let note = format!("The first {shown} of {total} rows.");
        text.push_str(&format!("{note}\n"));
        html.push_str(&format!("<p>{note}</p>"));
    }
    Ok((text, html))
}

/// A rendered chart of `run`'s result for `visualization`, with a
/// signed link to the same image where links are possible.
pub(crate) async fn chart_image(
    services: &Services,
    visualization: &crate::Visualization,
    run: &Run,
) -> Result<Option<Image>> {
    if run.status != RunStatus::Succeeded {
        return Ok(None);
    }
    let png = services
        .visualizations
        .render_run(
            visualization,
            run,
            crate::visualizations::ImageFormat::Png,
            None,
        )
        .await?;
    let url = signed_link(
        &services.shared,
        &Resource::Image {
            visualization_id: &visualization.id,
            run_id: &run.id,
            format: "png",
        },
    )?;
    Ok(Some(Image {
        content_id: format!("chart-{}@loupe", visualization.id),
        file_name: format!("{}.png", file_stem(&visualization.name)),
        alt: visualization.name.clone(),
        png: Bytes::from(png),
        url,
    }))
}

/// A file name from a title: letters, digits, `-` and `_`.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem.trim_matches('-');
    if stem.is_empty() {
        "chart".to_owned()
    } else {
        stem.chars().take(60).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        let first = Duration::from_secs(30);
        assert_eq!(retry_wait(first, 1), Duration::from_secs(30));
        assert_eq!(retry_wait(first, 2), Duration::from_secs(60));
        assert_eq!(retry_wait(first, 3), Duration::from_secs(120));
        assert_eq!(retry_wait(first, 30), Duration::from_secs(3600));
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_stem("Revenue / day (EUR)"), "Revenue---day--EUR");
        assert_eq!(file_stem("../../etc"), "etc");
        assert_eq!(file_stem("///"), "chart");
    }
}
