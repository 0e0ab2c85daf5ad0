//! What went wrong with a storage target, in words a user can act on: a hint from the error's
//! kind and text, the HTTP status when there was one, never the service's own words (an
//! endpoint may point at something that is not a storage service, whose answer must not be
//! echoed) and never a secret; the outbound policy's refusal as it is; and one message for a
//! service that cannot be reached, whatever the reason.

use opendal::ErrorKind;
use statehouse_outbound::{refusal_in, unreachable_message};

use super::spec::TargetSpec;

/// Explains one target's errors.
pub(crate) struct Explainer {
    /// "S3 bucket \"backups\"".
    pub(crate) label: String,
    /// The service's host and port, for "could not connect to HOST:PORT".
    host: String,
    port: u16,
}

/// The hint a service that cannot be reached gets (then replaced by the uniform message).
const UNREACHABLE: &str =
    "the server cannot be reached: check the endpoint or host and port, DNS and firewalls";

impl Explainer {
    pub(crate) fn new(spec: &TargetSpec, label: String) -> Explainer {
        let (host, port) = service_address(spec);
        Explainer { label, host, port }
    }

    /// "<hint> (HTTP <status>)", the policy's refusal, or the uniform "could not connect".
    pub(crate) fn explain(&self, e: &opendal::Error, writing: bool) -> String {
        if let Some(refusal) = refusal_in(e) {
            return refusal.to_string();
        }
        let hint = hint(e, writing);
        if hint == UNREACHABLE {
            return unreachable_message(&self.host, self.port);
        }
        match http_status(e) {
            Some(status) => format!("{hint} (HTTP {status})"),
            None => hint.to_owned(),
        }
    }

    /// The message for a service that cannot be reached.
    pub(crate) fn unreachable(&self) -> String {
        unreachable_message(&self.host, self.port)
    }
}

/// The host and port a target's service is reached at (the default service's when no
/// endpoint is set).
fn service_address(spec: &TargetSpec) -> (String, u16) {
    let of_url = |url: &str, default_host: &str| match url::Url::parse(url) {
        Ok(parsed) => (
            parsed.host_str().unwrap_or(default_host).to_owned(),
            parsed.port_or_known_default().unwrap_or(443),
        ),
        Err(_) => (default_host.to_owned(), 443),
    };
    match spec {
        TargetSpec::Local(_) => ("localhost".to_owned(), 0),
        TargetSpec::S3(s) => match &s.endpoint {
            Some(endpoint) => of_url(endpoint, "s3.amazonaws.com"),
            None => (format!("s3.{}.amazonaws.com", s.region), 443),
        },
        TargetSpec::Azblob(s) => match &s.endpoint {
            Some(endpoint) => of_url(endpoint, "blob.core.windows.net"),
            None => (format!("{}.blob.core.windows.net", s.account_name), 443),
        },
        TargetSpec::Gcs(s) => match &s.endpoint {
            Some(endpoint) => of_url(endpoint, "storage.googleapis.com"),
            None => ("storage.googleapis.com".to_owned(), 443),
        },
        TargetSpec::Gdrive(s) => match &s.endpoint {
            Some(endpoint) => of_url(endpoint, "www.googleapis.com"),
            None => ("www.googleapis.com".to_owned(), 443),
        },
        TargetSpec::Sftp(s) => (s.host.clone(), s.port),
        TargetSpec::Webdav(s) => of_url(&s.endpoint, "localhost"),
        TargetSpec::Ftp(s) => {
            let (host, port) = of_url(&s.endpoint, "localhost");
            // `ftps` has no known default port in the URL standard.
            let port = if port == 443 && s.endpoint.starts_with("ftps") {
                21
            } else {
                port
            };
            (host, port)
        }
    }
}

/// The HTTP status of a service's answer, when the error came from one.
fn http_status(e: &opendal::Error) -> Option<String> {
    let full = e.to_string();
    let at = full.find("status: ")?;
    let status: String = full[at + 8..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!status.is_empty()).then_some(status)
}

/// The error's own message and causes, for messages of setting-up failures (nothing was sent
/// yet, so nothing a service said is in it).
pub(crate) fn setup_details(e: &opendal::Error) -> String {
    let mut text = e.message().trim().to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(cause.to_string().trim());
        source = cause.source();
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A phrase saying what probably went wrong, in terms a user can act on.
fn hint(e: &opendal::Error, writing: bool) -> &'static str {
    let text = format!("{e} {e:?}").to_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| text.contains(w));
    if any(&[
        "nosuchbucket",
        "containernotfound",
        "the specified bucket does not exist",
    ]) {
        return "the bucket or container does not exist: create it or correct its name";
    }
    if any(&[
        "host key verification failed",
        "remote host identification has changed",
    ]) {
        return "the SSH server's host key is not trusted: add it to the statehouse user's ~/.ssh/known_hosts or set known_hosts_strategy";
    }
    if e.kind() == ErrorKind::PermissionDenied
        || any(&[
            "permission denied",
            "signaturedoesnotmatch",
            "invalidaccesskeyid",
            "authenticationfailed",
            "authorizationfailure",
            "invalid_grant",
            "invalid_client",
            "unauthorized",
            "login incorrect",
            "530 ",
            "status: 401",
            "status: 403",
        ])
    {
        return "access was refused: check the credentials (key, secret, password or token) and their permissions";
    }
    if any(&[
        "connection refused",
        "dns error",
        "failed to lookup",
        "could not resolve",
        "name or service not known",
        "no route to host",
        "network is unreachable",
        "tcp connect",
        "error sending request",
        "timed out",
        "connection reset",
        "connection closed by",
        "connection request: timeout",
    ]) {
        return UNREACHABLE;
    }
    match e.kind() {
        ErrorKind::NotFound if writing => {
            "the bucket, container or folder does not exist: create it or correct its name"
        }
        ErrorKind::NotFound => "the object does not exist",
        ErrorKind::ConfigInvalid => "the target's settings are not valid",
        ErrorKind::RateLimited => "the service is throttling requests: try again later",
        ErrorKind::Unsupported => "the service does not support this operation",
        _ => "the storage service returned an error",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::targets::{S3Spec, Secret};

    fn s3() -> TargetSpec {
        TargetSpec::S3(S3Spec {
            bucket: "backups".to_owned(),
            region: "us-east-1".to_owned(),
            endpoint: Some("http://storage.internal:9000".to_owned()),
            access_key_id: Some("AKID".to_owned()),
            secret_access_key: Some(Secret::new("s3-secret")),
            session_token: None,
            path_style: true,
            prefix: None,
        })
    }

    #[test]
    fn a_service_answer_is_classified_never_quoted() {
        let explainer = Explainer::new(&s3(), "S3 bucket".to_owned());
        let answer = opendal::Error::new(
            ErrorKind::Unexpected,
            "<Error><Code>AccessDenied</Code><Message>admin page of an internal host</Message></Error>",
        )
        .with_context("response", "Parts { status: 403, headers: {} }");
        let text = explainer.explain(&answer, true);
        assert!(!text.contains("admin page"), "{text}");
        assert!(text.contains("access was refused"), "{text}");
        assert!(text.ends_with("(HTTP 403)"), "{text}");
        let refused = opendal::Error::new(
            ErrorKind::Unexpected,
            "tcp connect error: Connection refused",
        );
        assert_eq!(
            explainer.explain(&refused, false),
            unreachable_message("storage.internal", 9000)
        );
        let timed_out = opendal::Error::new(ErrorKind::Unexpected, "operation timed out");
        assert_eq!(
            explainer.explain(&timed_out, false),
            explainer.unreachable()
        );
    }
}
