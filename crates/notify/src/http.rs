//! One HTTP exchange with a receiver, reported without secrets.

use std::time::Duration;

use crate::error::NotifyError;
use crate::secret::scrub;

/// What a receiver answered.
pub(crate) struct Answer {
    pub status: reqwest::StatusCode,
    /// The start of the body (receivers' error bodies are short; more is never useful).
    pub body: String,
}

/// Bytes of an answer kept for error messages and API replies.
const ANSWER_LIMIT: usize = 16 * 1024;
/// Characters of an answer quoted in an error message.
const QUOTE_LIMIT: usize = 300;

/// Sends the request and reads the answer, whatever its status.
pub(crate) async fn exchange(
    channel: &'static str,
    url: &url::Url,
    request: reqwest::RequestBuilder,
    timeout: Duration,
    secrets: &[&str],
) -> Result<Answer, NotifyError> {
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => "?".to_owned(),
    };
    let unreachable = |e: reqwest::Error| {
        let e = e.without_url();
        let reason = if e.is_timeout() {
            format!("no answer within {} s", timeout.as_secs_f64())
        } else if e.is_connect() {
            // "error sending request: client error (Connect): tcp connect error: Connection
            // refused": the last cause is the one that helps (refused, DNS, certificate).
            deepest_cause(&e)
        } else {
            error_chain(&e)
        };
        NotifyError::Unreachable(scrub(
            &format!("cannot reach {channel} at {host}: {reason}"),
            secrets,
        ))
    };
    let mut response = request.timeout(timeout).send().await.map_err(unreachable)?;
    let status = response.status();
    let mut body = Vec::new();
    while body.len() < ANSWER_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            // The status already tells the outcome; a cut-off body only loses detail.
            Err(_) => break,
        }
    }
    body.truncate(ANSWER_LIMIT);
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Success is any 2xx; otherwise the error quotes the status and the start of the answer.
pub(crate) fn expect_success(
    channel: &'static str,
    answer: &Answer,
    secrets: &[&str],
) -> Result<(), NotifyError> {
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(rejected(channel, answer.status, &answer.body, secrets))
    }
}

pub(crate) fn rejected(
    channel: &'static str,
    status: reqwest::StatusCode,
    detail: &str,
    secrets: &[&str],
) -> NotifyError {
    let mut detail = quote(detail, secrets);
    if status.is_redirection() {
        // Redirects are not followed: a webhook URL names its receiver.
        let note = "a redirect, which is not followed: set the URL it points to instead";
        detail = if detail.is_empty() {
            note.to_owned()
        } else {
            format!("{detail} ({note})")
        };
    }
    NotifyError::Rejected {
        channel,
        status: status.as_u16(),
        detail,
    }
}

/// The answer on one line, cut short, without secrets.
pub(crate) fn quote(text: &str, secrets: &[&str]) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    crate::notification::truncate(&scrub(&one_line, secrets), QUOTE_LIMIT)
}

/// "error sending request: client error (Connect): tcp connect error: Connection refused":
/// reqwest's own message says little, the cause is at the end of the chain.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    // Libraries wrap their own errors ("Connection error: Connection error: refused"): say each
    // part once.
    let joined = parts.join(": ");
    let mut segments: Vec<&str> = Vec::new();
    for segment in joined.split(": ") {
        if segments.last() != Some(&segment) {
            segments.push(segment);
        }
    }
    segments.join(": ")
}

/// POSTs `payload` as JSON to a secret webhook URL and expects a 2xx answer; returns the answer
/// for channels that read it.
pub(crate) async fn post_json_to_secret_url(
    channel: &'static str,
    service: &str,
    webhook_url: &crate::Secret,
    payload: &serde_json::Value,
    http: &reqwest::Client,
    timeout: Duration,
) -> Result<Answer, NotifyError> {
    let url = crate::spec::check_url(
        "webhook_url",
        webhook_url.expose(),
        &crate::spec::paste_hint(service),
    )?;
    let secrets = crate::secret::url_and_parts(webhook_url.expose());
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let request = http.post(url.clone()).json(payload);
    let answer = exchange(channel, &url, request, timeout, &secrets).await?;
    expect_success(channel, &answer, &secrets)?;
    Ok(answer)
}

fn deepest_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = e;
    while let Some(cause) = deepest.source() {
        deepest = cause;
    }
    deepest.to_string()
}
