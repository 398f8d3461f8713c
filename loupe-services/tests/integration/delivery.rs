//! Deliveries against real servers on loopback, which `scripts/test`
//! starts: an SMTP server (STARTTLS with AUTH, implicit TLS, plain, and
//! STARTTLS with a certificate for another name; every accepted message
//! lands in `LOUPE_TEST_SMTP_MAILDIR`) and an HTTPS receiver (every
//! request lands in `LOUPE_TEST_RECEIVER_DIR`; `/status/<code>` and
//! `/flaky/<key>` choose its answer). Both have certificates from the
//! test CA in `LOUPE_TEST_CA`.
//!
//! Each test tags what it sends with a fresh id and looks for that id
//! only, so the tests share the servers. Both servers store what they
//! accept before they answer: once a send returns, it is there.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use loupe_services::delivery::{
    Attachment, DestinationSecrets, DestinationSettings, EmailSettings, Image, Link, Message,
    Outbound, SendError, SlackSettings, SmtpTls, WebhookSettings, sign, verify,
};
use loupe_services::egress::Egress;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::Value;

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

const CSV: &[u8] = b"region,revenue\nnorth,1200\nsouth,800\n";

/// The test servers, when `scripts/test` started them.
struct Servers {
    starttls: (String, u16),
    implicit: (String, u16),
    plain: (String, u16),
    wrong_name: (String, u16),
    user: String,
    password: String,
    maildir: PathBuf,
    receiver: url::Url,
    received: PathBuf,
    ca: PathBuf,
}

fn host_port(variable: &str) -> Option<(String, u16)> {
    let value = super::env_url(variable)?;
    let (host, port) = value.rsplit_once(':').expect("host:port");
    Some((host.to_owned(), port.parse().expect("a port")))
}

fn servers() -> Option<Servers> {
    Some(Servers {
        starttls: host_port("LOUPE_TEST_SMTP_STARTTLS")?,
        implicit: host_port("LOUPE_TEST_SMTP_IMPLICIT")?,
        plain: host_port("LOUPE_TEST_SMTP_PLAIN")?,
        wrong_name: host_port("LOUPE_TEST_SMTP_WRONG_NAME")?,
        user: super::env_url("LOUPE_TEST_SMTP_USER")?,
        password: super::env_url("LOUPE_TEST_SMTP_PASSWORD")?,
        maildir: super::env_url("LOUPE_TEST_SMTP_MAILDIR")?.into(),
        receiver: super::env_url("LOUPE_TEST_RECEIVER_URL")?
            .parse()
            .expect("a URL"),
        received: super::env_url("LOUPE_TEST_RECEIVER_DIR")?.into(),
        ca: super::env_url("LOUPE_TEST_CA")?.into(),
    })
}

impl Servers {
    /// A sender that trusts the test CA, with `egress`.
    fn outbound(&self, egress: Egress) -> Outbound {
        Outbound::new(egress, Some(&self.ca), Duration::from_secs(20)).unwrap()
    }

    /// The sender most tests use: private networks (loopback) allowed.
    fn open(&self) -> Outbound {
        self.outbound(Egress::new(true))
    }

    fn email(&self, (host, port): &(String, u16), tls: SmtpTls, to: &str) -> DestinationSettings {
        DestinationSettings::Email(EmailSettings {
            host: host.clone(),
            port: Some(*port),
            tls,
            username: (tls != SmtpTls::None).then(|| self.user.clone()),
            from: "Loupe alerts <alerts@loupe.example>".to_owned(),
            reply_to: Some("Data team <data@loupe.example>".to_owned()),
            to: vec![to.to_owned(), "second@example.com".to_owned()],
        })
    }

    fn login(&self) -> DestinationSecrets {
        DestinationSecrets {
            password: Some(self.password.clone()),
            ..DestinationSecrets::default()
        }
    }

    /// The messages the SMTP server accepted that carry `id`, with the
    /// envelope it recorded for each.
    fn mails(&self, id: &str) -> Vec<(Vec<u8>, Value)> {
        let mut found = Vec::new();
        for path in files(&self.maildir, "eml") {
            let bytes = std::fs::read(&path).unwrap();
            if contains(&bytes, id) {
                let envelope = std::fs::read(path.with_extension("json")).unwrap();
                found.push((bytes, serde_json::from_slice(&envelope).unwrap()));
            }
        }
        found
    }

    /// A URL on the receiver.
    fn url(&self, path: &str) -> String {
        self.receiver.join(path).unwrap().to_string()
    }

    /// The requests the receiver got whose path contains `id`.
    fn requests(&self, id: &str) -> Vec<Value> {
        files(&self.received, "json")
            .into_iter()
            .map(|path| serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()).unwrap())
            .filter(|request| request["path"].as_str().unwrap_or_default().contains(id))
            .collect()
    }
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == extension))
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A message with a chart, a file, a link and a result table, tagged
/// with `id`.
fn message(id: &str) -> Message {
    Message {
        id: id.to_owned(),
        subject: format!("Revenue below target ({id})"),
        text: "Revenue fell below 1000.\n+--------+---------+\n| region | revenue |\n+--------+---------+\n| north  | 1200    |\n+--------+---------+\n".to_owned(),
        html: format!("<p>Revenue fell below 1000.</p><img src=\"cid:chart-{id}\" alt=\"Revenue\">"),
        images: vec![Image {
            content_id: format!("chart-{id}"),
            file_name: "revenue.png".to_owned(),
            alt: "Revenue by region".to_owned(),
            png: Bytes::from_static(PNG),
            url: Some(format!("https://loupe.example/charts/{id}.png")),
        }],
        attachments: vec![Attachment {
            file_name: "result.csv".to_owned(),
            content_type: "text/csv".to_owned(),
            bytes: Bytes::from_static(CSV),
        }],
        links: vec![Link {
            label: "Open the result".to_owned(),
            url: format!("https://loupe.example/results/{id}"),
        }],
        event: serde_json::json!({"kind": "alert", "alert": "revenue", "value": 950}),
    }
}

/// The MIME tree of a parsed message, as `type[children]`.
fn shape(mail: &mail_parser::Message<'_>, part: u32) -> String {
    let node = &mail.parts[part as usize];
    let kind = node
        .content_type()
        .map(|t| format!("{}/{}", t.ctype(), t.subtype().unwrap_or_default()))
        .unwrap_or_default();
    match node.sub_parts() {
        Some(children) => {
            let inner: Vec<String> = children.iter().map(|&c| shape(mail, c)).collect();
            format!("{kind}[{}]", inner.join(","))
        }
        None => kind,
    }
}

fn first_address(address: Option<&mail_parser::Address<'_>>) -> (String, String) {
    let first = address.and_then(|a| a.first()).expect("an address");
    (
        first.name().unwrap_or_default().to_owned(),
        first.address().unwrap_or_default().to_owned(),
    )
}

/// Checks everything a mail of [`message`] must carry.
fn check_mail(bytes: &[u8], id: &str) {
    let mail = MessageParser::default()
        .parse(bytes)
        .expect("a MIME message");
    assert_eq!(
        first_address(mail.from()),
        ("Loupe alerts".to_owned(), "alerts@loupe.example".to_owned())
    );
    assert_eq!(
        first_address(mail.reply_to()),
        ("Data team".to_owned(), "data@loupe.example".to_owned())
    );
    let to: Vec<&str> = mail
        .to()
        .and_then(|a| a.as_list())
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a.address())
        .collect();
    assert_eq!(to.len(), 2, "{to:?}");
    assert_eq!(to[1], "second@example.com");
    assert_eq!(
        mail.subject(),
        Some(format!("Revenue below target ({id})").as_str())
    );
    assert_eq!(
        mail.message_id(),
        Some(format!("{id}.loupe@loupe.example").as_str())
    );
    assert_eq!(
        shape(&mail, 0),
        "multipart/mixed[multipart/related[multipart/alternative[text/plain,text/html],image/png],text/csv]"
    );

    let html = mail.body_html(0).expect("an HTML body");
    assert!(html.contains(&format!("src=\"cid:chart-{id}\"")), "{html}");
    let text = mail.body_text(0).expect("a text body");
    assert!(text.contains("| north  | 1200    |"), "{text}");

    let image = mail
        .parts
        .iter()
        .find(|p| p.content_type().is_some_and(|t| t.ctype() == "image"))
        .expect("the image part");
    assert_eq!(image.content_id(), Some(format!("chart-{id}").as_str()));
    assert_eq!(image.content_type().and_then(|t| t.subtype()), Some("png"));
    assert!(image.content_disposition().is_some_and(|d| d.is_inline()));
    assert_eq!(image.contents(), PNG);

    let file = mail
        .parts
        .iter()
        .find(|p| p.content_disposition().is_some_and(|d| d.is_attachment()))
        .expect("the attachment");
    assert_eq!(file.attachment_name(), Some("result.csv"));
    assert_eq!(
        file.content_type().map(|t| (t.ctype(), t.subtype())),
        Some(("text", Some("csv")))
    );
    assert_eq!(file.contents(), CSV);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_over_starttls_with_a_login_arrives_with_its_chart_and_file() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    let to = format!("ops+{id}@example.com");
    let sent = servers
        .open()
        .send(
            &servers.email(&servers.starttls, SmtpTls::Starttls, &to),
            &servers.login(),
            &message(&id),
        )
        .await
        .unwrap();
    assert!(
        sent.detail.starts_with("250 2.0.0 Ok: queued as "),
        "{sent:?}"
    );

    let mails = servers.mails(&id);
    assert_eq!(mails.len(), 1, "sent once");
    let (bytes, envelope) = &mails[0];
    assert_eq!(envelope["tls"], true, "{envelope}");
    assert_eq!(envelope["authenticated_as"], servers.user.as_str());
    assert_eq!(envelope["mail_from"], "alerts@loupe.example");
    assert_eq!(
        envelope["rcpt_tos"],
        serde_json::json!([to, "second@example.com"])
    );
    check_mail(bytes, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_over_implicit_tls_arrives() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    servers
        .open()
        .send(
            &servers.email(
                &servers.implicit,
                SmtpTls::Implicit,
                &format!("ops+{id}@example.com"),
            ),
            &servers.login(),
            &message(&id),
        )
        .await
        .unwrap();
    let mails = servers.mails(&id);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1["tls"], true);
    assert_eq!(mails[0].1["authenticated_as"], servers.user.as_str());
    check_mail(&mails[0].0, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_a_permanent_error() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    let error = servers
        .open()
        .send(
            &servers.email(
                &servers.starttls,
                SmtpTls::Starttls,
                &format!("ops+{id}@example.com"),
            ),
            &DestinationSecrets {
                password: Some("not the password".to_owned()),
                ..DestinationSecrets::default()
            },
            &message(&id),
        )
        .await
        .unwrap_err();
    assert!(!error.transient, "{error}");
    assert!(error.message.contains("535"), "{error}");
    assert!(!error.message.contains("not the password"), "{error}");
    assert!(servers.mails(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recipient_the_server_defers_is_a_transient_error_and_one_it_refuses_a_permanent_one() {
    let Some(servers) = servers() else { return };
    let outbound = servers.open();
    let id = new_id();
    let deferred = outbound
        .send(
            &servers.email(&servers.starttls, SmtpTls::Starttls, "tempfail@example.com"),
            &servers.login(),
            &message(&id),
        )
        .await
        .unwrap_err();
    assert!(deferred.transient, "{deferred}");
    assert!(deferred.message.contains("451"), "{deferred}");

    let refused = outbound
        .send(
            &servers.email(&servers.starttls, SmtpTls::Starttls, "permfail@example.com"),
            &servers.login(),
            &message(&id),
        )
        .await
        .unwrap_err();
    assert!(!refused.transient, "{refused}");
    assert!(refused.message.contains("550"), "{refused}");
    assert!(servers.mails(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_starttls_server_with_a_certificate_for_another_name_is_refused() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    let error = servers
        .open()
        .send(
            &servers.email(
                &servers.wrong_name,
                SmtpTls::Starttls,
                &format!("ops+{id}@example.com"),
            ),
            &servers.login(),
            &message(&id),
        )
        .await
        .unwrap_err();
    assert!(!error.transient, "{error}");
    assert!(error.message.contains("certificate"), "{error}");
    assert!(error.message.contains("not valid for name"), "{error}");
    assert!(error.message.contains("connect by a name"), "{error}");
    assert!(servers.mails(&id).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_authority_not_trusted_is_refused() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    // The system's roots only: the test CA is not among them.
    let outbound = Outbound::new(Egress::new(true), None, Duration::from_secs(20)).unwrap();
    let error = outbound
        .send(
            &servers.email(
                &servers.implicit,
                SmtpTls::Implicit,
                &format!("ops+{id}@example.com"),
            ),
            &servers.login(),
            &message(&id),
        )
        .await
        .unwrap_err();
    assert!(!error.transient, "{error}");
    assert!(error.message.contains("UnknownIssuer"), "{error}");
    assert!(error.message.contains("CA file"), "{error}");
    assert!(servers.mails(&id).is_empty());
}

/// `starttls` means encrypted or nothing: against a server that offers no
/// STARTTLS, the message is not sent in plain text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_never_falls_back_to_plain_text() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    let mut settings = servers.email(
        &servers.plain,
        SmtpTls::Starttls,
        &format!("ops+{id}@example.com"),
    );
    if let DestinationSettings::Email(email) = &mut settings {
        email.username = None;
    }
    let error = servers
        .open()
        .send(&settings, &DestinationSecrets::default(), &message(&id))
        .await
        .unwrap_err();
    assert!(!error.transient, "{error}");
    assert!(error.message.contains("STARTTLS"), "{error}");
    assert!(servers.mails(&id).is_empty());

    // The same server takes it when the destination says `none`.
    servers
        .open()
        .send(
            &servers.email(
                &servers.plain,
                SmtpTls::None,
                &format!("ops+{id}@example.com"),
            ),
            &DestinationSecrets::default(),
            &message(&id),
        )
        .await
        .unwrap();
    let mails = servers.mails(&id);
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].1["tls"], false);
}

/// A server that accepts the connection and never says a word: the send
/// gives up after the timeout, and a later attempt may do better.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smtp_server_that_never_answers_is_a_transient_error() {
    let Some(servers) = servers() else { return };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let outbound =
        Outbound::new(Egress::new(true), Some(&servers.ca), Duration::from_secs(1)).unwrap();
    let started = std::time::Instant::now();
    let error = outbound
        .send(
            &servers.email(
                &("127.0.0.1".to_owned(), port),
                SmtpTls::Implicit,
                "ops@example.com",
            ),
            &servers.login(),
            &message(&new_id()),
        )
        .await
        .unwrap_err();
    hold.abort();
    assert!(error.transient, "{error}");
    assert!(error.message.contains("within 1 s"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

fn webhook(url: String) -> DestinationSettings {
    DestinationSettings::Webhook(WebhookSettings { url })
}

const SIGNING_SECRET: &str = "a signing secret of 32 bytes....";

fn signed() -> DestinationSecrets {
    DestinationSecrets {
        signing_secret: Some(SIGNING_SECRET.to_owned()),
        headers: [(
            "X-Receiver-Token".to_owned(),
            "token-for-the-receiver".to_owned(),
        )]
        .into(),
        ..DestinationSecrets::default()
    }
}

fn header<'a>(request: &'a Value, name: &str) -> Option<&'a str> {
    request["headers"]
        .as_array()?
        .iter()
        .find(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .and_then(|pair| pair[1].as_str())
}

fn body(request: &Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(request["body_base64"].as_str().unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_arrives_once_signed_and_the_signature_checks_out() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    let sent = servers
        .open()
        .send(
            &webhook(servers.url(&format!("/hooks/{id}"))),
            &signed(),
            &message(&id),
        )
        .await
        .unwrap();
    assert_eq!(sent.detail, "HTTP 200");

    let requests = servers.requests(&id);
    assert_eq!(requests.len(), 1, "once");
    let request = &requests[0];
    assert_eq!(request["method"], "POST");
    assert_eq!(header(request, "Content-Type"), Some("application/json"));
    assert_eq!(
        header(request, "User-Agent"),
        Some(concat!("Loupe/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(header(request, "Loupe-Delivery"), Some(id.as_str()));
    assert_eq!(
        header(request, "X-Receiver-Token"),
        Some("token-for-the-receiver")
    );

    let body = body(request);
    let signature = header(request, "Loupe-Signature").expect("signed");
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        verify(SIGNING_SECRET.as_bytes(), signature, &body, now, 300),
        Ok(())
    );
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(verify(SIGNING_SECRET.as_bytes(), signature, &tampered, now, 300).is_err());
    let stale = verify(SIGNING_SECRET.as_bytes(), signature, &body, now + 301, 300).unwrap_err();
    assert!(stale.contains("tolerance"), "{stale}");
    // A replay that moves the timestamp on keeps a MAC made for the old one.
    let (stamp, mac) = signature.split_once(",v1=").unwrap();
    let sent_at: i64 = stamp.trim_start_matches("t=").parse().unwrap();
    let replayed = format!("t={},v1={mac}", sent_at + 60);
    let refused = verify(
        SIGNING_SECRET.as_bytes(),
        &replayed,
        &body,
        sent_at + 60,
        300,
    );
    assert!(refused.unwrap_err().contains("does not match"));
    assert_eq!(sign(SIGNING_SECRET.as_bytes(), sent_at, &body), signature);

    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["id"], id.as_str());
    assert_eq!(payload["subject"], format!("Revenue below target ({id})"));
    assert_eq!(payload["event"]["value"], 950);
    assert_eq!(payload["links"][0]["label"], "Open the result");
    assert_eq!(payload["images"][0]["content_type"], "image/png");
    assert_eq!(
        payload["images"][0]["data_base64"],
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg=="
    );
    assert_eq!(payload["attachments"][0]["file_name"], "result.csv");
    assert_eq!(
        payload["attachments"][0]["data_base64"],
        "cmVnaW9uLHJldmVudWUKbm9ydGgsMTIwMApzb3V0aCw4MDAK"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_are_classified_by_status() {
    let Some(servers) = servers() else { return };
    let outbound = servers.open();
    let secrets = signed();
    for (status, transient) in [
        (500, true),
        (503, true),
        (429, true),
        (408, true),
        (404, false),
        (401, false),
        (302, false),
    ] {
        let error: SendError = outbound
            .send(
                &webhook(servers.url(&format!("/status/{status}"))),
                &secrets,
                &message(&new_id()),
            )
            .await
            .unwrap_err();
        assert_eq!(error.transient, transient, "{status}: {error}");
        assert!(error.message.contains(&format!("HTTP {status}")), "{error}");
        assert!(
            error.message.contains("the test receiver answers"),
            "{error}"
        );
        // The status line and at most 200 characters of the body.
        assert!(
            error.message.chars().count() < 320,
            "{}",
            error.message.len()
        );
        assert!(!error.message.contains("token-for-the-receiver"));
    }
    let throttled = outbound
        .send(
            &webhook(servers.url("/status/429")),
            &secrets,
            &message(&new_id()),
        )
        .await
        .unwrap_err();
    assert!(throttled.message.contains("Retry-After: 7"), "{throttled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_receiver_gets_the_webhook_on_the_second_attempt() {
    let Some(servers) = servers() else { return };
    let outbound = servers.open();
    let id = new_id();
    let url = servers.url(&format!("/flaky/{id}"));
    let first = outbound
        .send(&webhook(url.clone()), &signed(), &message(&id))
        .await;
    assert!(first.as_ref().is_err_and(|e| e.transient), "{first:?}");
    outbound
        .send(&webhook(url), &signed(), &message(&id))
        .await
        .unwrap();
    let requests = servers.requests(&id);
    assert_eq!(requests.len(), 2);
    // The same delivery id on both attempts: the receiver can tell.
    assert_eq!(
        header(&requests[0], "Loupe-Delivery"),
        header(&requests[1], "Loupe-Delivery")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_message_arrives_as_blocks() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    let slack = DestinationSettings::Slack(SlackSettings::default());
    let secrets = DestinationSecrets {
        url: Some(servers.url(&format!("/services/T000/B000/{id}"))),
        ..DestinationSecrets::default()
    };
    servers
        .open()
        .send(&slack, &secrets, &message(&id))
        .await
        .unwrap();
    let requests = servers.requests(&id);
    assert_eq!(requests.len(), 1);
    let payload: Value = serde_json::from_slice(&body(&requests[0])).unwrap();
    let subject = format!("Revenue below target ({id})");
    assert_eq!(payload["text"], subject.as_str());
    let blocks = payload["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["header", "section", "section", "image", "context"]);
    assert_eq!(
        blocks[0]["text"],
        serde_json::json!({"type": "plain_text", "text": subject, "emoji": true})
    );
    assert_eq!(blocks[1]["text"]["text"], "Revenue fell below 1000.");
    assert_eq!(
        blocks[2]["text"]["text"],
        "```\n+--------+---------+\n| region | revenue |\n+--------+---------+\n| north  | 1200    |\n+--------+---------+\n```"
    );
    assert_eq!(
        blocks[3]["image_url"],
        format!("https://loupe.example/charts/{id}.png")
    );
    assert_eq!(blocks[3]["alt_text"], "Revenue by region");
    assert_eq!(
        blocks[4]["elements"][0]["text"],
        format!("<https://loupe.example/results/{id}|Open the result>")
    );
}

/// The Slack URL holds its token: an error never shows it, even when the
/// server echoes the path back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_error_does_not_show_the_secret_url() {
    let Some(servers) = servers() else { return };
    let slack = DestinationSettings::Slack(SlackSettings::default());
    let secrets = DestinationSecrets {
        url: Some(servers.url("/status/404")),
        ..DestinationSecrets::default()
    };
    let error = servers
        .open()
        .send(&slack, &secrets, &message(&new_id()))
        .await
        .unwrap_err();
    assert!(!error.transient);
    assert!(error.message.contains("HTTP 404"), "{error}");
    assert!(!error.message.contains("/status/404"), "{error}");
    assert!(
        !error.message.contains(servers.receiver.as_str()),
        "{error}"
    );
}

/// With the default rules, every way to reach loopback is refused before
/// anything is sent, with the rule's name; allowing private networks lets
/// each of them through. Each case fails if its check is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_destinations_are_refused_unless_private_networks_are_allowed() {
    let Some(servers) = servers() else { return };
    let id = new_id();
    let port = servers.receiver.port().unwrap();
    let smtp_port = servers.implicit.1;
    let slack = DestinationSettings::Slack(SlackSettings::default());
    let slack_secrets = DestinationSecrets {
        url: Some(servers.url(&format!("/services/slack-{id}"))),
        ..DestinationSecrets::default()
    };
    let cases: Vec<(&str, DestinationSettings, DestinationSecrets)> = vec![
        // Through the HTTPS client's resolver.
        (
            "webhook to localhost",
            webhook(servers.url(&format!("/egress/name-{id}"))),
            signed(),
        ),
        // An IP literal, which the resolver never sees.
        (
            "webhook to 127.0.0.1",
            webhook(format!("https://127.0.0.1:{port}/egress/ip-{id}")),
            signed(),
        ),
        ("Slack to localhost", slack, slack_secrets),
        (
            "SMTP to localhost",
            servers.email(
                &("localhost".to_owned(), smtp_port),
                SmtpTls::Implicit,
                &format!("name-{id}@example.com"),
            ),
            servers.login(),
        ),
        (
            "SMTP to 127.0.0.1",
            servers.email(
                &("127.0.0.1".to_owned(), smtp_port),
                SmtpTls::Implicit,
                &format!("ip-{id}@example.com"),
            ),
            servers.login(),
        ),
    ];

    let closed = servers.outbound(Egress::default());
    for (case, settings, secrets) in &cases {
        let error = closed
            .send(settings, secrets, &message(&id))
            .await
            .unwrap_err();
        assert!(!error.transient, "{case}: {error}");
        assert!(error.message.contains("loopback"), "{case}: {error}");
        assert!(
            error.message.contains("egress.allow_private = true"),
            "{case}: {error}"
        );
    }
    assert!(
        servers.requests(&id).is_empty(),
        "nothing reached the receiver"
    );
    assert!(
        servers.mails(&id).is_empty(),
        "nothing reached the SMTP server"
    );

    let open = servers.open();
    for (case, settings, secrets) in &cases {
        open.send(settings, secrets, &message(&id))
            .await
            .unwrap_or_else(|e| panic!("{case}: {e}"));
    }
    assert_eq!(servers.requests(&id).len(), 3);
    assert_eq!(servers.mails(&id).len(), 2);
}
