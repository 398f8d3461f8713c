//! The sender every kind of destination goes through: [`Outbound`] holds
//! what sends share (the egress rules, the trusted roots, the HTTPS client,
//! the time limit) and hands a message to the email, webhook or Slack
//! transport; [`problems`] checks a destination before it is saved.
//!
//! A send makes one attempt and says whether another may help
//! ([`SendError::transient`]); retries, backoff and the delivery log
//! belong to the caller.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{
    DestinationSecrets, DestinationSettings, Message, SendError, email, http, slack, webhook,
};
use crate::egress::Egress;

/// Sends messages to destinations. Cheap to clone: clones share one
/// HTTPS connection pool.
#[derive(Debug, Clone)]
pub struct Outbound {
    inner: Arc<Shared>,
}

/// What every send shares.
pub(super) struct Shared {
    pub(super) egress: Egress,
    /// The certificates trusted as roots for HTTPS and SMTP over TLS: the
    /// system's and the extra CA file's.
    pub(super) roots: Arc<[CertificateDer<'static>]>,
    pub(super) http: reqwest::Client,
    /// How long one send may take, from resolving the host to the answer.
    pub(super) timeout: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("egress", &self.egress)
            .field("roots", &self.roots.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A send that the destination accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// What the destination answered, for the delivery log: the SMTP
    /// reply (`250 2.0.0 queued as 4XyZ`) or the HTTP status (`HTTP 200`).
    pub detail: String,
}

impl Outbound {
    /// A sender that connects where `egress` allows, trusts the system's
    /// root certificates plus those in the PEM file `ca_file`, and gives
    /// each send at most `timeout`.
    ///
    /// # Errors
    ///
    /// When `ca_file` cannot be read or holds no certificate, or the
    /// HTTPS client cannot be built.
    pub fn new(egress: Egress, ca_file: Option<&Path>, timeout: Duration) -> Result<Self, String> {
        let roots: Arc<[CertificateDer<'static>]> =
            trusted_roots("deliveries.ca_file", ca_file)?.into();
        let http = http::client(egress, &roots, timeout)?;
        Ok(Self {
            inner: Arc::new(Shared {
                egress,
                roots,
                http,
                timeout,
            }),
        })
    }

    /// Sends `message` to the destination made of `settings` and
    /// `secrets`, once.
    ///
    /// # Errors
    ///
    /// A [`SendError`] that says whether trying again later may help and
    /// what went wrong, without any secret. Settings that [`problems`]
    /// refuses fail permanently, before any connection.
    pub async fn send(
        &self,
        settings: &DestinationSettings,
        secrets: &DestinationSecrets,
        message: &Message,
    ) -> Result<Sent, SendError> {
        let found = problems(settings, secrets);
        if !found.is_empty() {
            let listed: Vec<String> = found
                .iter()
                .map(|(field, problem)| format!("{field}: {problem}"))
                .collect();
            return Err(SendError::permanent(format!(
                "the {} destination is not valid: {}",
                settings.kind(),
                listed.join("; ")
            )));
        }
        match settings {
            DestinationSettings::Email(email) => {
                email::send(&self.inner, email, secrets, message).await
            }
            DestinationSettings::Webhook(hook) => {
                webhook::send(&self.inner, hook, secrets, message).await
            }
            DestinationSettings::Slack(_) => slack::send(&self.inner, secrets, message).await,
        }
    }
}

/// What is wrong with a destination, as `(field, problem)` pairs with
/// fields such as `settings.to[1]` or `secrets.headers.X-Token`; empty
/// when it can be saved. Checks only what needs no connection: addresses
/// parse, URLs are `https://` with a host, headers are valid and not ones
/// Loupe sets, secrets are long enough.
pub fn problems(
    settings: &DestinationSettings,
    secrets: &DestinationSecrets,
) -> Vec<(String, String)> {
    let mut found = Vec::new();
    match settings {
        DestinationSettings::Email(email) => email::problems(email, secrets, &mut found),
        DestinationSettings::Webhook(hook) => webhook::problems(hook, secrets, &mut found),
        DestinationSettings::Slack(_) => slack::problems(secrets, &mut found),
    }
    found
}

/// The system's root certificates and those of `ca_file` (the setting
/// `key`).
pub(crate) fn trusted_roots(
    key: &str,
    ca_file: Option<&Path>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let system = rustls_native_certs::load_native_certs();
    let mut roots = system.certs;
    if let Some(path) = ca_file {
        let unreadable = |reason: String| {
            format!(
                "`{key}` {}: {reason}; give a PEM file of the certificate authorities to trust",
                path.display()
            )
        };
        let before = roots.len();
        for certificate in CertificateDer::pem_file_iter(path)
            .map_err(|e| unreadable(format!("cannot be read ({e})")))?
        {
            roots.push(certificate.map_err(|e| unreadable(format!("is not PEM ({e})")))?);
        }
        if roots.len() == before {
            return Err(unreadable("holds no certificate".to_owned()));
        }
    }
    if roots.is_empty() {
        tracing::warn!(
            key,
            "no trusted root certificates: the system has none and no CA file was given, so TLS connections will fail until the system's CA certificates are installed"
        );
    }
    Ok(roots)
}

/// When `error`, or anything it was caused by, is a certificate that the
/// TLS handshake refused: why, and what to do about it.
pub(super) fn certificate_refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(current) = next {
        // tokio-rustls hands rustls's errors over inside an io::Error,
        // whose `source` skips them.
        let found = current.downcast_ref::<rustls::Error>().or_else(|| {
            current
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(refusal @ rustls::Error::InvalidCertificate(reason)) = found {
            let hint = match reason {
                rustls::CertificateError::UnknownIssuer => {
                    "; if it is issued by a private certificate authority, add that authority to the deliveries' CA file"
                }
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. } => {
                    "; connect by a name the certificate is issued for"
                }
                _ => "",
            };
            return Some(format!("its TLS certificate is refused ({refusal}){hint}"));
        }
        next = current.source();
    }
    None
}

/// `error` and its causes, joined with `: `, each said once.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let text = current.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        next = current.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_ca_file_that_is_missing_or_not_pem_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let message = trusted_roots("deliveries.ca_file", Some(&missing)).unwrap_err();
        assert!(message.contains("missing.pem"), "{message}");
        assert!(message.contains("cannot be read"), "{message}");

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let message = trusted_roots("deliveries.ca_file", Some(&empty)).unwrap_err();
        assert!(message.contains("holds no certificate"), "{message}");
    }

    #[test]
    fn the_causes_of_an_error_are_joined_once_each() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(error_chain(&io), "refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connect failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(error_chain(&Outer(io)), "connect failed: refused");
    }
}
