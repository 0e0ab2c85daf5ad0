//! Outgoing webhooks: per workspace, a URL that receives matching events as signed JSON POSTs.
//!
//! Deliveries are rows created in the same transaction as their event. A delivery worker in
//! each server claims due rows with a lease (two replicas never send one delivery at the same
//! time), POSTs them through a [`WebhookTransport`], and records every attempt; failures are
//! retried with exponential backoff measured on the injected clock.
//!
//! Receivers verify `X-Statehouse-Signature-256: sha256=<hex>`, the HMAC-SHA256 under the
//! webhook's secret of `"<X-Statehouse-Timestamp>.<raw body>"` (see the README).

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::access::random_secret;
use crate::clock::Timestamp;
use crate::crypto::{Binding, SealedBody};
use crate::events::Event;
use crate::{Error, Result};

/// Attempts per delivery before it is given up (the first one included).
pub const MAX_ATTEMPTS: i64 = 10;
/// Delay after the first failed attempt; doubles after each further failure.
const FIRST_RETRY_MILLIS: i64 = 3 * 60_000;
/// Longest wait between two attempts.
const MAX_RETRY_MILLIS: i64 = 12 * 3_600_000;
/// How long one POST may take.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery stays with the worker that claimed it; well above the timeout,
/// so only a worker that died leaves a claim to expire and be taken over.
pub const LEASE_MILLIS: i64 = 5 * 60_000;
/// Longest webhook URL accepted.
const MAX_URL: usize = 2_048;

pub const HEADER_EVENT: &str = "X-Statehouse-Event";
pub const HEADER_DELIVERY: &str = "X-Statehouse-Delivery";
pub const HEADER_TIMESTAMP: &str = "X-Statehouse-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Statehouse-Signature-256";

/// A workspace's webhook. The signing secret is kept sealed (it must be recoverable to sign).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    pub id: String,
    #[serde(skip)]
    pub workspace_id: String,
    pub url: String,
    /// Event kinds, prefixes (`lock.*`) or `*`; see [`crate::events::parse_filter`].
    pub events: Vec<String>,
    pub enabled: bool,
    pub description: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(skip)]
    pub secret: SealedBody,
}

/// Where a webhook's secret is bound when sealed.
pub fn secret_binding<'a>(workspace_id: &'a str, webhook_id: &'a str) -> Binding<'a> {
    crate::sealed::SealedKind::Webhook.binding(workspace_id, webhook_id)
}

/// A webhook signing secret: shown once when created, then only kept sealed.
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn generate() -> Self {
        WebhookSecret(random_secret("whsec_"))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        String::from_utf8(bytes)
            .map(WebhookSecret)
            .map_err(|_| Error::Internal("stored webhook secret is not text".into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| Error::Internal("HMAC key rejected".into()))?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Checks a webhook URL: absolute `http` or `https` with a host, no credentials in it.
pub fn validate_url(raw: &str) -> Result<String> {
    let raw = raw.trim();
    let bad = |why: &str| Error::BadRequest(format!("invalid webhook URL {raw:?}: {why}"));
    if raw.len() > MAX_URL {
        return Err(bad("longer than 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("only http:// and https:// URLs are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials in the URL would be stored in clear; receivers authenticate requests by their signature",
        ));
    }
    if url.fragment().is_some() {
        return Err(bad("a #fragment is never sent; remove it"));
    }
    Ok(url.to_string())
}

/// The JSON a receiver gets for an event (also what redeliveries resend).
pub fn event_body(event: &Event) -> String {
    serde_json::json!({
        "event": event.kind,
        "seq": event.seq,
        "time": event.at.to_rfc3339(),
        "workspace": event.workspace,
        "subject": event.subject,
        "actor": event.actor,
        "payload": event.payload,
    })
    .to_string()
}

/// When to try again after `attempts` failed attempts; `None`: give up.
pub fn next_attempt_after(attempts: i64, now: Timestamp) -> Option<Timestamp> {
    if attempts >= MAX_ATTEMPTS {
        return None;
    }
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let delay = FIRST_RETRY_MILLIS
        .saturating_mul(1i64 << doublings)
        .min(MAX_RETRY_MILLIS);
    Some(now.plus_millis(delay))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Every attempt failed; redeliver to try again.
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(Error::Internal(format!(
                "stored delivery status {other:?} is unknown"
            ))),
        }
    }
}

/// One event (or ping) to send to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub id: String,
    pub webhook_id: String,
    /// The event's `seq`; `None` for pings.
    pub event_seq: Option<i64>,
    pub kind: String,
    pub created_at: Timestamp,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<Timestamp>,
    /// Set on a redelivery: the delivery it repeats.
    pub redelivery_of: Option<String>,
    #[serde(skip)]
    pub body: String,
}

impl Delivery {
    /// A new pending delivery, due at once.
    pub fn new(
        webhook_id: &str,
        event_seq: Option<i64>,
        kind: &str,
        body: String,
        at: Timestamp,
    ) -> Self {
        Delivery {
            id: crate::service::new_id(),
            webhook_id: webhook_id.to_owned(),
            event_seq,
            kind: kind.to_owned(),
            created_at: at,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(at),
            last_status_code: None,
            last_error: None,
            delivered_at: None,
            redelivery_of: None,
            body,
        }
    }
}

/// One attempt to deliver, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryAttempt {
    pub attempt: i64,
    pub at: Timestamp,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery a worker claimed, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: Delivery,
    pub workspace_id: String,
    pub url: String,
    pub secret: SealedBody,
    /// Identifies this claim; finishing requires it (a claim that expired and was taken over
    /// cannot be finished by the first worker).
    pub lease_owner: String,
}

/// The result of an attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptResult {
    pub delivery_id: String,
    pub lease_owner: String,
    pub attempt: DeliveryAttempt,
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Timestamp>,
}

/// A POST to send.
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub timeout: Duration,
}

/// What came back from a POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOutcome {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Why no (successful) response arrived: connection refused, timeout, …
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// Sends webhook POSTs (reqwest in the server; tests may use anything).
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    async fn post(&self, request: OutgoingRequest) -> TransportOutcome;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // RFC 4231 test case 2 ("Jefe"), message "what do ya want for nothing?" split at the dot.
        let sig = signature("Jefe", "what do ya want for nothing?", b"").ok();
        let expected_of_full = {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap_or_else(|_| unreachable!());
            mac.update(b"what do ya want for nothing?.");
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        assert_eq!(sig, Some(expected_of_full));
        let a = signature("s", "1", b"{}").ok();
        assert_ne!(a, signature("s", "2", b"{}").ok());
        assert_ne!(a, signature("t", "1", b"{}").ok());
    }

    #[test]
    fn rfc_4231_vector() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap_or_else(|_| unreachable!());
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            validate_url(" https://hooks.example.com/x?a=1 ")
                .ok()
                .as_deref(),
            Some("https://hooks.example.com/x?a=1")
        );
        assert!(validate_url("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "",
            "hooks.example.com",
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "http://",
        ] {
            assert!(
                matches!(validate_url(bad), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
        assert!(validate_url(&format!("https://e.com/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_then_gives_up() {
        let t0 = Timestamp(0);
        let delays: Vec<i64> = (1..MAX_ATTEMPTS)
            .filter_map(|n| next_attempt_after(n, t0).map(|t| t.millis()))
            .collect();
        let minutes: Vec<i64> = delays.iter().map(|d| d / 60_000).collect();
        assert_eq!(minutes, [3, 6, 12, 24, 48, 96, 192, 384, 720]);
        let total_hours = delays.iter().sum::<i64>() / 3_600_000;
        assert!((20..=30).contains(&total_hours), "{total_hours} h");
        assert_eq!(next_attempt_after(MAX_ATTEMPTS, t0), None);
    }

    #[test]
    fn secrets_are_random_and_hidden() {
        let a = WebhookSecret::generate();
        assert!(a.expose().starts_with("whsec_"));
        assert_ne!(a.expose(), WebhookSecret::generate().expose());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
