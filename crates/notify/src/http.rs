//! One HTTP exchange with a receiver, reported without secrets.

use std::time::Duration;

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;

/// What a receiver answered: its status, and the start of its body for the channels that read
/// it (Telegram's `ok`, Teams' "delivery failed"). The body is never quoted back to the user: a
/// URL may point at a service that is not a receiver at all.
pub(crate) struct Answer {
    pub status: reqwest::StatusCode,
    pub body: String,
}

/// Bytes of an answer read (receivers' answers are short; more is never useful).
const ANSWER_LIMIT: usize = 16 * 1024;

/// Sends `method` to `url` through the policy-checked client, with what `build` adds, and reads
/// the answer, whatever its status. A destination the outbound policy refuses is
/// [`NotifyError::Invalid`] (retrying will not help); one that cannot be reached gets the same
/// message whatever the reason.
pub(crate) async fn exchange(
    client: &HttpClient,
    method: reqwest::Method,
    url: &url::Url,
    build: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    timeout: Duration,
) -> Result<Answer, NotifyError> {
    let request = client
        .request(method, url.clone())
        .map_err(|refusal| NotifyError::Invalid(refusal.to_string()))?;
    let mut response = build(request).timeout(timeout).send().await.map_err(|e| {
        match statehouse_outbound::refusal_in(&e) {
            Some(refusal) => NotifyError::Invalid(refusal.to_string()),
            None => NotifyError::Unreachable(client.describe_failure(url, &e)),
        }
    })?;
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

/// Success is any 2xx; otherwise the error says the status.
pub(crate) fn expect_success(channel: &'static str, answer: &Answer) -> Result<(), NotifyError> {
    if answer.status.is_success() {
        Ok(())
    } else {
        Err(rejected(channel, answer.status, ""))
    }
}

/// The receiver answered `status`; `detail` is our own explanation (never the receiver's
/// words).
pub(crate) fn rejected(
    channel: &'static str,
    status: reqwest::StatusCode,
    detail: &str,
) -> NotifyError {
    let mut detail = detail.to_owned();
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

/// POSTs `payload` as JSON to a secret webhook URL and expects a 2xx answer; returns the answer
/// for channels that read it.
pub(crate) async fn post_json_to_secret_url(
    channel: &'static str,
    service: &str,
    webhook_url: &crate::Secret,
    payload: &serde_json::Value,
    client: &HttpClient,
    timeout: Duration,
) -> Result<Answer, NotifyError> {
    let url = crate::spec::check_url(
        "webhook_url",
        webhook_url.expose(),
        &crate::spec::paste_hint(service),
    )?;
    let answer = exchange(
        client,
        reqwest::Method::POST,
        &url,
        |request| request.json(payload),
        timeout,
    )
    .await?;
    expect_success(channel, &answer)?;
    Ok(answer)
}
