//! Mattermost incoming webhooks: a message attachment coloured by severity, with the facts as
//! short fields.

use std::time::Duration;

use serde_json::{Value, json};

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;
use crate::notification::{Notification, Severity, truncate};
use crate::spec::MattermostSpec;

pub(crate) async fn send(
    spec: &MattermostSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    crate::http::post_json_to_secret_url(
        "Mattermost",
        "Mattermost",
        &spec.webhook_url,
        &payload(spec, n),
        client,
        timeout,
    )
    .await
    .map(drop)
}

fn colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "#3498DB",
        Severity::Warning => "#F39C12",
        Severity::Critical => "#E74C3C",
    }
}

pub(crate) fn payload(spec: &MattermostSpec, n: &Notification) -> Value {
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(name, value)| json!({"title": name, "value": truncate(value, 500), "short": true}))
        .collect();
    let mut attachment = json!({
        "fallback": format!("[{}] {}: {}", n.severity.label(), n.title, n.message),
        "color": colour(n.severity),
        "title": truncate(&n.title, 200),
        "text": truncate(&n.message, 4000),
        "fields": fields,
        "footer": n.context_line(),
    });
    if let Some(link) = &n.link {
        attachment["title_link"] = json!(link);
    }
    let mut payload = json!({"attachments": [attachment]});
    if let Some(channel) = &spec.channel {
        payload["channel"] = json!(channel);
    }
    if let Some(username) = &spec.username {
        payload["username"] = json!(username);
    }
    payload
}
