//! Webhooks: a message as one JSON document POSTed over HTTPS, signed
//! with HMAC-SHA256 so the receiver knows it came from Loupe and was not
//! replayed.
//!
//! The payload:
//!
//! ```json
//! {"id": "…", "subject": "…", "text": "…", "event": {…},
//!  "links": [{"label": "…", "url": "…"}],
//!  "images": [{"file_name": "…", "content_type": "image/png", "data_base64": "…", "url": null}],
//!  "attachments": [{"file_name": "…", "content_type": "…", "data_base64": "…"}]}
//! ```
//!
//! with the headers `Content-Type: application/json`, `User-Agent:
//! Loupe/<version>`, `Loupe-Delivery: <id>` (the same on every attempt:
//! receivers drop duplicates by it), `Loupe-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` when the
//! destination has a signing secret, and the destination's own headers.
//! A receiver checks the signature with [`verify`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use url::Url;

use super::http::{self, Post};
use super::send::{Sent, Shared};
use super::{DestinationSecrets, Message, SendError, WebhookSettings};

/// The header that carries the signature.
pub(super) const SIGNATURE_HEADER: &str = "Loupe-Signature";
/// The header that carries the message's id.
pub(super) const DELIVERY_HEADER: &str = "Loupe-Delivery";
/// The shortest signing secret accepted, in bytes.
const MIN_SIGNING_SECRET: usize = 16;
/// Headers Loupe or the HTTP connection sets, which a destination may not
/// set (besides every `Loupe-` header).
const RESERVED_HEADERS: [&str; 6] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "transfer-encoding",
    "connection",
];

/// The `Loupe-Signature` header value for `body` sent at `timestamp`
/// (Unix seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 over "<t>.<body>">`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// The hex HMAC-SHA256 over `<timestamp>.<body>`.
fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for byte in mac(secret, timestamp, body).finalize().into_bytes() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Checks a `Loupe-Signature` header (`header`) against `body` and the
/// receiver's copy of the secret, at `now` (Unix seconds). Any of several
/// `v1=` values may match (a sender that signs with an old and a new
/// secret while they are rotated); the comparison takes the same time
/// whatever the bytes.
///
/// # Errors
///
/// When the header is malformed, its timestamp is more than
/// `tolerance_secs` away from `now` (a replayed or delayed request), or no
/// signature matches.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), String> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => {
                if timestamp.is_some() {
                    return Err("the signature header has more than one t=".to_owned());
                }
                timestamp = Some(value.parse::<i64>().map_err(|_| {
                    format!("the signature header's t={value} is not a Unix time in seconds")
                })?);
            }
            Some(("v1", value)) => signatures.push(value),
            // Other schemes and later versions are for other receivers.
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err("the signature header has no t=<unix seconds>".to_owned());
    };
    if signatures.is_empty() {
        return Err("the signature header has no v1=<hex HMAC-SHA256>".to_owned());
    }
    let age = now.saturating_sub(timestamp);
    if age.saturating_abs() > tolerance_secs {
        return Err(format!(
            "the signature was made {age} s from now, beyond the tolerance of {tolerance_secs} s: a replayed request, or a clock that is off"
        ));
    }
    let expected = signature(secret, timestamp, body);
    let matched = signatures.iter().fold(0u8, |found, candidate| {
        found | candidate.as_bytes().ct_eq(expected.as_bytes()).unwrap_u8()
    });
    if matched == 1 {
        Ok(())
    } else {
        Err(
            "the signature does not match the body: it was changed, or signed with another secret"
                .to_owned(),
        )
    }
}

/// HMAC-SHA256 over `<timestamp>.<body>`. Keys longer than a SHA-256
/// block are hashed first and shorter ones padded with zeros (RFC 2104,
/// section 2), which is what the fallible slice constructor does; done
/// here, the infallible constructor serves any key.
fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut key = hmac::digest::Key::<Hmac<Sha256>>::default();
    if secret.len() > key.len() {
        let digest = Sha256::digest(secret);
        key[..digest.len()].copy_from_slice(&digest);
    } else {
        key[..secret.len()].copy_from_slice(secret);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&key);
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    subject: &'a str,
    text: &'a str,
    event: &'a serde_json::Value,
    links: Vec<PayloadLink<'a>>,
    images: Vec<PayloadImage<'a>>,
    attachments: Vec<PayloadAttachment<'a>>,
}

#[derive(Serialize)]
struct PayloadLink<'a> {
    label: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
struct PayloadImage<'a> {
    file_name: &'a str,
    content_type: &'static str,
    data_base64: String,
    url: Option<&'a str>,
}

#[derive(Serialize)]
struct PayloadAttachment<'a> {
    file_name: &'a str,
    content_type: &'a str,
    data_base64: String,
}

/// The JSON body of `message`.
fn payload(message: &Message) -> Result<Vec<u8>, SendError> {
    let payload = Payload {
        id: &message.id,
        subject: &message.subject,
        text: &message.text,
        event: &message.event,
        links: message
            .links
            .iter()
            .map(|link| PayloadLink {
                label: &link.label,
                url: &link.url,
            })
            .collect(),
        images: message
            .images
            .iter()
            .map(|image| PayloadImage {
                file_name: &image.file_name,
                content_type: "image/png",
                data_base64: STANDARD.encode(&image.png),
                url: image.url.as_deref(),
            })
            .collect(),
        attachments: message
            .attachments
            .iter()
            .map(|attachment| PayloadAttachment {
                file_name: &attachment.file_name,
                content_type: &attachment.content_type,
                data_base64: STANDARD.encode(&attachment.bytes),
            })
            .collect(),
    };
    serde_json::to_vec(&payload)
        .map_err(|e| SendError::permanent(format!("the webhook payload: {e}")))
}

/// POSTs `message` to the webhook.
pub(super) async fn send(
    shared: &Shared,
    settings: &WebhookSettings,
    secrets: &DestinationSecrets,
    message: &Message,
) -> Result<Sent, SendError> {
    let url = Url::parse(&settings.url)
        .map_err(|e| SendError::permanent(format!("the webhook URL: {e}")))?;
    let target = format!(
        "the webhook at {}",
        url.host_str().unwrap_or("a URL without a host")
    );
    let body = payload(message)?;
    let mut headers = HeaderMap::new();
    for (name, value) in &secrets.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(SendError::permanent(format!(
                "{target}: the header {name} is not a valid HTTP header"
            )));
        };
        headers.insert(name, value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let id = HeaderValue::from_str(&message.id).map_err(|_| {
        SendError::permanent(format!(
            "{target}: the message id {:?} cannot be sent as a header",
            message.id
        ))
    })?;
    headers.insert(DELIVERY_HEADER, id);
    if let Some(secret) = &secrets.signing_secret {
        let signature = sign(secret.as_bytes(), chrono::Utc::now().timestamp(), &body);
        // Only digits, letters, `=` and `,`: always a valid value.
        if let Ok(value) = HeaderValue::from_str(&signature) {
            headers.insert(SIGNATURE_HEADER, value);
        }
    }
    let mut hidden: Vec<&str> = secrets.headers.values().map(String::as_str).collect();
    hidden.extend(secrets.signing_secret.as_deref());
    http::post(
        shared,
        Post {
            target,
            url: &url,
            headers,
            body,
            secrets: hidden,
        },
    )
    .await
}

/// The problems of a webhook destination.
pub(super) fn problems(
    settings: &WebhookSettings,
    secrets: &DestinationSecrets,
    found: &mut Vec<(String, String)>,
) {
    if let Err(problem) = https_url(&settings.url) {
        found.push(("settings.url".to_owned(), problem));
    }
    if let Some(secret) = &secrets.signing_secret
        && secret.len() < MIN_SIGNING_SECRET
    {
        found.push((
            "secrets.signing_secret".to_owned(),
            format!(
                "the signing secret has {} bytes; it needs at least {MIN_SIGNING_SECRET} (a random one of 32 is better)",
                secret.len()
            ),
        ));
    }
    for (name, value) in &secrets.headers {
        let field = format!("secrets.headers.{name}");
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            found.push((
                field,
                format!(
                    "{name:?} is not a valid header name: use letters, digits and !#$%&'*+-.^_`|~ only"
                ),
            ));
        } else if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("loupe-") {
            found.push((
                field,
                format!("{name} is set by Loupe itself and cannot be given"),
            ));
        } else if HeaderValue::from_str(value).is_err() {
            found.push((
                field,
                "the value has a line break or another control character".to_owned(),
            ));
        }
    }
}

/// Checks that `url` is an `https://` URL with a host.
pub(super) fn https_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if parsed.scheme() != "https" {
        return Err(format!(
            "the URL must start with https:// (not {}://): deliveries are only sent encrypted",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "the URL holds a user name or password: give credentials as a header instead"
                .to_owned(),
        );
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    /// The key handling in `mac` agrees with the slice constructor for
    /// keys shorter than, as long as, and longer than a SHA-256 block.
    #[test]
    fn the_mac_is_hmac_sha256_for_keys_of_every_length() {
        for length in [0usize, 1, 16, 32, 63, 64, 65, 131, 200] {
            let key: Vec<u8> = (0..length).map(|i| (i * 7 + 3) as u8).collect();
            let ours = mac(&key, 1_700_000_000, b"{\"a\":1}")
                .finalize()
                .into_bytes();
            let mut reference = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
            reference.update(b"1700000000.{\"a\":1}");
            assert_eq!(
                ours,
                reference.finalize().into_bytes(),
                "key of {length} bytes"
            );
        }
    }

    /// The value Python's `hmac.new(secret, b"1700000000." + body,
    /// hashlib.sha256).hexdigest()` gives: what a receiver in another
    /// language computes.
    #[test]
    fn the_signature_matches_an_independent_implementation() {
        assert_eq!(
            sign(b"0123456789abcdef0123", 1_700_000_000, br#"{"id":"d1"}"#),
            "t=1700000000,v1=2eb32188cff9caf3f79f1d9ca0d1a0b884bff4be767459d580d7fc371c471725"
        );
    }

    #[test]
    fn a_signature_verifies_and_names_what_is_wrong_otherwise() {
        let secret = b"0123456789abcdef0123";
        let body = br#"{"id":"d1"}"#;
        let header = sign(secret, 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert_eq!(header.len(), "t=1700000000,v1=".len() + 64);
        assert_eq!(verify(secret, &header, body, 1_700_000_010, 300), Ok(()));

        let tampered = verify(secret, &header, br#"{"id":"d2"}"#, 1_700_000_010, 300);
        assert!(tampered.unwrap_err().contains("does not match"));
        let other = verify(b"another secret of 16+", &header, body, 1_700_000_010, 300);
        assert!(other.unwrap_err().contains("does not match"));
        let stale = verify(secret, &header, body, 1_700_000_301, 300).unwrap_err();
        assert!(stale.contains("beyond the tolerance"), "{stale}");
        let future = verify(secret, &header, body, 1_699_999_000, 300).unwrap_err();
        assert!(future.contains("beyond the tolerance"), "{future}");

        assert!(
            verify(secret, "v1=00", body, 0, 300)
                .unwrap_err()
                .contains("no t=")
        );
        assert!(
            verify(secret, "t=1", body, 1, 300)
                .unwrap_err()
                .contains("no v1=")
        );
        assert!(
            verify(secret, "t=x,v1=00", body, 1, 300)
                .unwrap_err()
                .contains("t=x")
        );
        assert!(
            verify(secret, "t=1,t=2,v1=00", body, 1, 300)
                .unwrap_err()
                .contains("more than one")
        );
    }

    #[test]
    fn any_of_several_signatures_may_match_while_secrets_rotate() {
        let body = b"{}";
        let new = sign(b"the new secret, 16+ bytes", 100, body);
        let old = sign(b"the old secret, 16+ bytes", 100, body);
        let old_v1 = old.split_once(",v1=").unwrap().1;
        let both = format!("{new},v1={old_v1},v0=ignored");
        assert_eq!(
            verify(b"the old secret, 16+ bytes", &both, body, 100, 5),
            Ok(())
        );
        assert_eq!(
            verify(b"the new secret, 16+ bytes", &both, body, 100, 5),
            Ok(())
        );
    }

    fn hook(url: &str) -> WebhookSettings {
        WebhookSettings {
            url: url.to_owned(),
        }
    }

    #[test]
    fn webhook_problems_name_their_field() {
        let mut headers = BTreeMap::new();
        headers.insert("Authorization".to_owned(), "Bearer x".to_owned());
        headers.insert("content-type".to_owned(), "text/plain".to_owned());
        headers.insert("Loupe-Signature".to_owned(), "forged".to_owned());
        headers.insert("Bad Name".to_owned(), "x".to_owned());
        headers.insert("X-Split".to_owned(), "a\r\nInjected: yes".to_owned());
        let secrets = DestinationSecrets {
            signing_secret: Some("too short".to_owned()),
            headers,
            ..DestinationSecrets::default()
        };
        let mut found = Vec::new();
        problems(&hook("http://example.com/hook"), &secrets, &mut found);
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "settings.url",
                "secrets.signing_secret",
                "secrets.headers.Bad Name",
                "secrets.headers.Loupe-Signature",
                "secrets.headers.X-Split",
                "secrets.headers.content-type",
            ]
        );
        assert!(found[0].1.contains("https://"), "{found:?}");

        let mut found = Vec::new();
        problems(
            &hook("https://hooks.example.com/x"),
            &DestinationSecrets {
                signing_secret: Some("sixteen bytes!!!".to_owned()),
                ..DestinationSecrets::default()
            },
            &mut found,
        );
        assert_eq!(found, []);
    }

    #[test]
    fn only_https_urls_with_a_host_and_no_credentials_are_accepted() {
        assert!(https_url("https://example.com/hook?x=1").is_ok());
        assert!(https_url("https://[2001:db8::1]:8443/").is_ok());
        for bad in [
            "http://example.com/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
            "https://",
        ] {
            assert!(https_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_payload_has_every_field_and_base64_files() {
        let message = Message {
            id: "d-1".to_owned(),
            subject: "Revenue".to_owned(),
            text: "up".to_owned(),
            event: serde_json::json!({"kind": "alert"}),
            images: vec![super::super::Image {
                content_id: "chart".to_owned(),
                file_name: "chart.png".to_owned(),
                alt: "a chart".to_owned(),
                png: bytes::Bytes::from_static(b"\x89PNG"),
                url: None,
            }],
            attachments: vec![super::super::Attachment {
                file_name: "r.csv".to_owned(),
                content_type: "text/csv".to_owned(),
                bytes: bytes::Bytes::from_static(b"a\n1\n"),
            }],
            links: vec![super::super::Link {
                label: "Open".to_owned(),
                url: "https://loupe.example/r/1".to_owned(),
            }],
            ..Message::default()
        };
        let value: serde_json::Value = serde_json::from_slice(&payload(&message).unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "id": "d-1", "subject": "Revenue", "text": "up", "event": {"kind": "alert"},
                "links": [{"label": "Open", "url": "https://loupe.example/r/1"}],
                "images": [{"file_name": "chart.png", "content_type": "image/png",
                            "data_base64": "iVBORw==", "url": null}],
                "attachments": [{"file_name": "r.csv", "content_type": "text/csv",
                                 "data_base64": "YQoxCg=="}],
            })
        );
    }
}
