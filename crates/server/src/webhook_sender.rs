//! Sends webhook deliveries over HTTP(S), and the background loops of a server: the delivery
//! worker and the retention of audit entries and events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use statehouse_core::service::Services;
use statehouse_core::webhooks::{OutgoingRequest, TransportOutcome, WebhookTransport};
use statehouse_outbound::{HttpClient, OutboundPolicy, Purpose};
use tokio::sync::watch;

/// POSTs with reqwest (rustls) through the outbound policy for webhooks. Redirects are not
/// followed: a webhook URL names its receiver.
pub struct HttpTransport {
    client: HttpClient,
}

impl HttpTransport {
    pub fn new(policy: Arc<OutboundPolicy>) -> Result<Self, statehouse_core::Error> {
        let client = HttpClient::new(
            policy,
            Purpose::Webhooks,
            reqwest::Client::builder()
                .user_agent(concat!("statehouse-webhooks/", env!("CARGO_PKG_VERSION"))),
        )
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
        let failed = |error: String| TransportOutcome {
            status: None,
            error: Some(error),
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        };
        let url = match url::Url::parse(&request.url) {
            Ok(url) => url,
            Err(e) => return failed(format!("the URL is not valid: {e}")),
        };
        let mut builder = match self.client.request(reqwest::Method::POST, url.clone()) {
            Ok(builder) => builder,
            Err(refusal) => return failed(refusal.to_string()),
        };
        builder = builder
            .timeout(request.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        match builder.body(request.body).send().await {
            // The status only: the receiver's body is never kept or shown.
            Ok(response) => TransportOutcome {
                status: Some(response.status().as_u16()),
                error: None,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            },
            Err(e) => failed(self.client.describe_failure(&url, &e)),
        }
    }
}

/// Deliveries claimed per round.
const DELIVERY_BATCH: i64 = 32;
/// How often the worker looks for due deliveries when there was nothing to do.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// Sends due webhook deliveries until `stop` turns true. Wakes at once when this process
/// stores an event while a webhook is enabled (an event costs no query when none is), and
/// otherwise polls (retries, other replicas' events).
pub async fn run_webhook_worker(
    services: Services,
    transport: impl WebhookTransport,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = services.subscribe_events();
    let mut due = true;
    loop {
        if *stop.borrow() {
            return;
        }
        if due {
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
        }
        due = tokio::select! {
            _ = stop.changed() => false,
            _ = events.recv() => services.webhooks_enabled().await.unwrap_or(true),
            _ = tokio::time::sleep(DELIVERY_POLL) => true,
        };
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
