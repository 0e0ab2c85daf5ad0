//! Test samples: a notifier of every kind with secrets in every secret field, and a check that
//! none of those secrets shows up in a text.

use std::collections::BTreeMap;

use super::{
    DEFAULT_NTFY_SERVER, DEFAULT_TELEGRAM_API_BASE, DiscordSpec, EmailSecurity, EmailSpec,
    MattermostSpec, NotifierSpec, NtfyPriority, NtfySpec, SlackSpec, TeamsSpec, TelegramSpec,
    WebhookMethod, WebhookSpec,
};
use crate::secret::Secret;

/// Every secret value used in `every_kind`.
pub(super) const SECRETS: &[&str] = &[
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

pub(super) fn every_kind() -> Vec<NotifierSpec> {
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

pub(super) fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} leaked into {text}");
    }
}
