//! Deliveries: what Loupe sends out of itself (alert notifications,
//! subscription reports, test messages) and where it sends them.
//!
//! A [`Message`] is built once from a stored result (never by re-running
//! SQL) and then shaped by each kind of destination: an email (MIME, with
//! charts inline and files attached), a signed JSON webhook, or a Slack
//! incoming-webhook payload in block format.
//!
//! Every outbound connection passes the [`crate::egress`] rules: the
//! target's addresses are resolved once, checked, and the connection is
//! made to a checked address, so a name that resolves to loopback or a
//! private network is refused unless the configuration allows it.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod email;
mod http;
mod send;
mod slack;
mod webhook;

pub(crate) use http::outbound;
pub use send::{Outbound, Sent, problems};
pub(crate) use send::{error_chain, trusted_roots};
pub use webhook::{sign, verify};

/// A destination's settings, as an admin saves them. Secrets (an SMTP
/// password, a webhook's signing secret and header values, a Slack URL)
/// are in [`DestinationSecrets`] and never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DestinationSettings {
    /// Email through an SMTP server.
    Email(EmailSettings),
    /// An HTTPS POST of a JSON payload, signed with HMAC-SHA256.
    Webhook(WebhookSettings),
    /// A Slack (or Mattermost) incoming webhook.
    Slack(SlackSettings),
}

impl DestinationSettings {
    /// The kind's name: `email`, `webhook` or `slack`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Email(_) => "email",
            Self::Webhook(_) => "webhook",
            Self::Slack(_) => "slack",
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed
    /// (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Implicit,
    /// No TLS (port 25 by default): only without a password.
    None,
}

impl SmtpTls {
    /// The usual port.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Starttls => 587,
            Self::Implicit => 465,
            Self::None => 25,
        }
    }
}

/// An email destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    /// The SMTP server's host name or address.
    pub host: String,
    /// Its port; by default the usual one for `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// How the connection is secured.
    #[serde(default)]
    pub tls: SmtpTls,
    /// The SMTP login, when the server wants one (the password is a
    /// secret).
    #[serde(default)]
    pub username: Option<String>,
    /// The From address, optionally with a name: `Loupe <loupe@example.com>`.
    pub from: String,
    /// The Reply-To address.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Who gets the messages.
    pub to: Vec<String>,
}

/// A webhook destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// The `https://` URL the payload is posted to.
    pub url: String,
}

/// A Slack destination: where it posts is its (secret) URL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// A note for people, such as the channel's name; Slack posts where
    /// the URL says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

/// A destination's secrets, sealed at rest and never returned.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSecrets {
    /// The SMTP password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The key webhooks are signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
    /// Extra HTTP headers for webhooks (such as `Authorization`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A Slack incoming-webhook URL (it holds the token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl fmt::Debug for DestinationSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DestinationSecrets")
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("signing_secret", &self.signing_secret.as_ref().map(|_| "…"))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("url", &self.url.as_ref().map(|_| "…"))
            .finish()
    }
}

/// One notification, before a destination shapes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// A stable id for this notification (the delivery's id): the same on
    /// every attempt, so receivers can drop duplicates. Webhooks send it
    /// as `Loupe-Delivery`, emails build their Message-ID from it.
    pub id: String,
    /// The subject line (email) or headline (Slack).
    pub subject: String,
    /// The body as plain text.
    pub text: String,
    /// The body as HTML; images are referenced as `cid:<content_id>`.
    pub html: String,
    /// Charts: inline in an email, attached to a webhook, linked from Slack.
    pub images: Vec<Image>,
    /// Files (a result as CSV, XLSX or Parquet).
    pub attachments: Vec<Attachment>,
    /// Links to show (the result, a download past the size cap).
    pub links: Vec<Link>,
    /// What happened, as JSON: the webhook payload's `event`.
    pub event: serde_json::Value,
}

/// A rendered chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// Its Content-ID in an email (without angle brackets).
    pub content_id: String,
    /// A file name, such as `revenue.png`.
    pub file_name: String,
    /// Text that describes it.
    pub alt: String,
    /// The PNG file.
    pub png: Bytes,
    /// An expiring signed link to the same image, for destinations that
    /// only take links (Slack); none without a public URL.
    pub url: Option<String>,
}

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// Its file name, such as `result.csv`.
    pub file_name: String,
    /// Its media type.
    pub content_type: String,
    /// Its content.
    pub bytes: Bytes,
}

/// A link in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// What it leads to, such as `Open the result`.
    pub label: String,
    /// The URL.
    pub url: String,
}

/// A send that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// True when trying again later may succeed (an SMTP 4xx reply, an
    /// HTTP 5xx or 429, a timeout, a refused connection); false when it
    /// will not (an SMTP 5xx reply, an HTTP 4xx, a refused address, bad
    /// settings).
    pub transient: bool,
    /// What went wrong, for the delivery log; never holds a secret.
    pub message: String,
}

impl SendError {
    /// A failure worth retrying.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            transient: true,
            message: message.into(),
        }
    }

    /// A failure that retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            transient: false,
            message: message.into(),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}
