//! Checking a notifier's settings before they are stored: the error says which field is wrong and
//! what it should look like, never repeating a secret.

use super::{MattermostSpec, NotifierSpec, NtfySpec, TelegramSpec};
use crate::error::NotifyError;

impl NotifierSpec {
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

    use super::*;
    use crate::secret::Secret;
    use crate::spec::samples::{SECRETS, assert_no_secret, every_kind};
    use crate::spec::{
        DEFAULT_NTFY_SERVER, DEFAULT_TELEGRAM_API_BASE, DiscordSpec, EmailSecurity, EmailSpec,
        SlackSpec, TeamsSpec, WebhookMethod, WebhookSpec,
    };

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
