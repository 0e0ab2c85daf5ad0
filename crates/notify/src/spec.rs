//! What a notifier is: its channel and settings, how they are checked, and how their secrets are
//! kept apart from the rest.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::NotifyError;
use crate::secret::{REDACTED, Secret, scrub, url_hint};

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

/// The top-level fields of each kind that hold secrets.
fn secret_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "email" => &["password"],
        "slack" | "discord" | "teams" | "mattermost" => &["webhook_url"],
        "telegram" => &["bot_token"],
        "ntfy" => &["topic", "access_token", "password"],
        "webhook" => &["url", "headers"],
        _ => return None,
    })
}

const KINDS: &str = "email, slack, discord, telegram, teams, mattermost, ntfy, webhook";

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

    /// Checks the settings before they are stored; the error says which field is wrong and
    /// what it should look like (without repeating secret values).
    pub fn validate(&self) -> Result<(), NotifyError> {
        match self {
            NotifierSpec::Email(spec) => crate::email::validate(spec),
            NotifierSpec::Slack(spec) => {
                check_url("webhook_url", spec.webhook_url.expose(), "Slack").map(drop)
            }
            NotifierSpec::Discord(spec) => {
                check_url("webhook_url", spec.webhook_url.expose(), "Discord").map(drop)
            }
            NotifierSpec::Teams(spec) => {
                check_url("webhook_url", spec.webhook_url.expose(), "Teams").map(drop)
            }
            NotifierSpec::Mattermost(spec) => validate_mattermost(spec),
            NotifierSpec::Telegram(spec) => validate_telegram(spec),
            NotifierSpec::Ntfy(spec) => validate_ntfy(spec),
            NotifierSpec::Webhook(spec) => crate::webhook::validate(spec),
        }
    }

    /// Splits the settings into what may be stored and shown as is (`kind` included) and the
    /// secret fields only, to be stored encrypted. [`NotifierSpec::from_parts`] joins them.
    pub fn split_secrets(&self) -> (Value, Value) {
        let mut public = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // Cannot happen: every field serializes, and every map key is a string.
            _ => Map::new(),
        };
        let mut secret = Map::new();
        for field in secret_fields(self.kind()).unwrap_or_default() {
            if let Some(value) = public.remove(*field) {
                secret.insert((*field).to_owned(), value);
            }
        }
        (Value::Object(public), Value::Object(secret))
    }

    /// Joins what [`NotifierSpec::split_secrets`] split. Does not [`validate`](Self::validate):
    /// stored settings stay loadable when the rules get stricter.
    pub fn from_parts(public: &Value, secret: &Value) -> Result<NotifierSpec, NotifyError> {
        let unreadable = |why: String| {
            NotifyError::Invalid(format!("stored notifier settings are unreadable: {why}"))
        };
        let Value::Object(public) = public else {
            return Err(unreadable(
                "the public part is not a JSON object".to_owned(),
            ));
        };
        let empty = Map::new();
        let secret = match secret {
            Value::Object(secret) => secret,
            Value::Null => &empty,
            _ => {
                return Err(unreadable(
                    "the secret part is not a JSON object".to_owned(),
                ));
            }
        };
        let kind = public.get("kind").and_then(Value::as_str).unwrap_or("");
        let Some(allowed) = secret_fields(kind) else {
            return Err(unreadable(format!(
                "unknown kind {kind:?}; expected one of {KINDS}"
            )));
        };
        let mut joined = public.clone();
        for (field, value) in secret {
            if !allowed.contains(&field.as_str()) {
                return Err(unreadable(format!(
                    "the secret part has a field {field:?}, which is not a secret of {kind}"
                )));
            }
            if joined.insert(field.clone(), value.clone()).is_some() {
                return Err(unreadable(format!(
                    "field {field:?} is in both the public and the secret part"
                )));
            }
        }
        let secrets = secret_strings(secret);
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        serde_json::from_value(Value::Object(joined))
            .map_err(|e| unreadable(scrub(&e.to_string(), &secrets)))
    }

    /// The settings as JSON safe to show (e.g. from an API): secrets replaced by `********`,
    /// secret URLs by their scheme and host (`https://hooks.slack.com/…`), header values hidden
    /// but names kept, a Telegram token by its bot id (`123456:********`).
    pub fn redacted(&self) -> Value {
        let (mut public, secret) = self.split_secrets();
        let (Value::Object(public_map), Value::Object(secret)) = (&mut public, secret) else {
            return public;
        };
        for (field, value) in secret {
            let shown = match (field.as_str(), value) {
                ("webhook_url" | "url", Value::String(url)) => Value::String(url_hint(&url)),
                ("bot_token", Value::String(token)) => Value::String(match token.split_once(':') {
                    Some((bot_id, _)) => format!("{bot_id}:{REDACTED}"),
                    None => REDACTED.to_owned(),
                }),
                ("headers", Value::Object(headers)) => Value::Object(
                    headers
                        .into_iter()
                        .map(|(name, _)| (name, Value::String(REDACTED.to_owned())))
                        .collect(),
                ),
                _ => Value::String(REDACTED.to_owned()),
            };
            public_map.insert(field, shown);
        }
        public
    }
}

fn secret_strings(secret: &Map<String, Value>) -> Vec<String> {
    let mut strings = Vec::new();
    for value in secret.values() {
        match value {
            Value::String(text) => strings.push(text.clone()),
            Value::Object(map) => strings.extend(secret_strings(map)),
            _ => {}
        }
    }
    strings
}

/// Checks that `value` is an absolute http(s) URL. The message never repeats the URL: it may be
/// a secret.
pub(crate) fn check_url(field: &str, value: &str, service: &str) -> Result<url::Url, NotifyError> {
    let hint = format!("paste the whole URL {service} gives you, starting with https://");
    if value.trim().is_empty() {
        return Err(NotifyError::Invalid(format!("{field} is empty: {hint}")));
    }
    let url = url::Url::parse(value.trim())
        .map_err(|e| NotifyError::Invalid(format!("{field} is not a valid URL ({e}): {hint}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(NotifyError::Invalid(format!(
            "{field} must be an https:// (or http://) URL, not {}: {hint}",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(NotifyError::Invalid(format!(
            "{field} has no host name: {hint}"
        )));
    }
    Ok(url)
}

fn check_not_blank(field: &str, value: &Option<String>, example: &str) -> Result<(), NotifyError> {
    match value {
        Some(text) if text.trim().is_empty() => Err(NotifyError::Invalid(format!(
            "{field} is empty: leave it out or set it, e.g. {example}"
        ))),
        _ => Ok(()),
    }
}

fn validate_mattermost(spec: &MattermostSpec) -> Result<(), NotifyError> {
    check_url("webhook_url", spec.webhook_url.expose(), "Mattermost")?;
    check_not_blank("channel", &spec.channel, "town-square")?;
    check_not_blank("username", &spec.username, "statehouse")
}

fn validate_telegram(spec: &TelegramSpec) -> Result<(), NotifyError> {
    let token_ok = spec
        .bot_token
        .expose()
        .split_once(':')
        .is_some_and(|(bot_id, key)| {
            !bot_id.is_empty()
                && bot_id.bytes().all(|b| b.is_ascii_digit())
                && !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !token_ok {
        return Err(NotifyError::Invalid(
            "bot_token is not a Telegram bot token: use the token @BotFather gave you, \
             shaped like 123456789:AAH… (digits, a colon, then letters, digits, - and _)"
                .to_owned(),
        ));
    }
    let chat_id = spec.chat_id.trim();
    let chat_id_ok = chat_id.parse::<i64>().is_ok()
        || chat_id.strip_prefix('@').is_some_and(|name| {
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if !chat_id_ok {
        return Err(NotifyError::Invalid(format!(
            "chat_id {:?} is neither a numeric chat id (e.g. -1001234567890) nor a public \
             channel's @username",
            spec.chat_id
        )));
    }
    if spec.message_thread_id.is_some_and(|id| id <= 0) {
        return Err(NotifyError::Invalid(
            "message_thread_id must be a positive topic id (the number after the group's id in \
             a topic link), or left out"
                .to_owned(),
        ));
    }
    check_url("api_base", &spec.api_base, "your Telegram Bot API server").map(drop)
}

fn validate_ntfy(spec: &NtfySpec) -> Result<(), NotifyError> {
    check_url("server", &spec.server, "your ntfy server").map(drop)?;
    let topic = spec.topic.expose();
    if topic.is_empty()
        || topic.len() > 64
        || !topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(NotifyError::Invalid(
            "topic must be 1 to 64 letters, digits, - or _ (pick one that is hard to guess)"
                .to_owned(),
        ));
    }
    if spec.access_token.is_some() && (spec.username.is_some() || spec.password.is_some()) {
        return Err(NotifyError::Invalid(
            "set either access_token or username and password, not both".to_owned(),
        ));
    }
    if spec.username.is_some() != spec.password.is_some() {
        return Err(NotifyError::Invalid(
            "username and password go together: set both, or neither".to_owned(),
        ));
    }
    if let Some(username) = &spec.username
        && (username.is_empty() || username.contains(':'))
    {
        return Err(NotifyError::Invalid(
            "username must be non-empty and may not contain ':'".to_owned(),
        ));
    }
    for tag in &spec.tags {
        if tag.trim().is_empty() || tag.contains(',') {
            return Err(NotifyError::Invalid(format!(
                "tag {tag:?} is not valid: each tag is one non-empty word without commas"
            )));
        }
    }
    Ok(())
}
