//! Every HTTP notifier against a local receiver: method, path, headers and payload per channel,
//! and the errors when the receiver refuses, is unreachable or does not answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use statehouse_notify::{
    DiscordSpec, MattermostSpec, NotifierSpec, NotifyError, NtfyPriority, NtfySpec, Secret,
    Severity, SlackSpec, TeamsSpec, TelegramSpec, WebhookMethod, WebhookSpec, send_with_timeout,
    test_notification,
};
use statehouse_outbound::unreachable_message;
use support::{AT, Receiver, SHORT, backup_failed, closed_port, http_client};

async fn deliver(spec: &NotifierSpec) -> Result<(), NotifyError> {
    spec.validate().unwrap();
    send_with_timeout(spec, &backup_failed(), &http_client(), SHORT).await
}

fn slack(url: String) -> NotifierSpec {
    NotifierSpec::Slack(SlackSpec {
        webhook_url: Secret::new(url),
    })
}

#[tokio::test]
async fn slack_gets_blocks_with_fields_and_a_fallback_text() {
    let receiver = Receiver::answering(200, "ok").await;
    deliver(&slack(receiver.url("/services/T000/B000/XXXX")))
        .await
        .unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type").unwrap(), "application/json");
    let body = request.json();
    assert_eq!(
        body["text"],
        "[Critical] Backup of billing failed: pg_dump exited with status 1: connection refused. \
         Check that the database is up."
    );
    let blocks = body["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        ":rotating_light: Backup of billing failed"
    );
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    let fields: Vec<&str> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "*Workspace*\nprod",
            "*Database*\nbilling",
            "*Duration*\n12 s",
            "*Target*\ns3-eu"
        ]
    );
    assert_eq!(
        blocks[3]["elements"][0]["text"],
        "Critical · backup.failed · 2023-11-14T22:13:20Z"
    );
    assert_eq!(
        blocks[4]["elements"][0]["url"],
        "https://statehouse.example.com/ui/backups/42"
    );
}

#[tokio::test]
async fn slack_escapes_its_control_characters() {
    let receiver = Receiver::answering(200, "ok").await;
    let mut n = backup_failed();
    n.message = "<!channel> a & b > c".to_owned();
    send_with_timeout(&slack(receiver.url("/hook")), &n, &http_client(), SHORT)
        .await
        .unwrap();
    let body = receiver.only().json();
    assert_eq!(
        body["blocks"][1]["text"]["text"],
        "&lt;!channel&gt; a &amp; b &gt; c"
    );
}

#[tokio::test]
async fn discord_gets_an_embed_coloured_by_severity() {
    let receiver = Receiver::answering(204, "").await;
    let spec = NotifierSpec::Discord(DiscordSpec {
        webhook_url: Secret::new(receiver.url("/api/webhooks/123/token-abc")),
    });
    deliver(&spec).await.unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/webhooks/123/token-abc");
    let body = request.json();
    let embed = &body["embeds"][0];
    assert_eq!(embed["title"], "Backup of billing failed");
    assert_eq!(embed["color"], 0xE74C3C);
    assert_eq!(embed["timestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(embed["url"], "https://statehouse.example.com/ui/backups/42");
    assert_eq!(
        embed["fields"][1],
        json!({"name": "Database", "value": "billing", "inline": true})
    );
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));

    let receiver = Receiver::answering(204, "").await;
    let spec = NotifierSpec::Discord(DiscordSpec {
        webhook_url: Secret::new(receiver.url("/api/webhooks/1/t")),
    });
    send_with_timeout(&spec, &test_notification("prod", AT), &http_client(), SHORT)
        .await
        .unwrap();
    assert_eq!(receiver.only().json()["embeds"][0]["color"], 0x3498DB);
}

fn telegram(api_base: String) -> TelegramSpec {
    TelegramSpec {
        bot_token: Secret::new("123456:ABC-def_ghi"),
        chat_id: "-1001234567890".to_owned(),
        message_thread_id: Some(42),
        api_base,
    }
}

#[tokio::test]
async fn telegram_sends_escaped_html_to_the_topic() {
    let receiver = Receiver::answering(200, r#"{"ok":true,"result":{"message_id":7}}"#).await;
    let mut n = backup_failed();
    n.message = "pg_dump: <error> & \"quotes\"".to_owned();
    let spec = NotifierSpec::Telegram(telegram(receiver.base.clone()));
    spec.validate().unwrap();
    send_with_timeout(&spec, &n, &http_client(), SHORT)
        .await
        .unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/bot123456:ABC-def_ghi/sendMessage");
    let body = request.json();
    assert_eq!(body["chat_id"], -1001234567890_i64);
    assert_eq!(body["message_thread_id"], 42);
    assert_eq!(body["parse_mode"], "HTML");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.starts_with("<b>Backup of billing failed</b>\n"),
        "{text}"
    );
    assert!(
        text.contains("pg_dump: &lt;error&gt; &amp; &quot;quotes&quot;"),
        "{text}"
    );
    assert!(text.contains("<b>Database:</b> billing"), "{text}");
    assert!(
        text.contains("<a href=\"https://statehouse.example.com/ui/backups/42\">"),
        "{text}"
    );
}

#[tokio::test]
async fn telegram_channel_names_go_as_text() {
    let receiver = Receiver::answering(200, r#"{"ok":true,"result":{}}"#).await;
    let mut spec = telegram(format!("{}/", receiver.base));
    spec.chat_id = "@statehouse_alerts".to_owned();
    spec.message_thread_id = None;
    deliver(&NotifierSpec::Telegram(spec)).await.unwrap();
    let request = receiver.only();
    assert_eq!(request.path, "/bot123456:ABC-def_ghi/sendMessage");
    let body = request.json();
    assert_eq!(body["chat_id"], "@statehouse_alerts");
    assert!(body.get("message_thread_id").is_none());
}

#[tokio::test]
async fn telegram_failure_gives_advice_from_the_description_without_repeating_it() {
    let receiver = Receiver::answering(
        400,
        r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#,
    )
    .await;
    let err = deliver(&NotifierSpec::Telegram(telegram(receiver.base.clone())))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        "Telegram answered HTTP 400: check chat_id, and that the bot was added to that chat"
    );
    assert!(!err.is_retryable());

    // `ok: false` is a failure whatever the status.
    let receiver = Receiver::answering(
        200,
        r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
    )
    .await;
    let text = deliver(&NotifierSpec::Telegram(telegram(receiver.base.clone())))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "Telegram answered HTTP 200: check bot_token: revoked or mistyped"
    );
    assert!(!text.contains("ABC-def_ghi"), "{text}");
}

#[tokio::test]
async fn teams_gets_an_adaptive_card() {
    let receiver = Receiver::answering(202, "").await;
    let spec = NotifierSpec::Teams(TeamsSpec {
        webhook_url: Secret::new(receiver.url("/workflows/abc/triggers/manual/paths/invoke")),
    });
    deliver(&spec).await.unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/workflows/abc/triggers/manual/paths/invoke");
    let body = request.json();
    assert_eq!(body["type"], "message");
    let attachment = &body["attachments"][0];
    assert_eq!(
        attachment["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachment["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(card["body"][0]["text"], "Backup of billing failed");
    assert_eq!(card["body"][0]["color"], "Attention");
    assert_eq!(
        card["body"][2]["facts"][0],
        json!({"title": "Workspace", "value": "prod"})
    );
    assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    assert_eq!(
        card["actions"][0]["url"],
        "https://statehouse.example.com/ui/backups/42"
    );
}

#[tokio::test]
async fn teams_delivery_failure_inside_a_200_is_an_error() {
    let receiver = Receiver::answering(
        200,
        "Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP \
         error 413",
    )
    .await;
    let spec = NotifierSpec::Teams(TeamsSpec {
        webhook_url: Secret::new(receiver.url("/webhookb2/x")),
    });
    let text = deliver(&spec).await.unwrap_err().to_string();
    assert!(
        text.starts_with("Teams answered HTTP 200: the receiver reported that delivery failed"),
        "{text}"
    );
    assert!(
        !text.contains("413"),
        "the receiver's words are not repeated: {text}"
    );
}

#[tokio::test]
async fn mattermost_gets_a_coloured_attachment_in_the_chosen_channel() {
    let receiver = Receiver::answering(200, "ok").await;
    let spec = NotifierSpec::Mattermost(MattermostSpec {
        webhook_url: Secret::new(receiver.url("/hooks/xyz")),
        channel: Some("ops-alerts".to_owned()),
        username: Some("statehouse".to_owned()),
    });
    deliver(&spec).await.unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/xyz");
    let body = request.json();
    assert_eq!(body["channel"], "ops-alerts");
    assert_eq!(body["username"], "statehouse");
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["color"], "#E74C3C");
    assert_eq!(attachment["title"], "Backup of billing failed");
    assert_eq!(
        attachment["title_link"],
        "https://statehouse.example.com/ui/backups/42"
    );
    assert_eq!(
        attachment["fields"][2],
        json!({"title": "Duration", "value": "12 s", "short": true})
    );
}

fn ntfy(server: String) -> NtfySpec {
    NtfySpec {
        server,
        topic: Secret::new("statehouse-alerts-x7"),
        access_token: Some(Secret::new("tk_secrettoken")),
        username: None,
        password: None,
        priority: None,
        tags: vec!["floppy_disk".to_owned()],
    }
}

#[tokio::test]
async fn ntfy_gets_the_message_with_title_priority_and_tags_headers() {
    let receiver = Receiver::answering(200, r#"{"id":"abc","event":"message"}"#).await;
    deliver(&NotifierSpec::Ntfy(ntfy(receiver.base.clone())))
        .await
        .unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/statehouse-alerts-x7");
    assert_eq!(request.header("title").unwrap(), "Backup of billing failed");
    assert_eq!(request.header("priority").unwrap(), "5");
    assert_eq!(
        request.header("tags").unwrap(),
        "rotating_light,floppy_disk"
    );
    assert_eq!(
        request.header("click").unwrap(),
        "https://statehouse.example.com/ui/backups/42"
    );
    assert_eq!(
        request.header("authorization").unwrap(),
        "Bearer tk_secrettoken"
    );
    let text = request.text();
    assert!(text.starts_with("pg_dump exited with status 1"), "{text}");
    assert!(text.contains("Database: billing"), "{text}");
}

#[tokio::test]
async fn ntfy_basic_auth_fixed_priority_and_a_non_ascii_title() {
    let receiver = Receiver::answering(200, "{}").await;
    let mut spec = ntfy(format!("{}/ntfy/", receiver.base));
    spec.access_token = None;
    spec.username = Some("bob".to_owned());
    spec.password = Some(Secret::new("hunter22"));
    spec.priority = Some(NtfyPriority::Low);
    let mut n = backup_failed();
    n.title = "Sauvegarde échouée 💾".to_owned();
    n.severity = Severity::Warning;
    let spec = NotifierSpec::Ntfy(spec);
    spec.validate().unwrap();
    send_with_timeout(&spec, &n, &http_client(), SHORT)
        .await
        .unwrap();

    let request = receiver.only();
    assert_eq!(request.path, "/ntfy/statehouse-alerts-x7");
    assert_eq!(request.header("priority").unwrap(), "2");
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:hunter22")
    );
    assert_eq!(request.header("authorization").unwrap(), expected_auth);
    let title = request.header("title").unwrap();
    let encoded = title
        .strip_prefix("=?UTF-8?B?")
        .and_then(|t| t.strip_suffix("?="))
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(String::from_utf8(decoded).unwrap(), "Sauvegarde échouée 💾");
}

fn webhook(url: String) -> WebhookSpec {
    WebhookSpec {
        url: Secret::new(url),
        method: WebhookMethod::Post,
        headers: BTreeMap::new(),
        body_template: None,
    }
}

#[tokio::test]
async fn webhook_sends_the_notification_as_json_by_default() {
    let receiver = Receiver::answering(200, "").await;
    let mut spec = webhook(receiver.url("/events?token=abc"));
    spec.method = WebhookMethod::Put;
    spec.headers
        .insert("Authorization".to_owned(), Secret::new("Bearer xyz-123"));
    spec.headers
        .insert("X-Team".to_owned(), Secret::new("platform"));
    deliver(&NotifierSpec::Webhook(spec)).await.unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/events");
    assert_eq!(request.query.as_deref(), Some("token=abc"));
    assert_eq!(request.header("authorization").unwrap(), "Bearer xyz-123");
    assert_eq!(request.header("x-team").unwrap(), "platform");
    assert_eq!(request.header("content-type").unwrap(), "application/json");
    assert_eq!(
        request.json(),
        json!({
            "event": "backup.failed",
            "severity": "critical",
            "title": "Backup of billing failed",
            "message": "pg_dump exited with status 1: connection refused. Check that the database is up.",
            "workspace": "prod",
            "database": "billing",
            "at": "2023-11-14T22:13:20Z",
            "at_ms": 1_700_000_000_000_i64,
            "link": "https://statehouse.example.com/ui/backups/42",
            "fields": [
                {"name": "Duration", "value": "12 s"},
                {"name": "Target", "value": "s3-eu"},
            ],
        })
    );
}

#[tokio::test]
async fn webhook_json_template_gets_escaped_values() {
    let receiver = Receiver::answering(201, "").await;
    let mut spec = webhook(receiver.url("/alert"));
    spec.method = WebhookMethod::Patch;
    spec.body_template = Some(
        r#"{"summary": "{{title}} ({{ severity }})", "details": "{{message}}", "db": "{{database}}", "when": "{{at}}"}"#
            .to_owned(),
    );
    let mut n = backup_failed();
    n.message = "line one\nsaid \"no\" \\ end".to_owned();
    n.database = None;
    let spec = NotifierSpec::Webhook(spec);
    spec.validate().unwrap();
    send_with_timeout(&spec, &n, &http_client(), SHORT)
        .await
        .unwrap();

    let request = receiver.only();
    assert_eq!(request.method, "PATCH");
    assert_eq!(request.header("content-type").unwrap(), "application/json");
    assert_eq!(
        request.json(),
        json!({
            "summary": "Backup of billing failed (critical)",
            "details": "line one\nsaid \"no\" \\ end",
            "db": "",
            "when": "2023-11-14T22:13:20Z",
        })
    );
}

#[tokio::test]
async fn webhook_text_template_gets_raw_values() {
    let receiver = Receiver::answering(200, "").await;
    let mut spec = webhook(receiver.url("/text"));
    spec.body_template = Some("{{severity}}: {{title}} \"{{workspace}}\"".to_owned());
    deliver(&NotifierSpec::Webhook(spec)).await.unwrap();
    let request = receiver.only();
    assert_eq!(
        request.header("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        request.text(),
        "critical: Backup of billing failed \"prod\""
    );
}

#[tokio::test]
async fn server_error_names_the_status_but_neither_the_answer_nor_the_url() {
    let receiver = Receiver::answering(500, "upstream exploded\n  at line 3").await;
    let err = deliver(&slack(receiver.url("/services/T0/B0/secret-path-token")))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(text, "Slack answered HTTP 500");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn client_error_is_not_retryable_and_the_answer_is_never_repeated() {
    let receiver =
        Receiver::answering(400, "invalid_payload for /services/T0/B0/secret-path-token").await;
    let err = deliver(&slack(receiver.url("/services/T0/B0/secret-path-token")))
        .await
        .unwrap_err();
    assert!(matches!(err, NotifyError::Rejected { status: 400, .. }));
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert_eq!(text, "Slack answered HTTP 400");

    let receiver = Receiver::answering(403, "bad header Bearer xyz-123").await;
    let mut spec = webhook(receiver.url("/x"));
    spec.headers
        .insert("Authorization".to_owned(), Secret::new("Bearer xyz-123"));
    let text = deliver(&NotifierSpec::Webhook(spec))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(text, "the webhook receiver answered HTTP 403");
}

#[tokio::test]
async fn unreachable_receiver_is_a_clear_error_without_the_url() {
    let port = closed_port().await;
    for spec in [
        slack(format!(
            "http://127.0.0.1:{port}/services/T0/B0/secret-path-token"
        )),
        NotifierSpec::Telegram(telegram(format!("http://127.0.0.1:{port}"))),
    ] {
        let err = deliver(&spec).await.unwrap_err();
        let text = err.to_string();
        // Refused, timed out or not HTTP: one message, which does not tell open from closed.
        assert_eq!(text, unreachable_message("127.0.0.1", port), "{text}");
        assert!(!text.contains("secret-path-token"), "{text}");
        assert!(!text.contains("ABC-def_ghi"), "{text}");
        assert!(matches!(err, NotifyError::Unreachable(_)));
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn silent_receiver_times_out() {
    let receiver = Receiver::silent().await;
    let spec = slack(receiver.url("/services/slow"));
    let err = send_with_timeout(
        &spec,
        &backup_failed(),
        &http_client(),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    let port: u16 = receiver.base.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(err.to_string(), unreachable_message("127.0.0.1", port));
}

#[tokio::test]
async fn test_notification_reaches_a_receiver() {
    let receiver = Receiver::answering(200, "").await;
    let spec = NotifierSpec::Webhook(webhook(receiver.url("/")));
    send_with_timeout(
        &spec,
        &test_notification("staging", AT),
        &http_client(),
        SHORT,
    )
    .await
    .unwrap();
    let body: Value = receiver.only().json();
    assert_eq!(body["event"], "notifier.test");
    assert_eq!(body["severity"], "info");
    assert_eq!(body["workspace"], "staging");
    assert_eq!(body["database"], Value::Null);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let receiver = Receiver::answering(301, "").await;
    let text = deliver(&slack(receiver.url("/moved")))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "Slack answered HTTP 301: a redirect, which is not followed: set the URL it points to instead"
    );
}
