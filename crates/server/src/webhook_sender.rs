//! Sends webhook deliveries over HTTP(S), and the background loops of a server: the delivery
//! worker and the retention of audit entries and events.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use statehouse_core::service::Services;
use statehouse_core::webhooks::{OutgoingRequest, TransportOutcome, WebhookTransport};
use tokio::sync::watch;

/// POSTs with reqwest (rustls). Redirects are not followed: a webhook URL names its receiver.
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    pub fn new() -> Result<Self, statehouse_core::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("statehouse-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                statehouse_core::Error::Config(format!("cannot build the webhook HTTP client: {e}"))
            })?;
        Ok(HttpTransport { client })
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(&self, request: OutgoingRequest) -> TransportOutcome {
        let started = Instant::now();
        let mut builder = self
            .client
            .post(&request.url)
            .timeout(request.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let result = builder.body(request.body).send().await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        match result {
            Ok(response) => TransportOutcome {
                status: Some(response.status().as_u16()),
                error: None,
                duration_ms,
            },
            Err(e) => TransportOutcome {
                status: None,
                error: Some(describe(e, request.timeout)),
                duration_ms,
            },
        }
    }
}

/// A one-line reason without the URL's query (it may carry tokens of the receiver's own).
fn describe(e: reqwest::Error, timeout: Duration) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        format!("no answer within {} s", timeout.as_secs())
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

/// Deliveries claimed per round.
const DELIVERY_BATCH: i64 = 32;
/// How often the worker looks for due deliveries when there was nothing to do.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// Sends due webhook deliveries until `stop` turns true. Wakes at once when this process
/// stores an event, otherwise polls (retries, other replicas' events).
pub async fn run_webhook_worker(
    services: Services,
    transport: impl WebhookTransport,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = services.subscribe_events();
    loop {
        if *stop.borrow() {
            return;
        }
        let sent = match services
            .deliver_due_webhooks(&transport, DELIVERY_BATCH)
            .await
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "webhook delivery round failed; retrying");
                0
            }
        };
        if sent > 0 {
            continue;
        }
        tokio::select! {
            _ = stop.changed() => {}
            _ = events.recv() => {}
            _ = tokio::time::sleep(DELIVERY_POLL) => {}
        }
    }
}

/// How long audit entries and events are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub audit: Duration,
    pub events: Duration,
}

/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(3_600);

/// Prunes old audit entries (keeping the chain verifiable) and events, once at start and then
/// hourly, until `stop` turns true. Ages are measured on the services' clock.
pub async fn run_retention(
    services: Services,
    retention: Retention,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match services.prune_audit(retention.audit).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "audit entries past retention removed"),
            Err(e) => tracing::warn!(error = %e, "audit retention failed; retrying later"),
        }
        match services.prune_events(retention.events).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "events past retention removed"),
            Err(e) => tracing::warn!(error = %e, "event retention failed; retrying later"),
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
        }
    }
}
