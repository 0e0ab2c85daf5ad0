//! Telegram: the Bot API's sendMessage with HTML formatting.

use std::time::Duration;

use serde_json::{Value, json};

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;
use crate::http::{exchange, rejected};
use crate::notification::{Notification, truncate};
use crate::spec::{TELEGRAM_API_BASE_HINT, TelegramSpec, check_url};

pub(crate) async fn send(
    spec: &TelegramSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let token = spec.bot_token.expose();
    let base = check_url("api_base", &spec.api_base, TELEGRAM_API_BASE_HINT)?;
    let url = check_url(
        "bot_token",
        &format!(
            "{}/bot{token}/sendMessage",
            base.as_str().trim_end_matches('/')
        ),
        "use the token @BotFather gave you",
    )?;
    let payload = payload(spec, n);
    let answer = exchange(
        client,
        reqwest::Method::POST,
        &url,
        |request| request.json(&payload),
        timeout,
    )
    .await?;
    let parsed: Option<Value> = serde_json::from_str(&answer.body).ok();
    let ok = parsed
        .as_ref()
        .and_then(|v| v.get("ok"))
        .and_then(Value::as_bool);
    if answer.status.is_success() && ok != Some(false) {
        return Ok(());
    }
    // The Bot API explains every failure in `description`, e.g. "Bad Request: chat not found":
    // it picks the advice, but is not repeated (api_base may point at something else).
    let description = parsed
        .as_ref()
        .and_then(|v| v.get("description"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(rejected("Telegram", answer.status, hint(description)))
}

fn hint(description: &str) -> &'static str {
    let description = description.to_ascii_lowercase();
    if description.contains("unauthorized") {
        "check bot_token: revoked or mistyped"
    } else if description.contains("chat not found") {
        "check chat_id, and that the bot was added to that chat"
    } else if description.contains("thread not found") {
        "check message_thread_id: the topic may be closed or deleted"
    } else if description.contains("forbidden") {
        "the bot may not post there: add it to the chat or make it an admin of the channel"
    } else {
        ""
    }
}

/// Escapes text for Telegram's HTML parse mode (`&`, `<`, `>`; quotes too, for attributes).
pub(crate) fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn payload(spec: &TelegramSpec, n: &Notification) -> Value {
    let mut payload = json!({
        // Numeric ids go as numbers, `@channel` names as text.
        "chat_id": match spec.chat_id.trim().parse::<i64>() {
            Ok(id) => json!(id),
            Err(_) => json!(spec.chat_id.trim()),
        },
        "text": text(n),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    });
    if let Some(thread) = spec.message_thread_id {
        payload["message_thread_id"] = json!(thread);
    }
    payload
}

// A message holds at most 4096 characters after entity parsing; the cuts keep well below.
pub(crate) fn text(n: &Notification) -> String {
    let mut text = format!(
        "<b>{}</b>\n{}\n",
        escape_html(&truncate(&n.title, 200)),
        escape_html(&truncate(&n.message, 2500))
    );
    for (name, value) in n.facts().into_iter().take(20) {
        text.push_str(&format!(
            "\n<b>{}:</b> {}",
            escape_html(&truncate(name, 50)),
            escape_html(&truncate(value, 100))
        ));
    }
    text.push_str(&format!("\n\n<i>{}</i>", escape_html(&n.context_line())));
    if let Some(link) = &n.link {
        text.push_str(&format!(
            "\n<a href=\"{}\">Open in statehouse</a>",
            escape_html(link)
        ));
    }
    text
}
