//! Every kind of notifier and its settings, as the forms show them (the settings are those of
//! `statehouse_notify::NotifierSpec`; the secrets, those it seals).

use super::config_form::{Input, Kind, Setting};

const fn setting(
    name: &'static str,
    label: &'static str,
    input: Input,
    required: bool,
    hint: &'static str,
) -> Setting {
    Setting {
        name,
        label,
        input,
        required,
        hint,
    }
}

/// The incoming-webhook URL of a chat service (a secret: it is the credential).
const fn webhook_url(hint: &'static str) -> Setting {
    setting("webhook_url", "Webhook URL", Input::Secret, true, hint)
}

pub const NOTIFIER_KINDS: &[Kind] = &[
    Kind {
        name: "email",
        label: "Email (SMTP)",
        about: "Mail through an SMTP server: a relay or a submission port.",
        settings: &[
            setting(
                "host",
                "SMTP server",
                Input::Text,
                true,
                "Its host name, e.g. smtp.example.com.",
            ),
            setting(
                "security",
                "Connection security",
                Input::Choice(&[
                    ("", "STARTTLS, required (default; port 587)"),
                    ("starttls", "STARTTLS, required"),
                    ("tls", "TLS from the first byte (SMTPS; port 465)"),
                    (
                        "none",
                        "none: plain text (a relay on the same host or network)",
                    ),
                ]),
                false,
                "",
            ),
            setting(
                "port",
                "Port",
                Input::Number,
                false,
                "Empty: 587, 465 or 25, after the security.",
            ),
            setting(
                "username",
                "User name",
                Input::Text,
                false,
                "Empty for a relay that accepts mail without a login.",
            ),
            setting("password", "Password", Input::Secret, false, ""),
            setting(
                "from",
                "From",
                Input::Text,
                true,
                "statehouse@example.com or Statehouse <statehouse@example.com>",
            ),
            setting(
                "to",
                "To",
                Input::List,
                true,
                "One or more addresses, separated by commas.",
            ),
            setting(
                "ca_certificate_pem",
                "Extra CA certificate (PEM)",
                Input::Block,
                false,
                "For a relay whose certificate a private CA signed.",
            ),
            setting(
                "accept_invalid_certs",
                "Skip certificate checks",
                Input::Flag,
                false,
                "Anyone between statehouse and the server can then read the mail and the \
                 password: prefer an extra CA certificate.",
            ),
        ],
    },
    Kind {
        name: "slack",
        label: "Slack",
        about: "A Slack incoming webhook.",
        settings: &[webhook_url("https://hooks.slack.com/services/…")],
    },
    Kind {
        name: "discord",
        label: "Discord",
        about: "A Discord channel webhook.",
        settings: &[webhook_url("https://discord.com/api/webhooks/…")],
    },
    Kind {
        name: "telegram",
        label: "Telegram",
        about: "A Telegram bot posting to a chat, channel or forum topic.",
        settings: &[
            setting(
                "bot_token",
                "Bot token",
                Input::Secret,
                true,
                "123456789:AA…, from @BotFather.",
            ),
            setting(
                "chat_id",
                "Chat",
                Input::Text,
                true,
                "A numeric chat id (-1001234567890) or a public channel's @username.",
            ),
            setting(
                "message_thread_id",
                "Forum topic id",
                Input::Number,
                false,
                "Only for a topic of a forum supergroup.",
            ),
            setting(
                "api_base",
                "Bot API server",
                Input::Url,
                false,
                "Empty: https://api.telegram.org.",
            ),
        ],
    },
    Kind {
        name: "teams",
        label: "Microsoft Teams",
        about: "A Teams channel: a Workflows \"post to a channel when a webhook request is \
                received\" flow, or an incoming webhook.",
        settings: &[webhook_url("The flow's or webhook's whole URL.")],
    },
    Kind {
        name: "mattermost",
        label: "Mattermost",
        about: "A Mattermost incoming webhook.",
        settings: &[
            webhook_url("https://mattermost.example.com/hooks/…"),
            setting(
                "channel",
                "Channel",
                Input::Text,
                false,
                "Overrides the webhook's channel (if it allows it), e.g. town-square.",
            ),
            setting(
                "username",
                "Poster's name",
                Input::Text,
                false,
                "If the server allows overriding it.",
            ),
        ],
    },
    Kind {
        name: "ntfy",
        label: "ntfy",
        about: "An ntfy topic, on ntfy.sh or a server of your own.",
        settings: &[
            setting(
                "server",
                "Server",
                Input::Url,
                false,
                "Empty: https://ntfy.sh.",
            ),
            setting(
                "topic",
                "Topic",
                Input::Secret,
                true,
                "1 to 64 letters, digits, - or _; anyone who knows it reads it without access \
                 control, so pick one that is hard to guess.",
            ),
            setting(
                "access_token",
                "Access token",
                Input::Secret,
                false,
                "Or a user name and password, not both.",
            ),
            setting("username", "User name", Input::Text, false, ""),
            setting("password", "Password", Input::Secret, false, ""),
            setting(
                "priority",
                "Priority",
                Input::Choice(&[
                    ("", "after the severity (default)"),
                    ("min", "min"),
                    ("low", "low"),
                    ("default", "default"),
                    ("high", "high"),
                    ("max", "max"),
                ]),
                false,
                "",
            ),
            setting(
                "tags",
                "Tags",
                Input::List,
                false,
                "Separated by commas; emoji short codes such as floppy_disk show as emoji.",
            ),
        ],
    },
    Kind {
        name: "webhook",
        label: "Webhook (any HTTP endpoint)",
        about: "Any HTTP endpoint: the notification as JSON, or a body of your own.",
        settings: &[
            setting(
                "url",
                "URL",
                Input::Secret,
                true,
                "The receiver's whole URL, starting with https:// (kept secret: such URLs often \
                 carry a token).",
            ),
            setting(
                "method",
                "Method",
                Input::Choice(&[("", "POST (default)"), ("PUT", "PUT"), ("PATCH", "PATCH")]),
                false,
                "",
            ),
            setting(
                "headers",
                "Headers",
                Input::Headers,
                false,
                "One Name: value per line, sent with every request (kept secret: they usually \
                 hold credentials).",
            ),
            setting(
                "body_template",
                "Body template",
                Input::Block,
                false,
                "Empty: the notification as JSON. Placeholders such as {{title}} and \
                 {{message}} are filled in.",
            ),
        ],
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::Value;
    use statehouse_notify::NotifierSpec;

    use super::*;
    use crate::ui::config_form::{Posted, settings_of};

    /// A form of each kind with every field filled in parses as the service's `NotifierSpec`,
    /// and the table names every field the spec has.
    #[test]
    fn every_kind_and_field_is_the_specs() {
        for kind in NOTIFIER_KINDS {
            let mut pairs = Vec::new();
            for s in kind.settings {
                let value = match (s.name, s.input) {
                    (_, Input::Number) => "2525",
                    (_, Input::Flag) => "on",
                    (_, Input::Choice(options)) => options[1].0,
                    (_, Input::Headers) => "Authorization: Bearer x",
                    (_, Input::Url) => "https://receiver.example",
                    ("url" | "webhook_url", _) => "https://receiver.example/hook",
                    _ => "value",
                };
                pairs.push((format!("s.{}", s.name), value.to_owned()));
            }
            let text = serde_urlencoded::to_string(&pairs).unwrap();
            let posted: Posted = serde_urlencoded::from_str(&text).unwrap();
            let settings = settings_of(kind, &posted, &[]).unwrap();
            let spec: NotifierSpec = serde_json::from_value(settings.clone())
                .unwrap_or_else(|e| panic!("{}: {e}", kind.name));
            assert_eq!(spec.kind(), kind.name);
            let Value::Object(full) = serde_json::to_value(&spec).unwrap() else {
                panic!()
            };
            for field in full.keys().filter(|k| *k != "kind") {
                assert!(
                    kind.settings.iter().any(|s| s.name == field),
                    "{}: the form lacks {field}",
                    kind.name
                );
            }
        }
    }
}
