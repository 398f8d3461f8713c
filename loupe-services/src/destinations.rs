//! Destinations: where an organization's notifications go (an SMTP
//! server and its recipients, a webhook, a Slack channel's incoming
//! webhook).
//!
//! Admins manage them; everyone in the organization sees their names and
//! kinds, to pick them for alerts and subscriptions. Secrets (an SMTP
//! password, a webhook's signing secret and extra headers, a Slack URL)
//! are sealed with the destination's id as associated data and never
//! returned; only which of them are set. As with datasources, secrets do
//! not follow a changed target: changing where a destination connects (the
//! SMTP host, port or login, the webhook URL) drops the stored secrets
//! unless the same change gives them again.

use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;

use super::actor::{Actor, Role};
use super::audit;
use super::crypto::Sealed;
use super::validate::Validator;
use crate::deliveries::{Delivery, SourceKind};
use crate::delivery::{DestinationSecrets, DestinationSettings, Message};
use crate::meta::{Filter, ListPage, ListRequest, ListSpec, db_error, new_id, now_micros};
use crate::meta::{check_revision, col, fetch_in_org, json, require_unused, taken, to_json};
use crate::services::Shared;
use loupe_core::{Error, Result, codes};

/// A destination as its readers see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Destination {
    /// Its id.
    pub id: String,
    /// Its name, unique in the organization.
    pub name: String,
    /// `email`, `webhook` or `slack`.
    pub kind: String,
    /// Its settings; admins only (the recipients of an email destination
    /// are not everyone's to read).
    pub settings: Option<DestinationSettings>,
    /// Which secrets are set (`password`, `signing_secret`, `url`,
    /// `headers.Authorization`); admins only.
    pub secrets_set: Vec<String>,
    /// Increases with each change.
    pub revision: i64,
    /// When it was created (µs).
    pub created_at: i64,
    /// When it last changed (µs).
    pub updated_at: i64,
}

/// A destination's settings and secrets, as an admin saves them.
#[derive(Debug, Clone)]
pub struct DestinationInput {
    /// Its name.
    pub name: String,
    /// Where it sends.
    pub settings: DestinationSettings,
    /// Its secrets. On update, `None` keeps the stored ones (unless the
    /// target changed); `Some` replaces them all.
    pub secrets: Option<DestinationSecrets>,
}

pub(crate) const SPEC: ListSpec = ListSpec {
    from: "destinations d",
    alias: "d",
    sorts: &["name", "created_at", "updated_at"],
    default_sort: "name",
    filters: &[("kind", Filter::Equals("d.kind"))],
    created: Some("d.created_at"),
    updated: Some("d.updated_at"),
};

/// The row, with the secrets still sealed.
pub(crate) struct Stored {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) settings: DestinationSettings,
    sealed: Option<String>,
    revision: i64,
    created_at: i64,
    updated_at: i64,
}

pub(crate) fn stored(row: &AnyRow) -> Result<Stored> {
    Ok(Stored {
        id: col(row, "id")?,
        name: col(row, "name")?,
        settings: json(row, "settings")?,
        sealed: col(row, "secrets")?,
        revision: col(row, "revision")?,
        created_at: col(row, "created_at")?,
        updated_at: col(row, "updated_at")?,
    })
}

const BY_ID: &str = "SELECT * FROM destinations WHERE id = $1";

/// What the secrets are sealed to: the destination, and that it is one
/// (a datasource's ciphertext moved here does not open).
fn associated(id: &str) -> Vec<u8> {
    format!("destination:{id}").into_bytes()
}

/// Whether changing `before` to `after` points the destination somewhere
/// else, so that its secrets must not follow.
fn target_changed(before: &DestinationSettings, after: &DestinationSettings) -> bool {
    match (before, after) {
        (DestinationSettings::Email(a), DestinationSettings::Email(b)) => {
            (&a.host, a.port, a.tls, &a.username) != (&b.host, b.port, b.tls, &b.username)
        }
        (DestinationSettings::Webhook(a), DestinationSettings::Webhook(b)) => a.url != b.url,
        (DestinationSettings::Slack(_), DestinationSettings::Slack(_)) => false,
        _ => true,
    }
}

/// The names of the secrets that are set.
fn secret_names(secrets: &DestinationSecrets) -> Vec<String> {
    let mut names = Vec::new();
    if secrets.password.is_some() {
        names.push("password".to_owned());
    }
    if secrets.signing_secret.is_some() {
        names.push("signing_secret".to_owned());
    }
    if secrets.url.is_some() {
        names.push("url".to_owned());
    }
    names.extend(secrets.headers.keys().map(|h| format!("headers.{h}")));
    names
}

/// The stored destination `id` of organization `org_id`.
pub(crate) async fn load(shared: &Shared, org_id: &str, id: &str) -> Result<Stored> {
    let row = fetch_in_org(&shared.store, org_id, BY_ID, "destination", id).await?;
    stored(&row)
}

/// Opens a destination's secrets (for sending).
pub(crate) fn open(shared: &Shared, stored: &Stored) -> Result<DestinationSecrets> {
    let Some(text) = &stored.sealed else {
        return Ok(DestinationSecrets::default());
    };
    let keys = shared.config.secret_keys.as_ref().ok_or_else(|| {
        Error::config(
            "this destination has secrets but no encryption key is configured (LOUPE_SECRET_KEY)",
        )
    })?;
    let plaintext = keys.open(&Sealed::from_text(text)?, &associated(&stored.id))?;
    serde_json::from_slice(&plaintext).map_err(|e| Error::internal_from("decode secrets", e))
}

/// Destinations.
#[derive(Debug, Clone)]
pub struct DestinationService {
    shared: Arc<Shared>,
}

impl DestinationService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn seal(&self, id: &str, secrets: &DestinationSecrets) -> Result<Option<String>> {
        if *secrets == DestinationSecrets::default() {
            return Ok(None);
        }
        let keys = self.shared.config.secret_keys.as_ref().ok_or_else(|| {
            Error::config(
                "cannot store a destination's secrets: no encryption key is configured (set LOUPE_SECRET_KEY to 32 random bytes in base64)",
            )
        })?;
        let plaintext =
            serde_json::to_vec(secrets).map_err(|e| Error::internal_from("encode secrets", e))?;
        Ok(Some(keys.seal(&associated(id), &plaintext)?.to_text()))
    }

    fn open(&self, stored: &Stored) -> Result<DestinationSecrets> {
        open(&self.shared, stored)
    }

    fn view(&self, actor: &Actor, stored: &Stored) -> Destination {
        let admin = actor.is_admin();
        let secrets_set = match admin {
            // Names only; a secret sealed under a key this process lacks
            // is still set.
            true => match self.open(stored) {
                Ok(secrets) => secret_names(&secrets),
                Err(_) if stored.sealed.is_some() => vec!["(sealed)".to_owned()],
                Err(_) => Vec::new(),
            },
            false => Vec::new(),
        };
        Destination {
            id: stored.id.clone(),
            name: stored.name.clone(),
            kind: stored.settings.kind().to_owned(),
            settings: admin.then(|| stored.settings.clone()),
            secrets_set,
            revision: stored.revision,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
        }
    }

    async fn load(&self, org_id: &str, id: &str) -> Result<Stored> {
        load(&self.shared, org_id, id).await
    }

    fn check(&self, input: &DestinationInput, secrets: &DestinationSecrets) -> Result<()> {
        let mut v = Validator::new();
        v.name("name", &input.name);
        for (field, message) in crate::delivery::problems(&input.settings, secrets) {
            v.push(field, codes::field::INVALID, message);
        }
        v.finish()
    }

    /// A destination of the actor's organization.
    pub async fn get(&self, actor: &Actor, id: &str) -> Result<Destination> {
        let found = self.load(&actor.org_id, id).await?;
        Ok(self.view(actor, &found))
    }

    /// The organization's destinations.
    pub async fn list(
        &self,
        actor: &Actor,
        request: &ListRequest,
    ) -> Result<ListPage<Destination>> {
        let rows = SPEC.org_rows(&actor.org_id);
        let page = SPEC.page(&self.shared.store, rows, request).await?;
        page.try_map(|row| Ok(self.view(actor, &stored(row)?)))
    }

    /// Creates a destination. Admins only.
    pub async fn create(&self, actor: &Actor, input: DestinationInput) -> Result<Destination> {
        actor.require(Role::Admin, "managing destinations")?;
        let secrets = input.secrets.clone().unwrap_or_default();
        self.check(&input, &secrets)?;
        let id = new_id();
        let sealed = self.seal(&id, &secrets)?;
        let now = now_micros();
        let mut tx = self.shared.store.write().await?;
        sqlx::query(
            "INSERT INTO destinations (id, org_id, name, kind, settings, secrets, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.clone())
        .bind(actor.org_id.clone())
        .bind(input.name.trim().to_owned())
        .bind(input.settings.kind())
        .bind(to_json(&input.settings)?)
        .bind(sealed)
        .bind(actor.user_id.clone())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(taken(
            "name",
            format!("a destination named {:?} exists", input.name.trim()),
        ))?;
        let detail =
            serde_json::json!({ "name": input.name.trim(), "kind": input.settings.kind() });
        audit::record(
            &mut *tx,
            audit::Entry::by(actor, "destination.create", "destination", &id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, &id).await
    }

    /// Replaces a destination's settings if `revision` is still current.
    /// Admins only.
    pub async fn update(
        &self,
        actor: &Actor,
        id: &str,
        revision: i64,
        input: DestinationInput,
    ) -> Result<Destination> {
        actor.require(Role::Admin, "managing destinations")?;
        let current = self.load(&actor.org_id, id).await?;
        let (secrets, fate) = match &input.secrets {
            Some(given) => (given.clone(), "replaced"),
            None if target_changed(&current.settings, &input.settings) => {
                (DestinationSecrets::default(), "dropped")
            }
            None => (self.open(&current)?, "kept"),
        };
        self.check(&input, &secrets)?;
        let sealed = self.seal(id, &secrets)?;
        let mut tx = self.shared.store.write().await?;
        let result = sqlx::query(
            "UPDATE destinations SET name = $1, kind = $2, settings = $3, secrets = $4, \
             revision = revision + 1, updated_at = $5 WHERE id = $6 AND revision = $7",
        )
        .bind(input.name.trim().to_owned())
        .bind(input.settings.kind())
        .bind(to_json(&input.settings)?)
        .bind(sealed)
        .bind(now_micros())
        .bind(id.to_owned())
        .bind(revision)
        .execute(&mut *tx)
        .await
        .map_err(taken(
            "name",
            format!("a destination named {:?} exists", input.name.trim()),
        ))?;
        check_revision(result.rows_affected(), "destination", revision)?;
        let detail = serde_json::json!({ "name": input.name.trim(), "secrets": fate });
        audit::record(
            &mut *tx,
            audit::Entry::by(actor, "destination.update", "destination", id).detail(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.get(actor, id).await
    }

    /// Deletes a destination that no alert or subscription uses. Admins
    /// only. Its past deliveries stay in the log.
    pub async fn delete(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require(Role::Admin, "managing destinations")?;
        let current = self.load(&actor.org_id, id).await?;
        let mut tx = self.shared.store.write().await?;
        // Lists are JSON arrays of ids; an id is a uuid, so matching its
        // quoted form finds exactly it.
        let quoted = format!("%\"{id}\"%");
        for (count, what) in [
            (
                "SELECT count(*) FROM alerts WHERE destinations LIKE $1",
                "alerts",
            ),
            (
                "SELECT count(*) FROM subscriptions WHERE destinations LIKE $1",
                "subscriptions",
            ),
        ] {
            require_unused(&mut tx, count, &quoted, |n| {
                format!("{n} {what} send to this destination; remove it from them first")
            })
            .await?;
        }
        let detail = serde_json::json!({ "name": current.name });
        audit::delete_recorded(
            &mut tx,
            actor,
            "destinations",
            "destination",
            id,
            Some(detail),
        )
        .await?;
        tx.commit().await.map_err(db_error)
    }

    /// Sends a test message to the destination now and records it in the
    /// delivery log. Admins only. The outcome is the delivery: delivered,
    /// or failed with what the server answered.
    pub async fn test(&self, actor: &Actor, id: &str) -> Result<Delivery> {
        actor.require(Role::Admin, "testing destinations")?;
        let current = self.load(&actor.org_id, id).await?;
        let message = Message {
            subject: format!("Loupe test message for {}", current.name),
            text: format!(
                "This is a test message from Loupe to the destination {:?}. If you read it, notifications sent there arrive.",
                current.name
            ),
            html: format!(
                "<p>This is a test message from Loupe to the destination <b>{}</b>. If you read it, notifications sent there arrive.</p>",
                crate::deliveries::escape_html(&current.name)
            ),
            event: serde_json::json!({ "type": "test", "destination": { "id": current.id, "name": current.name } }),
            ..Message::default()
        };
        crate::deliveries::send_now(&self.shared, actor, &current, SourceKind::Test, message).await
    }
}
