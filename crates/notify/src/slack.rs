//! Slack incoming webhooks: Block Kit (header, message, fields, context, button), with a plain
//! `text` fallback for notifications and old clients.

use std::time::Duration;

use serde_json::{Value, json};

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;
use crate::notification::{Notification, Severity, truncate};
use crate::spec::SlackSpec;

pub(crate) async fn send(
    spec: &SlackSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    crate::http::post_json_to_secret_url(
        "Slack",
        "Slack",
        &spec.webhook_url,
        &payload(n),
        client,
        timeout,
    )
    .await
    .map(drop)
}

/// Slack's mrkdwn treats `&`, `<` and `>` as control characters.
pub(crate) fn escape_mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => ":information_source:",
        Severity::Warning => ":warning:",
        Severity::Critical => ":rotating_light:",
    }
}

// Block Kit limits: header 150 characters, section text 3000, field text 2000 and 10 fields
// per section.
pub(crate) fn payload(n: &Notification) -> Value {
    let mut blocks = vec![
        json!({
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(&format!("{} {}", emoji(n.severity), n.title), 150),
                "emoji": true,
            },
        }),
        json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(&escape_mrkdwn(&n.message), 3000)},
        }),
    ];
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(name, value)| {
            json!({
                "type": "mrkdwn",
                "text": truncate(
                    &format!("*{}*\n{}", escape_mrkdwn(name), escape_mrkdwn(value)),
                    2000,
                ),
            })
        })
        .collect();
    for chunk in fields.chunks(10) {
        blocks.push(json!({"type": "section", "fields": chunk}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": escape_mrkdwn(&n.context_line())}],
    }));
    if let Some(link) = &n.link {
        blocks.push(json!({
            "type": "actions",
            "elements": [{
                "type": "button",
                "text": {"type": "plain_text", "text": "Open in statehouse"},
                "url": link,
            }],
        }));
    }
    json!({
        "text": escape_mrkdwn(&format!("[{}] {}: {}", n.severity.label(), n.title, n.message)),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use statehouse_core::clock::Timestamp;

    #[test]
    fn more_than_ten_facts_take_several_sections_and_long_titles_are_cut() {
        let mut n = crate::test_notification("prod", Timestamp(0));
        n.title = "x".repeat(400);
        n.fields = (0..12).map(|i| (format!("f{i}"), i.to_string())).collect();
        let payload = payload(&n);
        let blocks = payload["blocks"].as_array().unwrap_or(&Vec::new()).clone();
        let header = blocks[0]["text"]["text"].as_str().unwrap_or("");
        assert_eq!(header.chars().count(), 150);
        // Workspace + 12 fields = 13 facts: sections of 10 and 3.
        assert_eq!(blocks[2]["fields"].as_array().map(Vec::len), Some(10));
        assert_eq!(blocks[3]["fields"].as_array().map(Vec::len), Some(3));
        assert_eq!(blocks[4]["type"], "context");
        assert_eq!(blocks.len(), 5, "no button without a link");
    }
}
