//! Email over SMTP: the message as MIME, sent with lettre on rustls.
//!
//! The MIME tree is `multipart/mixed[ multipart/related[
//! multipart/alternative[text/plain, text/html], each image inline with
//! its Content-ID ], each attachment ]`, so mail clients show the HTML
//! with its charts and list the files. Without HTML the text is the body
//! and the charts are attached.
//!
//! The server's host name is resolved once through the egress rules and
//! lettre connects to the checked address, while TLS still verifies the
//! certificate against the configured host name. `starttls` fails rather
//! than continue in plain text when the server offers no STARTTLS.

use std::io;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::response::Response;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

use super::send::{Sent, Shared, certificate_refusal, error_chain};
use super::{DestinationSecrets, EmailSettings, Message, SendError, SmtpTls};
use crate::egress::ResolveError;

/// The most recipients one destination may have.
pub(super) const MAX_RECIPIENTS: usize = 100;

/// Sends `message` as an email through the destination's SMTP server.
pub(super) async fn send(
    shared: &Shared,
    settings: &EmailSettings,
    secrets: &DestinationSecrets,
    message: &Message,
) -> Result<Sent, SendError> {
    let email = build(settings, message)?;
    let host = bare_host(&settings.host);
    let port = settings.port.unwrap_or_else(|| settings.tls.default_port());
    let target = format!("the SMTP server {}:{port}", settings.host.trim());
    let deadline = Instant::now() + shared.timeout;
    let waited = |what: &str| {
        SendError::transient(format!(
            "{target}: {what} within {} s",
            shared.timeout.as_secs_f64()
        ))
    };

    let addresses =
        match tokio::time::timeout(shared.timeout, shared.egress.lookup(host, port)).await {
            Err(_) => return Err(waited("the name did not resolve")),
            Ok(Err(ResolveError::Refused(refusal))) => {
                return Err(SendError::permanent(format!("{target}: {refusal}")));
            }
            Ok(Err(ResolveError::Unresolved(message))) => {
                return Err(SendError::transient(format!("{target}: {message}")));
            }
            Ok(Ok(addresses)) => addresses,
        };
    let tls = tls(settings.tls, host, &shared.roots)
        .map_err(|e| SendError::permanent(format!("{target}: TLS settings: {e}")))?;
    let credentials = match (user_name(settings), &secrets.password) {
        (Some(user), Some(password)) => Some(Credentials::new(user.to_owned(), password.clone())),
        _ => None,
    };

    let mut unreachable = None;
    for address in addresses {
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
                .port(address.port())
                .timeout(Some(shared.timeout))
                .tls(tls.clone());
        if let Some(credentials) = &credentials {
            builder = builder.credentials(credentials.clone());
        }
        let transport = builder.build();
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, transport.send(email.clone())).await {
            Err(_) => return Err(waited("no answer")),
            Ok(Ok(response)) => {
                return Ok(Sent {
                    detail: reply(&response),
                });
            }
            // Nothing was said yet: the next address may answer.
            Ok(Err(error)) if not_reached(&error) => unreachable = Some(error),
            Ok(Err(error)) => return Err(classify(&target, settings.tls, &error, shared.timeout)),
        }
    }
    Err(match unreachable {
        Some(error) => classify(&target, settings.tls, &error, shared.timeout),
        None => SendError::transient(format!("{target}: no address to connect to")),
    })
}

/// How the connection is secured, verifying certificates for `host`.
fn tls(mode: SmtpTls, host: &str, roots: &[CertificateDer<'static>]) -> Result<Tls, String> {
    if mode == SmtpTls::None {
        return Ok(Tls::None);
    }
    let mut builder =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::None);
    for root in roots {
        if let Ok(certificate) = Certificate::from_der(root.to_vec()) {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let parameters = builder.build_rustls().map_err(|e| error_chain(&e))?;
    Ok(match mode {
        SmtpTls::Implicit => Tls::Wrapper(parameters),
        _ => Tls::Required(parameters),
    })
}

/// The server's reply, as the delivery log shows it.
fn reply(response: &Response) -> String {
    let text: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), text.join(" "))
}

/// Whether `error` is a connection that was never made (refused,
/// unreachable): nothing was sent, so another address may be tried.
fn not_reached(error: &lettre::transport::smtp::Error) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::HostUnreachable
                    | io::ErrorKind::NetworkUnreachable
                    | io::ErrorKind::AddrNotAvailable
            );
        }
        next = current.source();
    }
    false
}

/// Whether a failed send may succeed later: the server's 4xx replies,
/// timeouts and network failures may; its 5xx replies, a refused
/// certificate and what the client refuses to do (no STARTTLS offered, no
/// common AUTH mechanism) will not.
fn classify(
    target: &str,
    mode: SmtpTls,
    error: &lettre::transport::smtp::Error,
    timeout: Duration,
) -> SendError {
    let text = error_chain(error);
    if error.is_permanent() {
        return SendError::permanent(format!("{target} refused: {text}"));
    }
    if error.is_transient() {
        return SendError::transient(format!("{target} deferred: {text}"));
    }
    if let Some(reason) = certificate_refusal(error) {
        return SendError::permanent(format!("{target}: {reason}"));
    }
    if error.is_timeout() {
        return SendError::transient(format!(
            "{target}: no answer within {} s",
            timeout.as_secs_f64()
        ));
    }
    if error.is_client() {
        if mode == SmtpTls::Starttls && text.contains("STARTTLS is not supported") {
            return SendError::permanent(format!(
                "{target} offers no STARTTLS, and Loupe does not send without it: use tls = implicit if the server takes TLS on another port, or tls = none (without a password) for a relay on a trusted network"
            ));
        }
        return SendError::permanent(format!("{target}: {text}"));
    }
    SendError::transient(format!("{target}: {text}"))
}

/// The MIME message.
fn build(settings: &EmailSettings, message: &Message) -> Result<lettre::Message, SendError> {
    let bad = |field: &str, problem: String| {
        SendError::permanent(format!("the email destination's {field}: {problem}"))
    };
    let from = mailbox(&settings.from).map_err(|p| bad("from", p))?;
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .subject(message.subject.clone())
        .message_id(message_id(&message.id, &from));
    if let Some(reply_to) = &settings.reply_to {
        builder = builder.reply_to(mailbox(reply_to).map_err(|p| bad("reply_to", p))?);
    }
    for to in &settings.to {
        builder = builder.to(mailbox(to).map_err(|p| bad("to", p))?);
    }

    let mut inline = Vec::new();
    for image in &message.images {
        if !valid_content_id(&image.content_id) {
            return Err(SendError::permanent(format!(
                "the image {:?} has the content id {:?}: use letters, digits and -._@$+= only",
                image.file_name, image.content_id
            )));
        }
        inline.push(image);
    }
    let png = ContentType::parse("image/png")
        .map_err(|e| SendError::permanent(format!("image/png: {e}")))?;
    let mut mixed = if message.html.is_empty() {
        let mut mixed = MultiPart::mixed().singlepart(SinglePart::plain(message.text.clone()));
        for image in inline {
            mixed = mixed.singlepart(
                Attachment::new(image.file_name.clone()).body(image.png.to_vec(), png.clone()),
            );
        }
        mixed
    } else {
        let mut related = MultiPart::related().multipart(MultiPart::alternative_plain_html(
            message.text.clone(),
            message.html.clone(),
        ));
        for image in inline {
            related = related.singlepart(
                Attachment::new_inline_with_name(image.content_id.clone(), image.file_name.clone())
                    .body(image.png.to_vec(), png.clone()),
            );
        }
        MultiPart::mixed().multipart(related)
    };
    for attachment in &message.attachments {
        let content_type = ContentType::parse(&attachment.content_type).map_err(|_| {
            SendError::permanent(format!(
                "the attachment {:?} has the content type {:?}, which is not a media type",
                attachment.file_name, attachment.content_type
            ))
        })?;
        mixed = mixed.singlepart(
            Attachment::new(attachment.file_name.clone())
                .body(attachment.bytes.to_vec(), content_type),
        );
    }
    builder
        .multipart(mixed)
        .map_err(|e| SendError::permanent(format!("the email could not be built: {e}")))
}

/// `<id@domain>` from the message's id and the sender's domain, so every
/// attempt of one delivery carries the same Message-ID; lettre makes a
/// random one when the id cannot be used.
fn message_id(id: &str, from: &Mailbox) -> Option<String> {
    let usable = !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c));
    usable.then(|| format!("<{id}.loupe@{}>", from.email.domain()))
}

/// A Content-ID that needs no quoting inside `<…>`.
fn valid_content_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._@$+=".contains(c))
}

/// `address`, optionally with a name (`Loupe <loupe@example.com>`).
fn mailbox(address: &str) -> Result<Mailbox, String> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| format!("{address:?} is not an email address ({e})"))
}

/// The SMTP login, if one is given.
fn user_name(settings: &EmailSettings) -> Option<&str> {
    settings
        .username
        .as_deref()
        .filter(|user| !user.trim().is_empty())
}

/// The host without the brackets of an IPv6 literal.
fn bare_host(host: &str) -> &str {
    let host = host.trim();
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The problems of an email destination.
pub(super) fn problems(
    settings: &EmailSettings,
    secrets: &DestinationSecrets,
    found: &mut Vec<(String, String)>,
) {
    let mut push = |field: &str, problem: String| found.push((field.to_owned(), problem));
    let host = settings.host.trim();
    if host.is_empty() {
        push(
            "settings.host",
            "give the SMTP server's host name".to_owned(),
        );
    } else if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        || (host.contains(':') && bare_host(host).parse::<std::net::Ipv6Addr>().is_err())
    {
        push(
            "settings.host",
            format!(
                "{host:?} is not a host name: give the name alone, without a port (that is settings.port) or a URL"
            ),
        );
    }
    if settings.port == Some(0) {
        push(
            "settings.port",
            "0 is not a port: leave it out for the usual one".to_owned(),
        );
    }
    if let Err(problem) = mailbox(&settings.from) {
        push("settings.from", problem);
    }
    if let Some(reply_to) = &settings.reply_to
        && let Err(problem) = mailbox(reply_to)
    {
        push("settings.reply_to", problem);
    }
    if settings.to.is_empty() {
        push("settings.to", "give at least one recipient".to_owned());
    } else if settings.to.len() > MAX_RECIPIENTS {
        push(
            "settings.to",
            format!(
                "{} recipients; the most is {MAX_RECIPIENTS} (use a mailing list for more)",
                settings.to.len()
            ),
        );
    }
    for (i, to) in settings.to.iter().enumerate().take(MAX_RECIPIENTS + 1) {
        if let Err(problem) = mailbox(to) {
            push(&format!("settings.to[{i}]"), problem);
        }
    }
    match (user_name(settings), &secrets.password) {
        (Some(_), None) => push(
            "secrets.password",
            "a user name needs a password".to_owned(),
        ),
        (None, Some(_)) => push(
            "settings.username",
            "a password needs a user name".to_owned(),
        ),
        _ => {}
    }
    if settings.tls == SmtpTls::None && secrets.password.is_some() {
        push(
            "settings.tls",
            "a password is never sent unencrypted: use starttls or implicit".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn settings() -> EmailSettings {
        EmailSettings {
            host: "smtp.example.com".to_owned(),
            port: None,
            tls: SmtpTls::Starttls,
            username: None,
            from: "Loupe <loupe@example.com>".to_owned(),
            reply_to: None,
            to: vec!["ops@example.com".to_owned()],
        }
    }

    fn fields(settings: &EmailSettings, secrets: &DestinationSecrets) -> Vec<String> {
        let mut found = Vec::new();
        problems(settings, secrets, &mut found);
        found.into_iter().map(|(field, _)| field).collect()
    }

    #[test]
    fn a_valid_email_destination_has_no_problems() {
        let mut good = settings();
        good.username = Some("loupe".to_owned());
        good.reply_to = Some("\"Data team\" <data@example.com>".to_owned());
        let secrets = DestinationSecrets {
            password: Some("pw".to_owned()),
            ..DestinationSecrets::default()
        };
        assert!(fields(&good, &secrets).is_empty());
    }

    #[test]
    fn email_problems_name_each_field() {
        let mut bad = settings();
        bad.host = " ".to_owned();
        bad.port = Some(0);
        bad.from = "not an address".to_owned();
        bad.reply_to = Some("@".to_owned());
        bad.to = vec!["ok@example.com".to_owned(), "nope".to_owned()];
        bad.tls = SmtpTls::None;
        let secrets = DestinationSecrets {
            password: Some("pw".to_owned()),
            ..DestinationSecrets::default()
        };
        assert_eq!(
            fields(&bad, &secrets),
            [
                "settings.host",
                "settings.port",
                "settings.from",
                "settings.reply_to",
                "settings.to[1]",
                "settings.username",
                "settings.tls",
            ]
        );
    }

    #[test]
    fn the_host_is_a_name_or_an_address_without_a_port() {
        for good in [
            "smtp.example.com",
            "192.0.2.7",
            "2001:db8::1",
            "[2001:db8::1]",
        ] {
            let mut settings = settings();
            settings.host = good.to_owned();
            assert!(
                fields(&settings, &DestinationSecrets::default()).is_empty(),
                "{good}"
            );
        }
        for bad in [
            "smtp.example.com:587",
            "smtp://smtp.example.com",
            "smtp example",
        ] {
            let mut settings = settings();
            settings.host = bad.to_owned();
            assert_eq!(
                fields(&settings, &DestinationSecrets::default()),
                ["settings.host"],
                "{bad}"
            );
        }
    }

    #[test]
    fn recipients_are_between_one_and_a_hundred() {
        let mut none = settings();
        none.to.clear();
        assert_eq!(
            fields(&none, &DestinationSecrets::default()),
            ["settings.to"]
        );
        let mut many = settings();
        many.to = (0..=MAX_RECIPIENTS)
            .map(|i| format!("u{i}@example.com"))
            .collect();
        assert_eq!(
            fields(&many, &DestinationSecrets::default()),
            ["settings.to"]
        );
        many.to.pop();
        assert!(fields(&many, &DestinationSecrets::default()).is_empty());
    }

    #[test]
    fn the_message_id_comes_from_the_delivery_id_and_the_senders_domain() {
        let from: Mailbox = "Loupe <loupe@example.com>".parse().unwrap();
        assert_eq!(
            message_id("0190-ab_c.d", &from).as_deref(),
            Some("<0190-ab_c.d.loupe@example.com>")
        );
        assert_eq!(message_id("", &from), None);
        assert_eq!(message_id("a b>\r\nBcc: x", &from), None);
    }

    #[test]
    fn content_ids_that_would_break_the_header_are_refused() {
        let message = Message {
            html: "<img src=\"cid:a>b\">".to_owned(),
            images: vec![super::super::Image {
                content_id: "a>\r\nX: y".to_owned(),
                file_name: "c.png".to_owned(),
                alt: String::new(),
                png: bytes::Bytes::new(),
                url: None,
            }],
            ..Message::default()
        };
        let refused = build(&settings(), &message).unwrap_err();
        assert!(!refused.transient);
        assert!(refused.message.contains("content id"), "{refused}");
    }
}
