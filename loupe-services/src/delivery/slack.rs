//! Slack (and Mattermost) incoming webhooks: a message as Block Kit
//! blocks, within Slack's limits, POSTed to the destination's secret URL.
//!
//! The blocks, in order: a header with the subject; a section with the
//! text; the first rows of a result as a code block, when the text
//! carries a table (lines that start with `+` or `|`, as Arrow's pretty
//! printer and the CLI draw them); an image for each chart that has a
//! URL (Slack only takes images by URL); a context line with the links.
//! Text past a limit (header 150 characters, section 3000, 50 blocks) is
//! cut and ends with `…`. The top-level `text` is the subject, which
//! Slack shows in notifications.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::http::{self, Post, truncate};
use super::send::{Sent, Shared};
use super::webhook::https_url;
use super::{DestinationSecrets, Message, SendError};

/// Slack's limits, in characters.
const HEADER_CHARS: usize = 150;
const SECTION_CHARS: usize = 3000;
const ALT_TEXT_CHARS: usize = 2000;
const IMAGE_URL_CHARS: usize = 3000;
const MAX_BLOCKS: usize = 50;
const CONTEXT_ELEMENTS: usize = 10;

/// POSTs `message` to the Slack webhook in `secrets.url`.
pub(super) async fn send(
    shared: &Shared,
    secrets: &DestinationSecrets,
    message: &Message,
) -> Result<Sent, SendError> {
    let secret_url = secrets.url.as_deref().unwrap_or_default();
    let url = https_url(secret_url)
        .map_err(|problem| SendError::permanent(format!("the Slack webhook URL: {problem}")))?;
    let body = serde_json::to_vec(&payload(message))
        .map_err(|e| SendError::permanent(format!("the Slack payload: {e}")))?;
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    http::post(
        shared,
        Post {
            target: "the Slack webhook".to_owned(),
            url: &url,
            headers,
            body,
            secrets: vec![secret_url, url.path()],
        },
    )
    .await
}

/// The problems of a Slack destination.
pub(super) fn problems(secrets: &DestinationSecrets, found: &mut Vec<(String, String)>) {
    match secrets.url.as_deref() {
        None | Some("") => found.push((
            "secrets.url".to_owned(),
            "give the incoming-webhook URL that Slack shows for the channel".to_owned(),
        )),
        Some(url) => {
            if let Err(problem) = https_url(url) {
                // The URL is a secret: the problem never quotes it.
                found.push(("secrets.url".to_owned(), problem));
            }
        }
    }
}

/// The webhook's JSON body.
pub(super) fn payload(message: &Message) -> Value {
    let subject = flat(&message.subject);
    let headline = if subject.trim().is_empty() {
        "Loupe".to_owned()
    } else {
        truncate(&subject, HEADER_CHARS)
    };
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": headline, "emoji": true},
    })];
    let (prose, table) = split_table(&message.text);
    if !prose.trim().is_empty() {
        blocks.push(section(escape_within(prose.trim(), SECTION_CHARS)));
    }
    if !table.is_empty() {
        blocks.push(section(code_block(&table)));
    }
    let links: Vec<Value> = message
        .links
        .iter()
        .filter(|link| !link.url.is_empty())
        .take(CONTEXT_ELEMENTS)
        .map(|link| {
            let label = if link.label.is_empty() {
                &link.url
            } else {
                &link.label
            };
            json!({"type": "mrkdwn", "text": format!(
                "<{}|{}>",
                escape(&link.url.replace('|', "%7C")),
                escape_within(&flat(label), 200)
            )})
        })
        .collect();
    let room = MAX_BLOCKS - blocks.len() - usize::from(!links.is_empty());
    for image in message
        .images
        .iter()
        .filter_map(|image| Some((image, image.url.as_deref()?)))
        .filter(|(_, url)| url.len() <= IMAGE_URL_CHARS)
        .take(room)
    {
        let (image, url) = image;
        let alt = if image.alt.trim().is_empty() {
            &image.file_name
        } else {
            &image.alt
        };
        blocks.push(json!({
            "type": "image",
            "image_url": url,
            "alt_text": truncate(&flat(alt), ALT_TEXT_CHARS),
        }));
    }
    if !links.is_empty() {
        blocks.push(json!({"type": "context", "elements": links}));
    }
    json!({"text": truncate(&subject, SECTION_CHARS), "blocks": blocks})
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// `text` without the first table in it, and that table's lines.
fn split_table(text: &str) -> (String, Vec<&str>) {
    let lines: Vec<&str> = text.lines().collect();
    let is_row = |line: &&str| line.starts_with('+') || line.starts_with('|');
    let Some(start) = lines.iter().position(is_row) else {
        return (text.to_owned(), Vec::new());
    };
    let end = lines[start..]
        .iter()
        .position(|line| !is_row(line))
        .map_or(lines.len(), |n| start + n);
    let mut prose: Vec<&str> = lines[..start].to_vec();
    prose.extend(&lines[end..]);
    (prose.join("\n"), lines[start..end].to_vec())
}

/// The table's first lines as a code block within a section's limit.
fn code_block(table: &[&str]) -> String {
    const FENCE: &str = "```";
    let budget = SECTION_CHARS - 2 * FENCE.len() - "\n…".len() - 2;
    let mut body = String::new();
    let mut cut = false;
    for line in table {
        let escaped = escape(line);
        if slack_len(&body) + slack_len(&escaped) + 1 > budget {
            cut = true;
            break;
        }
        if !body.is_empty() {
            body.push('\n');
        }
        body.push_str(&escaped);
    }
    if cut {
        body.push_str("\n…");
    }
    format!("{FENCE}\n{body}\n{FENCE}")
}

/// Text for Slack's `mrkdwn`: `&`, `<` and `>` as entities, so text
/// cannot make links or mentions.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// [`escape`]d `text`, cut to at most `limit` characters (then `…`)
/// without splitting an entity.
fn escape_within(text: &str, limit: usize) -> String {
    let escaped = escape(text);
    if slack_len(&escaped) <= limit {
        return escaped;
    }
    let mut out = String::new();
    for c in text.chars() {
        let piece = escape(c.encode_utf8(&mut [0; 4]));
        if slack_len(&out) + slack_len(&piece) + 1 > limit {
            break;
        }
        out.push_str(&piece);
    }
    out.push('…');
    out
}

/// Length as Slack may count it (UTF-16 units: a character outside the
/// basic plane counts twice), so a limit is never passed.
fn slack_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// `text` on one line: control characters as spaces.
fn flat(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{Image, Link};
    use super::*;

    fn image(url: Option<&str>) -> Image {
        Image {
            content_id: "c".to_owned(),
            file_name: "chart.png".to_owned(),
            alt: "Revenue by month".to_owned(),
            png: bytes::Bytes::new(),
            url: url.map(str::to_owned),
        }
    }

    #[test]
    fn blocks_are_header_text_table_images_and_links() {
        let message = Message {
            subject: "Revenue dropped".to_owned(),
            text: "Revenue is below 1000 <@here> & falling.\n+----+\n| id |\n+----+\n| 1  |\n+----+\nSee the result."
                .to_owned(),
            images: vec![image(Some("https://loupe.example/i/1?sig=a&b")), image(None)],
            links: vec![Link {
                label: "Open <result>".to_owned(),
                url: "https://loupe.example/r/1?a=1&b=2|x".to_owned(),
            }],
            ..Message::default()
        };
        assert_eq!(
            payload(&message),
            json!({
                "text": "Revenue dropped",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "Revenue dropped", "emoji": true}},
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "Revenue is below 1000 &lt;@here&gt; &amp; falling.\nSee the result."}},
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "```\n+----+\n| id |\n+----+\n| 1  |\n+----+\n```"}},
                    {"type": "image", "image_url": "https://loupe.example/i/1?sig=a&b", "alt_text": "Revenue by month"},
                    {"type": "context", "elements": [{"type": "mrkdwn",
                        "text": "<https://loupe.example/r/1?a=1&amp;b=2%7Cx|Open &lt;result&gt;>"}]},
                ]
            })
        );
    }

    #[test]
    fn long_text_is_cut_to_slacks_limits() {
        let rows: Vec<String> = (0..2000).map(|i| format!("| {i:>6} | <&> |")).collect();
        let message = Message {
            subject: "s".repeat(400),
            text: format!("{}\n{}", "é&".repeat(4000), rows.join("\n")),
            images: (0..80)
                .map(|_| image(Some("https://loupe.example/i")))
                .collect(),
            links: (0..20)
                .map(|i| Link {
                    label: format!("link {i}"),
                    url: format!("https://loupe.example/{i}"),
                })
                .collect(),
            ..Message::default()
        };
        let value = payload(&message);
        let blocks = value["blocks"].as_array().cloned().unwrap_or_default();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        let header = blocks[0]["text"]["text"].as_str().unwrap_or_default();
        assert_eq!(header.chars().count(), HEADER_CHARS);
        assert!(header.ends_with('…'));
        let prose = blocks[1]["text"]["text"].as_str().unwrap_or_default();
        assert!(slack_len(prose) <= SECTION_CHARS && prose.ends_with('…'));
        assert_eq!(
            prose.matches('&').count(),
            prose.matches("&amp;").count(),
            "no entity is split"
        );
        let table = blocks[2]["text"]["text"].as_str().unwrap_or_default();
        assert!(slack_len(table) <= SECTION_CHARS, "{}", slack_len(table));
        assert!(table.starts_with("```\n|      0 | &lt;&amp;&gt; |"));
        assert!(table.ends_with("\n…\n```"));
        let context = &blocks[MAX_BLOCKS - 1];
        assert_eq!(context["type"], "context");
        assert_eq!(
            context["elements"].as_array().map(Vec::len),
            Some(CONTEXT_ELEMENTS)
        );
    }

    #[test]
    fn an_empty_message_still_has_a_header() {
        let value = payload(&Message::default());
        assert_eq!(
            value,
            json!({"text": "", "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Loupe", "emoji": true}}
            ]})
        );
    }

    #[test]
    fn a_slack_destination_needs_an_https_url() {
        let mut found = Vec::new();
        problems(&DestinationSecrets::default(), &mut found);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "secrets.url");
        let mut found = Vec::new();
        let secrets = DestinationSecrets {
            url: Some("http://hooks.slack.com/services/T/B/secret".to_owned()),
            ..DestinationSecrets::default()
        };
        problems(&secrets, &mut found);
        assert_eq!(found.len(), 1);
        assert!(!found[0].1.contains("secret"), "{found:?}");
    }
}
