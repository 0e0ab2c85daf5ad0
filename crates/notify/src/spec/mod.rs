//! What a notifier is: its channel and the settings of each kind. How the settings are checked is
//! in `validation`, how their secrets are kept apart from the rest in `secrets`.

mod secrets;
mod validation;

#[cfg(test)]
mod samples;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::secret::Secret;

pub(crate) use validation::{
    NTFY_SERVER_HINT, TELEGRAM_API_BASE_HINT, WEBHOOK_URL_HINT, check_url, paste_hint,
};

/// One notification channel with its settings. JSON: `{"kind": "slack", "webhook_url": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NotifierSpec {
    Email(EmailSpec),
    Slack(SlackSpec),
    Discord(DiscordSpec),
    Telegram(TelegramSpec),
    Teams(TeamsSpec),
    Mattermost(MattermostSpec),
    Ntfy(NtfySpec),
    Webhook(WebhookSpec),
}

/// Mail through an SMTP server (relay or submission port).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSpec {
    /// The mail server's host name, e.g. `smtp.example.com`.
    pub host: String,
    /// Defaults to 25 (`none`), 587 (`starttls`) or 465 (`tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: EmailSecurity,
    /// Login; leave out for a relay that accepts mail without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// `statehouse@example.com` or `Statehouse <statehouse@example.com>`.
    pub from: String,
    pub to: Vec<String>,
    /// A CA certificate (PEM) to trust besides the public ones, for a relay with a private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_pem: Option<String>,
    /// Skips certificate checks: anyone between statehouse and the server can read the mail and
    /// the password. Prefer `ca_certificate_pem`.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailSecurity {
    /// Plain text (a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS, which is then required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

impl EmailSecurity {
    pub fn default_port(self) -> u16 {
        match self {
            EmailSecurity::None => 25,
            EmailSecurity::Starttls => 587,
            EmailSecurity::Tls => 465,
        }
    }
}

impl EmailSpec {
    /// The port to connect to: the one set, else the usual one for `security`.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.security.default_port())
    }
}

/// A Slack incoming webhook (`https://hooks.slack.com/services/…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSpec {
    pub webhook_url: Secret,
}

/// A Discord channel webhook (`https://discord.com/api/webhooks/…`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscordSpec {
    pub webhook_url: Secret,
}

/// A Telegram bot posting to a chat, channel or forum topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSpec {
    /// `123456789:AA…`, from @BotFather.
    pub bot_token: Secret,
    /// A numeric chat id (`-1001234567890`) or a public channel's `@username`.
    #[serde(deserialize_with = "text_or_integer")]
    pub chat_id: String,
    /// The topic of a forum supergroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_thread_id: Option<i64>,
    #[serde(default = "default_telegram_api_base")]
    pub api_base: String,
}

pub(crate) const DEFAULT_TELEGRAM_API_BASE: &str = "https://api.telegram.org";

fn default_telegram_api_base() -> String {
    DEFAULT_TELEGRAM_API_BASE.to_owned()
}

/// A Microsoft Teams channel: the URL of a Workflows "post to a channel when a webhook request
/// is received" flow, or of a (legacy) incoming webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsSpec {
    pub webhook_url: Secret,
}

/// A Mattermost incoming webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MattermostSpec {
    pub webhook_url: Secret,
    /// Overrides the webhook's channel (if the webhook allows it), e.g. `town-square`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Overrides the poster's name (if the server allows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// An ntfy topic, on ntfy.sh or a self-hosted server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfySpec {
    #[serde(default = "default_ntfy_server")]
    pub server: String,
    /// Without access control anyone who knows the topic reads it, so it is kept as a secret.
    pub topic: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// A fixed priority; by default it follows the severity (info: default, warning: high,
    /// critical: max).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<NtfyPriority>,
    /// Extra tags (emoji short codes such as `floppy_disk` show as emoji).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

pub(crate) const DEFAULT_NTFY_SERVER: &str = "https://ntfy.sh";

fn default_ntfy_server() -> String {
    DEFAULT_NTFY_SERVER.to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NtfyPriority {
    Min,
    Low,
    Default,
    High,
    Max,
}

impl NtfyPriority {
    /// ntfy's number for it, 1 (min) to 5 (max).
    pub fn number(self) -> u8 {
        match self {
            NtfyPriority::Min => 1,
            NtfyPriority::Low => 2,
            NtfyPriority::Default => 3,
            NtfyPriority::High => 4,
            NtfyPriority::Max => 5,
        }
    }
}

/// Any HTTP endpoint: the notification as JSON, or a body of your own with placeholders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Kept as a secret: such URLs often carry a token in their path or query.
    pub url: Secret,
    #[serde(default)]
    pub method: WebhookMethod,
    /// Sent with every request; values are secrets (they usually hold credentials).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Secret>,
    /// The body, with placeholders such as `{{title}}` (see [`crate::PLACEHOLDERS`]). When the
    /// body is JSON (by `Content-Type`, or by its first character when none is set) values are
    /// JSON-escaped. Without it the body is [`crate::Notification::to_json`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_template: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookMethod {
    #[default]
    #[serde(rename = "POST", alias = "post")]
    Post,
    #[serde(rename = "PUT", alias = "put")]
    Put,
    #[serde(rename = "PATCH", alias = "patch")]
    Patch,
}

impl WebhookMethod {
    pub(crate) fn as_reqwest(self) -> reqwest::Method {
        match self {
            WebhookMethod::Post => reqwest::Method::POST,
            WebhookMethod::Put => reqwest::Method::PUT,
            WebhookMethod::Patch => reqwest::Method::PATCH,
        }
    }
}

/// Telegram chat ids are numbers, which people write unquoted; `@channel` names are text.
fn text_or_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrInteger {
        Text(String),
        Integer(i64),
    }
    Ok(match TextOrInteger::deserialize(deserializer)? {
        TextOrInteger::Text(text) => text,
        TextOrInteger::Integer(number) => number.to_string(),
    })
}

impl NotifierSpec {
    /// `email`, `slack`, …: the `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifierSpec::Email(_) => "email",
            NotifierSpec::Slack(_) => "slack",
            NotifierSpec::Discord(_) => "discord",
            NotifierSpec::Telegram(_) => "telegram",
            NotifierSpec::Teams(_) => "teams",
            NotifierSpec::Mattermost(_) => "mattermost",
            NotifierSpec::Ntfy(_) => "ntfy",
            NotifierSpec::Webhook(_) => "webhook",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn json_as_people_write_it_gets_defaults() {
        let spec: NotifierSpec = serde_json::from_value(json!({
            "kind": "telegram", "bot_token": "1:abc", "chat_id": -1001234567890_i64
        }))
        .unwrap();
        let NotifierSpec::Telegram(telegram) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(telegram.chat_id, "-1001234567890");
        assert_eq!(telegram.api_base, "https://api.telegram.org");

        let spec: NotifierSpec = serde_json::from_value(json!({
            "kind": "email", "host": "smtp.example.com",
            "from": "a@example.com", "to": ["b@example.com"]
        }))
        .unwrap();
        let NotifierSpec::Email(email) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(email.security, EmailSecurity::Starttls);
        assert_eq!(email.port(), 587);
        assert!(!email.accept_invalid_certs);
        spec.validate().unwrap();

        let spec: NotifierSpec =
            serde_json::from_value(json!({"kind": "ntfy", "topic": "alerts"})).unwrap();
        let NotifierSpec::Ntfy(ntfy) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(ntfy.server, "https://ntfy.sh");

        let spec: NotifierSpec = serde_json::from_value(json!({
            "kind": "webhook", "url": "https://x.example.com/", "method": "patch"
        }))
        .unwrap();
        let NotifierSpec::Webhook(webhook) = &spec else {
            panic!("{spec:?}")
        };
        assert_eq!(webhook.method, WebhookMethod::Patch);
        assert_eq!(
            serde_json::to_value(&spec).unwrap()["method"],
            json!("PATCH")
        );

        // A misspelt field is refused, not ignored.
        let err = serde_json::from_value::<NotifierSpec>(json!({
            "kind": "slack", "webhook_url": "https://hooks.slack.com/x", "chanel": "ops"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("chanel"), "{err}");
    }
}
