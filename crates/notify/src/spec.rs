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

/// The fields of each kind that say where its secrets are sent (a secret URL is one of them
/// itself): changing one must come with the secrets again, or a workspace admin could send the
/// stored ones to a server of their own.
fn destination_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "email" => &[
            "host",
            "port",
            "security",
            "ca_certificate_pem",
            "accept_invalid_certs",
        ],
        "slack" | "discord" | "teams" | "mattermost" => &["webhook_url"],
        "telegram" => &["api_base", "chat_id"],
        "ntfy" => &["server"],
        "webhook" => &["url"],
        _ => &[],
    }
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

    /// The fields saying where secrets go that differ between `self` and `changed` (all of them
    /// when the kind differs).
    pub fn moved_fields(&self, changed: &NotifierSpec) -> Vec<&'static str> {
        let fields = destination_fields(self.kind());
        if self.kind() != changed.kind() {
            return fields.to_vec();
        }
        let (old, new) = (
            serde_json::to_value(self).unwrap_or_default(),
            serde_json::to_value(changed).unwrap_or_default(),
        );
        fields
            .iter()
            .copied()
            .filter(|field| old.get(field) != new.get(field))
            .collect()
    }

    /// Checks the settings before they are stored; the error says which field is wrong and
    /// what it should look like (without repeating secret values).
    pub fn validate(&self) -> Result<(), NotifyError> {
        match self {
            NotifierSpec::Email(spec) => crate::email::validate(spec),
            NotifierSpec::Slack(spec) => check_url(
                "webhook_url",
                spec.webhook_url.expose(),
                &paste_hint("Slack"),
            )
            .map(drop),
            NotifierSpec::Discord(spec) => check_url(
                "webhook_url",
                spec.webhook_url.expose(),
                &paste_hint("Discord"),
            )
            .map(drop),
            NotifierSpec::Teams(spec) => check_url(
                "webhook_url",
                spec.webhook_url.expose(),
                &paste_hint("the Teams Workflows (or incoming webhook)"),
            )
            .map(drop),
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
pub(crate) fn check_url(field: &str, value: &str, hint: &str) -> Result<url::Url, NotifyError> {
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

/// The hint for a webhook URL copied from a service's settings.
pub(crate) fn paste_hint(service: &str) -> String {
    format!("paste the whole webhook URL {service} gives you, starting with https://")
}

pub(crate) const TELEGRAM_API_BASE_HINT: &str =
    "leave api_base out for https://api.telegram.org, or give your own Bot API server's URL";
pub(crate) const NTFY_SERVER_HINT: &str = "leave server out for https://ntfy.sh, or give your own server's URL, e.g. https://ntfy.example.com";
pub(crate) const WEBHOOK_URL_HINT: &str = "give the receiver's whole URL, starting with https://";

fn check_not_blank(field: &str, value: &Option<String>, example: &str) -> Result<(), NotifyError> {
    match value {
        Some(text) if text.trim().is_empty() => Err(NotifyError::Invalid(format!(
            "{field} is empty: leave it out or set it, e.g. {example}"
        ))),
        _ => Ok(()),
    }
}

fn validate_mattermost(spec: &MattermostSpec) -> Result<(), NotifyError> {
    check_url(
        "webhook_url",
        spec.webhook_url.expose(),
        &paste_hint("Mattermost"),
    )?;
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
    check_url("api_base", &spec.api_base, TELEGRAM_API_BASE_HINT).map(drop)
}

fn validate_ntfy(spec: &NtfySpec) -> Result<(), NotifyError> {
    check_url("server", &spec.server, NTFY_SERVER_HINT).map(drop)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    /// Every secret value used in `every_kind`.
    const SECRETS: &[&str] = &[
        "mail-pa55word",
        "https://hooks.slack.com/services/T0/B0/slack-secret",
        "https://discord.com/api/webhooks/1/discord-secret",
        "123456:tg-secret-token",
        "https://example.webhook.office.com/teams-secret",
        "https://mm.example.com/hooks/mm-secret",
        "topic-secret",
        "tk_ntfy-secret",
        "ntfy-pa55word",
        "https://receiver.example.com/hook?key=webhook-secret",
        "Bearer header-secret",
    ];

    fn every_kind() -> Vec<NotifierSpec> {
        vec![
            NotifierSpec::Email(EmailSpec {
                host: "smtp.example.com".to_owned(),
                port: Some(2525),
                security: EmailSecurity::Tls,
                username: Some("alice".to_owned()),
                password: Some(Secret::new("mail-pa55word")),
                from: "statehouse@example.com".to_owned(),
                to: vec!["ops@example.com".to_owned()],
                ca_certificate_pem: Some("-----BEGIN CERTIFICATE-----".to_owned()),
                accept_invalid_certs: true,
            }),
            NotifierSpec::Slack(SlackSpec {
                webhook_url: Secret::new(SECRETS[1]),
            }),
            NotifierSpec::Discord(DiscordSpec {
                webhook_url: Secret::new(SECRETS[2]),
            }),
            NotifierSpec::Telegram(TelegramSpec {
                bot_token: Secret::new(SECRETS[3]),
                chat_id: "-100200".to_owned(),
                message_thread_id: Some(7),
                api_base: DEFAULT_TELEGRAM_API_BASE.to_owned(),
            }),
            NotifierSpec::Teams(TeamsSpec {
                webhook_url: Secret::new(SECRETS[4]),
            }),
            NotifierSpec::Mattermost(MattermostSpec {
                webhook_url: Secret::new(SECRETS[5]),
                channel: Some("ops".to_owned()),
                username: Some("statehouse".to_owned()),
            }),
            NotifierSpec::Ntfy(NtfySpec {
                server: "https://ntfy.example.com".to_owned(),
                topic: Secret::new("topic-secret"),
                access_token: Some(Secret::new("tk_ntfy-secret")),
                username: None,
                password: None,
                priority: Some(NtfyPriority::High),
                tags: vec!["floppy_disk".to_owned()],
            }),
            NotifierSpec::Ntfy(NtfySpec {
                server: DEFAULT_NTFY_SERVER.to_owned(),
                topic: Secret::new("topic-secret"),
                access_token: None,
                username: Some("bob".to_owned()),
                password: Some(Secret::new("ntfy-pa55word")),
                priority: None,
                tags: Vec::new(),
            }),
            NotifierSpec::Webhook(WebhookSpec {
                url: Secret::new(SECRETS[9]),
                method: WebhookMethod::Put,
                headers: BTreeMap::from([(
                    "Authorization".to_owned(),
                    Secret::new("Bearer header-secret"),
                )]),
                body_template: Some("{\"t\": \"{{title}}\"}".to_owned()),
            }),
        ]
    }

    fn assert_no_secret(text: &str) {
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
    }

    #[test]
    fn split_and_join_round_trip_for_every_kind() {
        for spec in every_kind() {
            let (public, secret) = spec.split_secrets();
            assert_eq!(public["kind"], spec.kind());
            assert_no_secret(&public.to_string());
            let secret_fields = secret_fields(spec.kind()).unwrap();
            let secret_map = secret.as_object().unwrap();
            assert!(!secret_map.is_empty(), "{} has secrets", spec.kind());
            assert!(
                secret_map
                    .keys()
                    .all(|k| secret_fields.contains(&k.as_str()))
            );
            assert_eq!(NotifierSpec::from_parts(&public, &secret).unwrap(), spec);
            // Storage round trip: both parts as text and back.
            let public: Value = serde_json::from_str(&public.to_string()).unwrap();
            let secret: Value = serde_json::from_str(&secret.to_string()).unwrap();
            assert_eq!(NotifierSpec::from_parts(&public, &secret).unwrap(), spec);
        }
    }

    #[test]
    fn from_parts_refuses_mixed_up_parts_without_repeating_secrets() {
        let spec = NotifierSpec::Slack(SlackSpec {
            webhook_url: Secret::new(SECRETS[1]),
        });
        let (public, secret) = spec.split_secrets();

        let missing = NotifierSpec::from_parts(&public, &Value::Null).unwrap_err();
        assert!(missing.to_string().contains("webhook_url"), "{missing}");

        let mut smuggled = secret.clone();
        smuggled["channel"] = json!("x");
        let err = NotifierSpec::from_parts(&public, &smuggled).unwrap_err();
        assert!(err.to_string().contains("\"channel\""), "{err}");

        let err = NotifierSpec::from_parts(&secret, &secret).unwrap_err();
        assert!(err.to_string().contains("unknown kind"), "{err}");

        let mut both = public.clone();
        both["webhook_url"] = json!("https://elsewhere.example.com/");
        let err = NotifierSpec::from_parts(&both, &secret).unwrap_err();
        assert!(err.to_string().contains("both"), "{err}");

        // A secret of the wrong type: serde's message would quote it.
        let telegram = json!({"kind": "telegram", "chat_id": "@x"});
        let err =
            NotifierSpec::from_parts(&telegram, &json!({"bot_token": ["123456:tg-secret-token"]}))
                .unwrap_err();
        assert!(matches!(err, NotifyError::Invalid(_)));
        assert_no_secret(&err.to_string());
    }

    #[test]
    fn redacted_view_and_debug_show_no_secret() {
        for spec in every_kind() {
            let redacted = spec.redacted();
            assert_no_secret(&redacted.to_string());
            assert_no_secret(&format!("{spec:?}"));
            assert_eq!(redacted["kind"], spec.kind());
        }
        let kinds = every_kind();
        assert_eq!(
            kinds[1].redacted(),
            json!({"kind": "slack", "webhook_url": "https://hooks.slack.com/…"})
        );
        assert_eq!(kinds[3].redacted()["bot_token"], "123456:********");
        assert_eq!(kinds[3].redacted()["chat_id"], "-100200");
        assert_eq!(kinds[0].redacted()["password"], "********");
        assert_eq!(kinds[0].redacted()["username"], "alice");
        assert_eq!(
            kinds[8].redacted()["headers"],
            json!({"Authorization": "********"})
        );
        assert_eq!(kinds[8].redacted()["url"], "https://receiver.example.com/…");
        assert_eq!(kinds[6].redacted()["topic"], "********");
    }

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

    fn invalid(spec: NotifierSpec) -> String {
        match spec.validate() {
            Err(NotifyError::Invalid(message)) => {
                assert_no_secret(&message);
                message
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn email(edit: impl FnOnce(&mut EmailSpec)) -> NotifierSpec {
        let mut spec = EmailSpec {
            host: "smtp.example.com".to_owned(),
            port: None,
            security: EmailSecurity::Starttls,
            username: None,
            password: None,
            from: "statehouse@example.com".to_owned(),
            to: vec!["ops@example.com".to_owned()],
            ca_certificate_pem: None,
            accept_invalid_certs: false,
        };
        edit(&mut spec);
        NotifierSpec::Email(spec)
    }

    #[test]
    fn moved_fields_are_those_saying_where_secrets_go() {
        let kinds = every_kind();
        for spec in &kinds {
            assert!(spec.moved_fields(spec).is_empty(), "{}", spec.kind());
        }
        let NotifierSpec::Email(email) = &kinds[0] else {
            panic!()
        };
        let elsewhere = NotifierSpec::Email(EmailSpec {
            host: "mail.attacker.example".to_owned(),
            to: vec!["other@example.com".to_owned()],
            ..email.clone()
        });
        assert_eq!(kinds[0].moved_fields(&elsewhere), vec!["host"]);
        let NotifierSpec::Telegram(telegram) = &kinds[3] else {
            panic!()
        };
        let other_chat = NotifierSpec::Telegram(TelegramSpec {
            chat_id: "@elsewhere".to_owned(),
            ..telegram.clone()
        });
        assert_eq!(kinds[3].moved_fields(&other_chat), vec!["chat_id"]);
        assert_eq!(kinds[8].moved_fields(&kinds[1]), vec!["url"]);
    }

    #[test]
    fn every_kind_of_the_sample_validates() {
        for spec in every_kind() {
            if let NotifierSpec::Email(_) = spec {
                continue; // its CA is not a certificate; checked below
            }
            spec.validate().unwrap();
        }
    }

    #[test]
    fn email_validation_says_what_to_fix() {
        assert!(
            invalid(email(|s| s.host = "smtp://mail.example.com".to_owned()))
                .contains("no smtp://")
        );
        assert!(invalid(email(|s| s.port = Some(0))).contains("leave port out"));
        assert!(
            invalid(email(|s| s.from = "not an address".to_owned()))
                .contains("from \"not an address\"")
        );
        assert!(invalid(email(|s| s.to.clear())).contains("at least one recipient"));
        assert!(invalid(email(|s| s.to.push("x@".to_owned()))).contains("to \"x@\""));
        assert!(invalid(email(|s| s.username = Some("alice".to_owned()))).contains("go together"));
        let clear_text = invalid(email(|s| {
            s.security = EmailSecurity::None;
            s.username = Some("alice".to_owned());
            s.password = Some(Secret::new("mail-pa55word"));
        }));
        assert!(clear_text.contains("unencrypted"), "{clear_text}");
        assert!(
            invalid(email(|s| s.ca_certificate_pem = Some("hello".to_owned())))
                .contains("no certificate")
        );
        email(|s| {
            s.security = EmailSecurity::None;
        })
        .validate()
        .unwrap();
    }

    #[test]
    fn webhook_url_validation_never_repeats_the_url() {
        let message = invalid(NotifierSpec::Slack(SlackSpec {
            webhook_url: Secret::new("hooks.slack.com/services/T0/B0/slack-secret"),
        }));
        assert!(
            message.contains("webhook_url is not a valid URL"),
            "{message}"
        );
        assert!(!message.contains("slack-secret"), "{message}");
        let message = invalid(NotifierSpec::Discord(DiscordSpec {
            webhook_url: Secret::new("ftp://discord.com/discord-secret"),
        }));
        assert!(message.contains("https://"), "{message}");
        assert!(!message.contains("discord-secret"), "{message}");
        assert!(
            invalid(NotifierSpec::Teams(TeamsSpec {
                webhook_url: Secret::new(" "),
            }))
            .contains("webhook_url is empty")
        );
    }

    #[test]
    fn telegram_validation() {
        let telegram = |edit: fn(&mut TelegramSpec)| {
            let mut spec = TelegramSpec {
                bot_token: Secret::new("123456:AAH-x_y"),
                chat_id: "-100200".to_owned(),
                message_thread_id: None,
                api_base: DEFAULT_TELEGRAM_API_BASE.to_owned(),
            };
            edit(&mut spec);
            NotifierSpec::Telegram(spec)
        };
        telegram(|_| {}).validate().unwrap();
        telegram(|s| s.chat_id = "@alerts_channel".to_owned())
            .validate()
            .unwrap();
        let message = invalid(telegram(|s| s.bot_token = Secret::new("tg-secret-token")));
        assert!(message.contains("@BotFather"), "{message}");
        assert!(invalid(telegram(|s| s.chat_id = "alerts".to_owned())).contains("@username"));
        assert!(invalid(telegram(|s| s.message_thread_id = Some(0))).contains("positive"));
        assert!(
            invalid(telegram(|s| s.api_base = "api.telegram.org".to_owned())).contains("api_base")
        );
    }

    #[test]
    fn ntfy_validation() {
        let ntfy = |edit: fn(&mut NtfySpec)| {
            let mut spec = NtfySpec {
                server: DEFAULT_NTFY_SERVER.to_owned(),
                topic: Secret::new("alerts"),
                access_token: None,
                username: None,
                password: None,
                priority: None,
                tags: Vec::new(),
            };
            edit(&mut spec);
            NotifierSpec::Ntfy(spec)
        };
        ntfy(|_| {}).validate().unwrap();
        assert!(invalid(ntfy(|s| s.topic = Secret::new("a/b"))).contains("topic"));
        assert!(
            invalid(ntfy(|s| {
                s.access_token = Some(Secret::new("tk_ntfy-secret"));
                s.username = Some("bob".to_owned());
                s.password = Some(Secret::new("ntfy-pa55word"));
            }))
            .contains("not both")
        );
        assert!(invalid(ntfy(|s| s.username = Some("bob".to_owned()))).contains("go together"));
        assert!(invalid(ntfy(|s| s.tags = vec!["a,b".to_owned()])).contains("commas"));
    }

    #[test]
    fn webhook_validation() {
        let webhook = |template: Option<&str>, headers: &[(&str, &str)]| {
            NotifierSpec::Webhook(WebhookSpec {
                url: Secret::new(SECRETS[9]),
                method: WebhookMethod::Post,
                headers: headers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Secret::new(*v)))
                    .collect(),
                body_template: template.map(str::to_owned),
            })
        };
        webhook(None, &[]).validate().unwrap();
        webhook(Some("{\"text\": \"{{title}} at {{ at }}\"}"), &[])
            .validate()
            .unwrap();
        webhook(Some("{{title}}"), &[]).validate().unwrap();
        let unknown = invalid(webhook(Some("{\"t\": \"{{titel}}\"}"), &[]));
        assert!(
            unknown.contains("{{titel}}") && unknown.contains("{{title}}"),
            "{unknown}"
        );
        let outside = invalid(webhook(Some("{\"t\": {{title}}}"), &[]));
        assert!(outside.contains("not valid JSON"), "{outside}");
        // Not JSON by its Content-Type: the same template is fine.
        webhook(
            Some("{\"t\": {{title}}}"),
            &[("Content-Type", "text/plain")],
        )
        .validate()
        .unwrap();
        assert!(invalid(webhook(None, &[("Bad Header", "x")])).contains("\"Bad Header\""));
        let value = invalid(webhook(None, &[("X-Key", "Bearer header-secret\n")]));
        assert!(value.contains("\"X-Key\""), "{value}");
        assert!(invalid(webhook(Some("  "), &[])).contains("leave it out"));
    }
}
