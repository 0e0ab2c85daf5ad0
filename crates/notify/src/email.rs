//! Email through SMTP (lettre, rustls): plain text, one message to all recipients.

use std::time::{Duration, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use statehouse_outbound::{HttpClient, OutboundError, unreachable_message};

use crate::error::NotifyError;
use crate::notification::{Notification, Severity, truncate};
use crate::spec::{EmailSecurity, EmailSpec};

pub(crate) fn validate(spec: &EmailSpec) -> Result<(), NotifyError> {
    let host = spec.host.trim();
    if host.is_empty() || host.contains("://") || host.contains(['/', ' ']) {
        return Err(NotifyError::Invalid(
            "host must be the mail server's name or address, e.g. smtp.example.com (no smtp:// \
             and no port: set port separately)"
                .to_owned(),
        ));
    }
    if spec.port == Some(0) {
        return Err(NotifyError::Invalid(
            "port 0 is not a port: leave port out for the usual one (587 for starttls, 465 for \
             tls, 25 for none)"
                .to_owned(),
        ));
    }
    mailbox("from", &spec.from)?;
    if spec.to.is_empty() {
        return Err(NotifyError::Invalid(
            "to is empty: list at least one recipient, e.g. [\"ops@example.com\"]".to_owned(),
        ));
    }
    for to in &spec.to {
        mailbox("to", to)?;
    }
    match (&spec.username, &spec.password) {
        (Some(username), Some(_)) if username.trim().is_empty() => {
            return Err(NotifyError::Invalid(
                "username is empty: set it, or leave out username and password".to_owned(),
            ));
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(NotifyError::Invalid(
                "username and password go together: set both to log in, or neither for a relay \
                 that needs no login"
                    .to_owned(),
            ));
        }
        _ => {}
    }
    if spec.password.is_some() && spec.security == EmailSecurity::None {
        return Err(NotifyError::Invalid(
            "security none would send the password unencrypted: use starttls (port 587) or tls \
             (port 465), or leave out username and password for a relay that needs no login"
                .to_owned(),
        ));
    }
    if let Some(pem) = &spec.ca_certificate_pem {
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                NotifyError::Invalid(format!(
                    "ca_certificate_pem is not valid PEM ({e}): paste the CA certificate \
                     including its -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines"
                ))
            })?;
        if certificates.is_empty() {
            return Err(NotifyError::Invalid(
                "ca_certificate_pem holds no certificate: paste the CA certificate including its \
                 -----BEGIN CERTIFICATE----- and -----END CERTIFICATE----- lines"
                    .to_owned(),
            ));
        }
    }
    Ok(())
}

fn mailbox(field: &str, address: &str) -> Result<Mailbox, NotifyError> {
    address.trim().parse::<Mailbox>().map_err(|e| {
        NotifyError::Invalid(format!(
            "{field} {address:?} is not an email address ({e}): write e.g. ops@example.com or \
             \"Ops <ops@example.com>\""
        ))
    })
}

/// "[statehouse/prod] Critical: Backup of billing failed".
pub(crate) fn subject(n: &Notification) -> String {
    let title = truncate(&n.title, 200);
    match n.severity {
        Severity::Info => format!("[statehouse/{}] {title}", n.workspace),
        severity => format!("[statehouse/{}] {}: {title}", n.workspace, severity.label()),
    }
}

pub(crate) fn message(spec: &EmailSpec, n: &Notification) -> Result<Message, NotifyError> {
    let at = u64::try_from(n.at.millis())
        .ok()
        .and_then(|millis| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(millis)))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut builder = Message::builder()
        .from(mailbox("from", &spec.from)?)
        .subject(subject(n))
        .date(at)
        .header(ContentType::TEXT_PLAIN);
    for to in &spec.to {
        builder = builder.to(mailbox("to", to)?);
    }
    let body = format!(
        "{}\n-- \nSent by statehouse for workspace {}.\n",
        n.plain_text(),
        n.workspace
    );
    builder
        .body(body)
        .map_err(|e| NotifyError::Invalid(format!("cannot build the email: {e}")))
}

/// The SMTP transport to `connect_to` (the checked address), with TLS verifying the server as
/// `spec.host`.
fn transport(
    spec: &EmailSpec,
    connect_to: &str,
    timeout: Duration,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, NotifyError> {
    let host = spec.host.trim();
    let tls_parameters = || {
        let mut builder = TlsParameters::builder(host.to_owned())
            .dangerous_accept_invalid_certs(spec.accept_invalid_certs);
        if let Some(pem) = &spec.ca_certificate_pem {
            let certificate = Certificate::from_pem(pem.as_bytes()).map_err(|e| {
                NotifyError::Invalid(format!("ca_certificate_pem is not a PEM certificate: {e}"))
            })?;
            builder = builder.add_root_certificate(certificate);
        }
        builder
            .build_rustls()
            .map_err(|e| NotifyError::Invalid(format!("cannot set up TLS for {host}: {e}")))
    };
    let tls = match spec.security {
        EmailSecurity::None => Tls::None,
        EmailSecurity::Starttls => Tls::Required(tls_parameters()?),
        EmailSecurity::Tls => Tls::Wrapper(tls_parameters()?),
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(connect_to)
        .port(spec.port())
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(username), Some(password)) = (&spec.username, &spec.password) {
        builder = builder
            .credentials(Credentials::new(
                username.clone(),
                password.expose().to_owned(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}

/// Resolves the mail server once through the outbound policy and sends to the addresses it
/// allows (so the address checked is the one connected to).
pub(crate) async fn send(
    spec: &EmailSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let message = message(spec, n)?;
    let host = spec.host.trim();
    let port = spec.port();
    let addresses = client
        .policy()
        .resolve(client.purpose(), host, port)
        .await
        .map_err(|e| match e {
            OutboundError::Refused(refusal) => NotifyError::Invalid(refusal.to_string()),
            unreachable => NotifyError::Unreachable(unreachable.to_string()),
        })?;
    // Each checked address in turn (as a client tries a name's addresses), until one answers.
    for address in addresses {
        let transport = transport(spec, &address.ip().to_string(), timeout)?;
        match tokio::time::timeout(timeout, transport.send(message.clone())).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => match describe(spec, &e) {
                NotifyError::Unreachable(_) => {}
                answered => return Err(answered),
            },
            Err(_) => {}
        }
    }
    Err(unreachable(spec))
}

/// The one message for a mail server that could not be reached (refused, timed out, TLS
/// failed, not SMTP), with the private-CA hint whenever TLS is in use.
fn unreachable(spec: &EmailSpec) -> NotifyError {
    let message = unreachable_message(spec.host.trim(), spec.port());
    NotifyError::Unreachable(match spec.security {
        EmailSecurity::None => message,
        EmailSecurity::Starttls | EmailSecurity::Tls => {
            format!("{message}; if the server uses a private CA, set ca_certificate_pem")
        }
    })
}

/// Says which step failed and what to check, from the SMTP reply code and lettre's own
/// classification: the server's words are not repeated, and everything before an SMTP answer
/// (refused, timed out, TLS, not an SMTP server) reads alike.
fn describe(spec: &EmailSpec, e: &lettre::transport::smtp::Error) -> NotifyError {
    let server = format!("{}:{}", spec.host.trim(), spec.port());
    if let Some(code) = e.status() {
        let hint = match code.to_string().as_str() {
            "535" | "534" => ": check username and password",
            "530" => ": the server wants a login: set username and password",
            "550" | "551" | "553" | "554" => {
                ": check from and to (the server may not accept this sender or relay to these \
                 recipients)"
            }
            _ => "",
        };
        return NotifyError::Smtp {
            message: format!("the mail server {server} refused (SMTP {code}){hint}"),
            permanent: e.is_permanent(),
        };
    }
    let ours = own_words(e);
    if e.is_client() && !e.is_tls() {
        let hint = if ours.contains("STARTTLS") {
            ": the server does not offer STARTTLS; use security tls (port 465) if it speaks TLS \
             from the start"
        } else if ours.contains("authentication mechanism") {
            ": the server offers neither AUTH PLAIN nor AUTH LOGIN (or none before TLS)"
        } else {
            ": check security and port"
        };
        return NotifyError::Smtp {
            message: format!("cannot send through the mail server {server}{hint}"),
            permanent: true,
        };
    }
    unreachable(spec)
}

/// lettre's messages along the error's causes (only consulted to pick a hint).
fn own_words(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
