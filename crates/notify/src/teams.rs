//! Microsoft Teams: an Adaptive Card in a message attachment, the payload that both Workflows
//! ("post to a channel when a webhook request is received") and incoming webhooks accept.

use std::time::Duration;

use serde_json::{Value, json};

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;
use crate::notification::{Notification, Severity, truncate};
use crate::spec::TeamsSpec;

pub(crate) async fn send(
    spec: &TeamsSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let answer = crate::http::post_json_to_secret_url(
        "Teams",
        "the Teams Workflows (or incoming webhook)",
        &spec.webhook_url,
        &payload(n),
        client,
        timeout,
    )
    .await?;
    // Incoming webhooks have answered some failures with 200 and an explanation.
    if answer.body.contains("delivery failed") {
        return Err(crate::http::rejected(
            "Teams",
            answer.status,
            "the receiver reported that delivery failed (check that the flow or webhook still \
             exists and may post to the channel)",
        ));
    }
    Ok(())
}

fn title_colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "Accent",
        Severity::Warning => "Warning",
        Severity::Critical => "Attention",
    }
}

pub(crate) fn payload(n: &Notification) -> Value {
    let facts: Vec<Value> = n
        .facts()
        .into_iter()
        .map(|(name, value)| json!({"title": name, "value": truncate(value, 500)}))
        .collect();
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": truncate(&n.title, 200),
                "size": "Large",
                "weight": "Bolder",
                "color": title_colour(n.severity),
                "wrap": true,
            },
            {"type": "TextBlock", "text": truncate(&n.message, 4000), "wrap": true},
            {"type": "FactSet", "facts": facts},
            {
                "type": "TextBlock",
                "text": n.context_line(),
                "isSubtle": true,
                "size": "Small",
                "wrap": true,
            },
        ],
    });
    if let Some(link) = &n.link {
        card["actions"] = json!([{
            "type": "Action.OpenUrl",
            "title": "Open in statehouse",
            "url": link,
        }]);
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    })
}
