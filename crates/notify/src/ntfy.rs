//! ntfy: the message as the body, title, priority, tags and click link as headers.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;
use crate::http::{exchange, expect_success};
use crate::notification::{Notification, Severity, truncate};
use crate::spec::{NTFY_SERVER_HINT, NtfyPriority, NtfySpec, check_url};

pub(crate) async fn send(
    spec: &NtfySpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let server = check_url("server", &spec.server, NTFY_SERVER_HINT)?;
    let mut url = server.clone();
    url.path_segments_mut()
        .map_err(|()| NotifyError::Invalid("server must be an http(s) URL".to_owned()))?
        .pop_if_empty()
        .push(spec.topic.expose());
    let answer = exchange(
        client,
        reqwest::Method::POST,
        &url,
        |request| {
            let request = request
                .headers(headers(spec, n))
                .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                .body(n.plain_text());
            if let Some(token) = &spec.access_token {
                request.bearer_auth(token.expose())
            } else if let (Some(username), Some(password)) = (&spec.username, &spec.password) {
                request.basic_auth(username, Some(password.expose()))
            } else {
                request
            }
        },
        timeout,
    )
    .await?;
    expect_success("ntfy", &answer)
}

/// Priority follows the severity unless the notifier fixes one.
pub(crate) fn priority(spec: &NtfySpec, severity: Severity) -> NtfyPriority {
    spec.priority.unwrap_or(match severity {
        Severity::Info => NtfyPriority::Default,
        Severity::Warning => NtfyPriority::High,
        Severity::Critical => NtfyPriority::Max,
    })
}

/// A tag ntfy shows as an emoji.
fn severity_tag(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "information_source",
        Severity::Warning => "warning",
        Severity::Critical => "rotating_light",
    }
}

pub(crate) fn headers(spec: &NtfySpec, n: &Notification) -> HeaderMap {
    let mut tags = vec![severity_tag(n.severity).to_owned()];
    tags.extend(spec.tags.iter().cloned());
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = header_value(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("title", &truncate(&n.title, 250));
    put("priority", &priority(spec, n.severity).number().to_string());
    put("tags", &tags.join(","));
    if let Some(link) = &n.link {
        put("click", link);
    }
    headers
}

/// Header values are ASCII; ntfy decodes RFC 2047 encoded words for anything else (é, emoji).
/// Line breaks become spaces.
fn header_value(text: &str) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.is_ascii() {
        HeaderValue::from_str(&one_line)
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(one_line.as_bytes());
        HeaderValue::from_str(&format!("=?UTF-8?B?{encoded}?="))
    }
}
