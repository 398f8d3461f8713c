//! `/destinations`: where an organization's notifications go, and
//! `/deliveries`, the log of what was sent. Admins manage destinations;
//! secrets go in and never come out.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use loupe_services::delivery::{
    DestinationSecrets, DestinationSettings, EmailSettings, SlackSettings, SmtpTls, WebhookSettings,
};
use loupe_services::{
    Attempt, Delivery, DeliveryStatus, Destination, DestinationInput, SourceKind,
};
use poem_openapi::param::{Path, Query as Q};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Union};

use super::ApiTags;
use super::bounded::Name;
use super::common::{
    Created, IfMatch, NoContent, Stamps, Tagged, created, same_variants, tagged, ts, ts_opt,
};
use super::lists::{self, FilterText, Page, PageLimit, PageOffset, Sort, list_request, page};
use crate::caller::Auth;
use crate::problem::ApiResult;
use crate::state::AppState;

/// Destinations.
#[derive(Debug)]
pub(crate) struct DestinationsApi(pub(crate) Arc<AppState>);

/// The delivery log.
#[derive(Debug)]
pub(crate) struct DeliveriesApi(pub(crate) Arc<AppState>);

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum SmtpTlsDto {
    /// STARTTLS, required (port 587 by default).
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Implicit,
    /// No TLS (port 25 by default), only without a password.
    None,
}

same_variants!(SmtpTlsDto, SmtpTls: Starttls, Implicit, None);
same_variants!(SourceKindDto, SourceKind: Alert, Subscription, Failure, Test);
same_variants!(DeliveryStatusDto, DeliveryStatus: Pending, Sending, Delivered, Failed);

fn starttls() -> SmtpTlsDto {
    SmtpTlsDto::Starttls
}

/// An email destination: an SMTP server and the recipients.
#[derive(Debug, Object)]
pub(crate) struct EmailSettingsDto {
    /// The SMTP server's host name or address.
    pub host: String,
    /// Its port; the usual one for `tls` when left out.
    #[oai(skip_serializing_if_is_none)]
    pub port: Option<u16>,
    /// How the connection is secured (default `starttls`).
    #[oai(default = "starttls")]
    pub tls: SmtpTlsDto,
    /// The SMTP login (its password is a secret).
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// The From address, optionally with a name: `Loupe <loupe@example.com>`.
    pub from: String,
    /// The Reply-To address.
    #[oai(skip_serializing_if_is_none)]
    pub reply_to: Option<String>,
    /// Who gets the messages (1 to 100 addresses).
    pub to: Vec<String>,
}

/// A webhook destination: an HTTPS URL that receives a signed JSON POST.
#[derive(Debug, Object)]
pub(crate) struct WebhookSettingsDto {
    /// The `https://` URL.
    pub url: String,
}

/// A Slack (or Mattermost) destination: its incoming-webhook URL is a
/// secret (`secrets.url`).
#[derive(Debug, Object)]
pub(crate) struct SlackSettingsDto {
    /// A note for people, such as the channel's name.
    #[oai(skip_serializing_if_is_none)]
    pub channel: Option<String>,
}

/// A destination's settings; `kind` says which.
#[derive(Debug, Union)]
#[oai(discriminator_name = "kind", one_of)]
pub(crate) enum DestinationSettingsDto {
    /// Email through SMTP.
    #[oai(mapping = "email")]
    Email(EmailSettingsDto),
    /// A signed HTTPS POST.
    #[oai(mapping = "webhook")]
    Webhook(WebhookSettingsDto),
    /// A Slack incoming webhook.
    #[oai(mapping = "slack")]
    Slack(SlackSettingsDto),
}

impl From<DestinationSettings> for DestinationSettingsDto {
    fn from(s: DestinationSettings) -> Self {
        match s {
            DestinationSettings::Email(e) => Self::Email(EmailSettingsDto {
                host: e.host,
                port: e.port,
                tls: e.tls.into(),
                username: e.username,
                from: e.from,
                reply_to: e.reply_to,
                to: e.to,
            }),
            DestinationSettings::Webhook(w) => Self::Webhook(WebhookSettingsDto { url: w.url }),
            DestinationSettings::Slack(s) => Self::Slack(SlackSettingsDto { channel: s.channel }),
        }
    }
}

impl From<DestinationSettingsDto> for DestinationSettings {
    fn from(s: DestinationSettingsDto) -> Self {
        match s {
            DestinationSettingsDto::Email(e) => Self::Email(EmailSettings {
                host: e.host,
                port: e.port,
                tls: e.tls.into(),
                username: e.username,
                from: e.from,
                reply_to: e.reply_to,
                to: e.to,
            }),
            DestinationSettingsDto::Webhook(w) => Self::Webhook(WebhookSettings { url: w.url }),
            DestinationSettingsDto::Slack(s) => Self::Slack(SlackSettings { channel: s.channel }),
        }
    }
}

/// A destination's secrets: write-only.
#[derive(Debug, Object)]
pub(crate) struct DestinationSecretsDto {
    /// The SMTP password.
    pub password: Option<String>,
    /// The key webhooks are signed with (at least 16 bytes); receivers
    /// check `Loupe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
    /// "<t>.<body>">`.
    pub signing_secret: Option<String>,
    /// Extra HTTP headers for webhooks, such as `Authorization`.
    #[oai(default)]
    pub headers: BTreeMap<String, String>,
    /// The Slack incoming-webhook URL.
    pub url: Option<String>,
}

impl From<DestinationSecretsDto> for DestinationSecrets {
    fn from(s: DestinationSecretsDto) -> Self {
        Self {
            password: s.password,
            signing_secret: s.signing_secret,
            headers: s.headers,
            url: s.url,
        }
    }
}

/// A destination.
#[derive(Debug, Object)]
pub(crate) struct DestinationDto {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `email`, `webhook` or `slack`.
    pub kind: String,
    /// Its settings (admins only).
    #[oai(skip_serializing_if_is_none)]
    pub settings: Option<DestinationSettingsDto>,
    /// Which secrets are set (admins only); their values are never
    /// returned.
    pub secrets_set: Vec<String>,
    /// Its revision and times.
    #[oai(flatten)]
    pub stamps: Stamps,
}

impl From<Destination> for DestinationDto {
    fn from(d: Destination) -> Self {
        Self {
            stamps: Stamps::of(&d),
            id: d.id,
            name: d.name,
            kind: d.kind,
            settings: d.settings.map(Into::into),
            secrets_set: d.secrets_set,
        }
    }
}

/// A destination's settings, for create and (whole) update.
#[derive(Debug, Object)]
pub(crate) struct DestinationInputDto {
    /// Its name, unique in the organization.
    pub name: Name,
    /// Where it sends.
    pub settings: DestinationSettingsDto,
    /// Its secrets. On update, leave out to keep the stored ones (they are
    /// dropped when the host, port, login or URL changes); give to
    /// replace them all.
    pub secrets: Option<DestinationSecretsDto>,
}

impl From<DestinationInputDto> for DestinationInput {
    fn from(d: DestinationInputDto) -> Self {
        Self {
            name: d.name.into(),
            settings: d.settings.into(),
            secrets: d.secrets.map(Into::into),
        }
    }
}

/// What a delivery is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum SourceKindDto {
    /// An alert's transition.
    Alert,
    /// A subscription's occurrence.
    Subscription,
    /// A subscription's failure, to its owner.
    Failure,
    /// A destination's test message.
    Test,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub(crate) enum DeliveryStatusDto {
    /// Waiting for its (next) attempt.
    Pending,
    /// Being sent.
    Sending,
    /// Accepted by the destination.
    Delivered,
    /// Given up.
    Failed,
}

/// One attempt at a delivery.
#[derive(Debug, Object)]
pub(crate) struct AttemptDto {
    /// When it ended.
    pub at: DateTime<Utc>,
    /// `delivered`, `retry` (a transient failure) or `failed`.
    pub outcome: String,
    /// What the destination answered, or what went wrong.
    pub detail: String,
}

impl From<Attempt> for AttemptDto {
    fn from(a: Attempt) -> Self {
        Self {
            at: ts(a.at),
            outcome: a.outcome,
            detail: a.detail,
        }
    }
}

/// A notification and what became of it.
#[derive(Debug, Object)]
pub(crate) struct DeliveryDto {
    /// Its id (webhooks send it as `Loupe-Delivery`).
    pub id: String,
    /// Where it goes (none once the destination is deleted).
    #[oai(skip_serializing_if_is_none)]
    pub destination_id: Option<String>,
    /// What it is about.
    pub source_kind: SourceKindDto,
    /// The alert, subscription or destination.
    pub source_id: String,
    /// The alert's evaluation number or the subscription's occurrence (µs).
    pub occurrence: i64,
    /// Where it stands.
    pub status: DeliveryStatusDto,
    /// Attempts so far.
    pub attempts: i32,
    /// Each attempt.
    pub attempt_log: Vec<AttemptDto>,
    /// The last failure.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    #[oai(skip_serializing_if_is_none)]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            destination_id: d.destination_id,
            source_kind: d.source_kind.into(),
            source_id: d.source_id,
            occurrence: d.occurrence,
            status: d.status.into(),
            attempts: d.attempts,
            attempt_log: d.attempt_log.into_iter().map(Into::into).collect(),
            last_error: d.last_error,
            next_attempt_at: ts(d.next_attempt_at),
            created_at: ts(d.created_at),
            delivered_at: ts_opt(d.delivered_at),
        }
    }
}

#[OpenApi(prefix_path = "/destinations", tag = "ApiTags::Deliveries")]
impl DestinationsApi {
    /// List the organization's destinations (settings for admins only).
    #[oai(path = "/", method = "get", operation_id = "listDestinations")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Destinations>>>,
        /// Only of this kind (`email`, `webhook`, `slack`).
        kind: Q<Option<FilterText>>,
        /// Only created at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only created before this time.
        created_before: Q<Option<DateTime<Utc>>>,
        /// Only changed at or after this time.
        updated_after: Q<Option<DateTime<Utc>>>,
        /// Only changed before this time.
        updated_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<DestinationDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("kind", &kind),
                ("created_after", &created_after),
                ("created_before", &created_before),
                ("updated_after", &updated_after),
                ("updated_before", &updated_before),
            ],
        );
        let destinations = &self.0.services().destinations;
        Ok(page(destinations.list(auth.actor(), &request).await?))
    }

    /// Create a destination. Admins.
    #[oai(path = "/", method = "post", operation_id = "createDestination")]
    async fn create(
        &self,
        auth: Auth,
        body: Json<DestinationInputDto>,
    ) -> ApiResult<Created<DestinationDto>> {
        let destinations = &self.0.services().destinations;
        Ok(created(
            destinations.create(auth.actor(), body.0.into()).await?,
        ))
    }

    /// Get a destination.
    #[oai(path = "/:id", method = "get", operation_id = "getDestination")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Tagged<DestinationDto>> {
        let destinations = &self.0.services().destinations;
        Ok(tagged(destinations.get(auth.actor(), &id).await?))
    }

    /// Replace a destination's settings. Admins; needs `If-Match`.
    #[oai(path = "/:id", method = "put", operation_id = "updateDestination")]
    async fn update(
        &self,
        auth: Auth,
        id: Path<String>,
        /// The `ETag` from a GET of this destination.
        #[oai(name = "If-Match")]
        if_match: IfMatch,
        body: Json<DestinationInputDto>,
    ) -> ApiResult<Tagged<DestinationDto>> {
        let destinations = &self.0.services().destinations;
        let updated = destinations
            .update(auth.actor(), &id, if_match.revision(), body.0.into())
            .await?;
        Ok(tagged(updated))
    }

    /// Delete a destination no alert or subscription uses. Admins.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteDestination")]
    async fn delete(&self, auth: Auth, id: Path<String>) -> ApiResult<NoContent> {
        let destinations = &self.0.services().destinations;
        destinations.delete(auth.actor(), &id).await?;
        Ok(NoContent::Done)
    }

    /// Send a test message now and report the outcome (the delivery, as
    /// recorded in the log). Admins.
    #[oai(path = "/:id/test", method = "post", operation_id = "testDestination")]
    async fn test(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<DeliveryDto>> {
        let destinations = &self.0.services().destinations;
        Ok(Json(destinations.test(auth.actor(), &id).await?.into()))
    }
}

#[OpenApi(prefix_path = "/deliveries", tag = "ApiTags::Deliveries")]
impl DeliveriesApi {
    /// List deliveries: all of the organization's for admins, those of
    /// the caller's alerts and subscriptions for others.
    #[oai(path = "/", method = "get", operation_id = "listDeliveries")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: Auth,
        /// Rows per page.
        limit: Q<Option<PageLimit>>,
        /// Rows to skip.
        offset: Q<Option<PageOffset>>,
        /// The field to sort by; `-` first for descending.
        sort: Q<Option<Sort<lists::Deliveries>>>,
        /// Only with this status (`pending`, `sending`, `delivered`, `failed`).
        status: Q<Option<FilterText>>,
        /// Only about this kind of source (`alert`, `subscription`, `failure`, `test`).
        source_kind: Q<Option<FilterText>>,
        /// Only about this alert, subscription or destination.
        source: Q<Option<FilterText>>,
        /// Only to this destination.
        destination: Q<Option<FilterText>>,
        /// Only queued at or after this time.
        created_after: Q<Option<DateTime<Utc>>>,
        /// Only queued before this time.
        created_before: Q<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Page<DeliveryDto>>> {
        let request = list_request(
            limit.0,
            offset.0,
            sort.0,
            &[
                ("status", &status),
                ("source_kind", &source_kind),
                ("source", &source),
                ("destination", &destination),
                ("created_after", &created_after),
                ("created_before", &created_before),
            ],
        );
        let deliveries = &self.0.services().deliveries;
        Ok(page(deliveries.list(auth.actor(), &request).await?))
    }

    /// Get a delivery with its attempts.
    #[oai(path = "/:id", method = "get", operation_id = "getDelivery")]
    async fn get(&self, auth: Auth, id: Path<String>) -> ApiResult<Json<DeliveryDto>> {
        let deliveries = &self.0.services().deliveries;
        Ok(Json(deliveries.get(auth.actor(), &id).await?.into()))
    }
}
