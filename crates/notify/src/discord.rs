//! Discord webhooks: one embed coloured by severity, with the facts as inline fields.

use std::time::Duration;

use serde_json::{Value, json};

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;
use crate::notification::{Notification, Severity, truncate};
use crate::spec::DiscordSpec;

pub(crate) async fn send(
    spec: &DiscordSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    crate::http::post_json_to_secret_url(
        "Discord",
        "Discord",
        &spec.webhook_url,
        &payload(n),
        client,
        timeout,
    )
    .await
    .map(drop)
}

/// Embed colours (RGB): blue, amber, red.
pub(crate) fn colour(severity: Severity) -> u32 {
    match severity {
        Severity::Info => 0x3498DB,
        Severity::Warning => 0xF39C12,
        Severity::Critical => 0xE74C3C,
    }
}

// Embed limits: title 256, description 4096, 25 fields of name 256 / value 1024, 6000 in all;
// the cuts below keep a notification well within them.
pub(crate) fn payload(n: &Notification) -> Value {
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .take(20)
        .map(|(name, value)| {
            json!({
                "name": truncate(non_empty(name), 256),
                "value": truncate(non_empty(value), 200),
                "inline": true,
            })
        })
        .collect();
    let mut embed = json!({
        "title": truncate(&n.title, 256),
        "description": truncate(&n.message, 2000),
        "color": colour(n.severity),
        "timestamp": n.at.to_rfc3339(),
        "fields": fields,
        "footer": {"text": format!("statehouse · {} · {}", n.severity.label(), n.event)},
    });
    if let Some(link) = &n.link {
        embed["url"] = json!(link);
    }
    json!({
        "embeds": [embed],
        // A message that mentions @everyone must not ping anyone.
        "allowed_mentions": {"parse": []},
    })
}

/// Discord rejects empty field names and values.
fn non_empty(text: &str) -> &str {
    if text.trim().is_empty() { "—" } else { text }
}
