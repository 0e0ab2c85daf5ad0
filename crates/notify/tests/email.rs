//! Email against an in-test SMTP server: plain relay, STARTTLS with AUTH PLAIN, implicit TLS
//! with AUTH LOGIN, refused logins, certificates, unreachable servers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use statehouse_notify::{
    EmailSecurity, EmailSpec, NotifierSpec, NotifyError, Secret, send_with_timeout,
    test_notification,
};
use statehouse_outbound::unreachable_message;
use support::smtp::{Config, Security, SmtpServer};
use support::{AT, SHORT, backup_failed, closed_port, http_client};

fn spec(port: u16, security: EmailSecurity) -> EmailSpec {
    EmailSpec {
        host: "127.0.0.1".to_owned(),
        port: Some(port),
        security,
        username: None,
        password: None,
        from: "Statehouse <statehouse@example.com>".to_owned(),
        to: vec!["ops@example.com".to_owned(), "dba@example.com".to_owned()],
        ca_certificate_pem: None,
        accept_invalid_certs: false,
    }
}

fn with_login(mut spec: EmailSpec, ca_pem: &str) -> EmailSpec {
    spec.username = Some("alice".to_owned());
    spec.password = Some(Secret::new("s3cret-pa55"));
    spec.ca_certificate_pem = Some(ca_pem.to_owned());
    spec
}

async fn send_email(spec: EmailSpec) -> Result<(), NotifyError> {
    let spec = NotifierSpec::Email(spec);
    spec.validate().unwrap();
    send_with_timeout(&spec, &backup_failed(), &http_client(), SHORT).await
}

fn authenticated_server(security: Security, mechanisms: Vec<&'static str>) -> Config {
    Config {
        security,
        mechanisms,
        login: Some(("alice".to_owned(), "s3cret-pa55".to_owned())),
        refuse_auth: false,
    }
}

#[tokio::test]
async fn relay_without_login_receives_the_message() {
    let server = SmtpServer::start(Config::open_relay()).await;
    send_email(spec(server.port, EmailSecurity::None))
        .await
        .unwrap();

    let mail = server.delivered();
    assert!(!mail.tls);
    assert!(mail.auth.is_none());
    assert_eq!(mail.mail_from.as_deref(), Some("statehouse@example.com"));
    assert_eq!(mail.rcpt_to, ["ops@example.com", "dba@example.com"]);
    assert_eq!(
        mail.header("From").unwrap(),
        "Statehouse <statehouse@example.com>"
    );
    let to = mail.header("To").unwrap();
    assert!(
        to.contains("ops@example.com") && to.contains("dba@example.com"),
        "{to}"
    );
    assert_eq!(
        mail.header("Subject").unwrap(),
        "[statehouse/prod] Critical: Backup of billing failed"
    );
    assert_eq!(
        mail.header("Date").unwrap(),
        "Tue, 14 Nov 2023 22:13:20 +0000"
    );
    assert!(
        mail.header("Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
    let body = mail.body();
    assert!(body.contains("pg_dump exited with status 1"), "{body}");
    assert!(body.contains("Database: billing"), "{body}");
    assert!(body.contains("Duration: 12 s"), "{body}");
    assert!(body.contains("Event: backup.failed"), "{body}");
    assert!(
        body.contains("https://statehouse.example.com/ui/backups/42"),
        "{body}"
    );
}

#[tokio::test]
async fn starttls_with_auth_plain() {
    let server = SmtpServer::start(authenticated_server(
        Security::Plain {
            offer_starttls: true,
        },
        vec!["PLAIN", "LOGIN"],
    ))
    .await;
    send_email(with_login(
        spec(server.port, EmailSecurity::Starttls),
        &server.ca_pem,
    ))
    .await
    .unwrap();

    let mail = server.delivered();
    assert!(mail.tls, "the message went over TLS");
    assert_eq!(
        mail.auth,
        Some((
            "PLAIN".to_owned(),
            "alice".to_owned(),
            "s3cret-pa55".to_owned()
        ))
    );
    assert_eq!(mail.ehlo.len(), 2, "EHLO again after STARTTLS");
    assert_eq!(
        mail.header("Subject").unwrap(),
        "[statehouse/prod] Critical: Backup of billing failed"
    );
}

#[tokio::test]
async fn implicit_tls_with_auth_login() {
    let server =
        SmtpServer::start(authenticated_server(Security::ImplicitTls, vec!["LOGIN"])).await;
    let spec = NotifierSpec::Email(with_login(
        spec(server.port, EmailSecurity::Tls),
        &server.ca_pem,
    ));
    send_with_timeout(&spec, &test_notification("prod", AT), &http_client(), SHORT)
        .await
        .unwrap();

    let mail = server.delivered();
    assert!(mail.tls);
    assert_eq!(
        mail.auth,
        Some((
            "LOGIN".to_owned(),
            "alice".to_owned(),
            "s3cret-pa55".to_owned()
        ))
    );
    assert_eq!(
        mail.header("Subject").unwrap(),
        "[statehouse/prod] Test notification from statehouse"
    );
}

#[tokio::test]
async fn refused_login_says_so_without_the_password() {
    let mut config = authenticated_server(
        Security::Plain {
            offer_starttls: true,
        },
        vec!["PLAIN"],
    );
    config.refuse_auth = true;
    let server = SmtpServer::start(config).await;
    let err = send_email(with_login(
        spec(server.port, EmailSecurity::Starttls),
        &server.ca_pem,
    ))
    .await
    .unwrap_err();

    let text = err.to_string();
    assert!(text.contains("535"), "{text}");
    assert!(text.contains("check username and password"), "{text}");
    assert!(!text.contains("s3cret-pa55"), "{text}");
    assert!(
        matches!(
            err,
            NotifyError::Smtp {
                permanent: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert!(server.sessions().iter().all(|s| s.data.is_none()));
}

#[tokio::test]
async fn server_wanting_a_login_says_so() {
    let server = SmtpServer::start(authenticated_server(
        Security::Plain {
            offer_starttls: true,
        },
        vec!["PLAIN"],
    ))
    .await;
    let mut spec = spec(server.port, EmailSecurity::Starttls);
    spec.ca_certificate_pem = Some(server.ca_pem.clone());
    let text = send_email(spec).await.unwrap_err().to_string();
    assert!(text.contains("530"), "{text}");
    assert!(text.contains("set username and password"), "{text}");
}

#[tokio::test]
async fn starttls_required_but_not_offered() {
    let server = SmtpServer::start(Config::open_relay()).await;
    let text = send_email(spec(server.port, EmailSecurity::Starttls))
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("STARTTLS"), "{text}");
    assert!(text.contains("security tls"), "{text}");
    assert!(server.sessions().iter().all(|s| s.data.is_none()));
}

#[tokio::test]
async fn unknown_certificate_is_refused_with_a_hint_unless_accepted() {
    let server =
        SmtpServer::start(authenticated_server(Security::ImplicitTls, vec!["PLAIN"])).await;
    let mut untrusted = spec(server.port, EmailSecurity::Tls);
    untrusted.username = Some("alice".to_owned());
    untrusted.password = Some(Secret::new("s3cret-pa55"));
    let err = send_email(untrusted.clone()).await.unwrap_err();
    let text = err.to_string();
    assert_eq!(
        text,
        format!(
            "{}; if the server uses a private CA, set ca_certificate_pem",
            unreachable_message("127.0.0.1", server.port)
        )
    );
    assert!(server.sessions().iter().all(|s| s.auth.is_none()));

    untrusted.accept_invalid_certs = true;
    send_email(untrusted).await.unwrap();
    assert!(server.delivered().tls);
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    let port = closed_port().await;
    let err = send_email(spec(port, EmailSecurity::None))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert_eq!(text, unreachable_message("127.0.0.1", port));
    assert!(err.is_retryable());
}
