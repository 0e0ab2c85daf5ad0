//! `GET /metrics` in the Prometheus text format.
//!
//! Two kinds of figures (see ARCHITECTURE.md):
//! - counters and histograms of this process (requests, state writes, lock conflicts, webhook
//!   and notification attempts, target errors, statement latency), recorded through the
//!   `metrics` facade into the `metrics-exporter-prometheus` recorder [`install`]s;
//! - gauges about the whole store (locks, audit entries not sealed, queues, each database's
//!   backups) read from the store when scraped, at most every few seconds ([`gauges`]), so that
//!   replicas sharing one PostgreSQL all report the truth; and this process's pool and
//!   resources ([`process`]).
//!
//! Labels are bounded: requests by route template (never the raw path), S3 requests by
//! operation name, databases and targets by name (admins configure them), states only when
//! `metrics.state_labels` is on.

mod gauges;
pub mod http;
mod process;
mod text;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};
use statehouse_backup::service::BackupService;
use statehouse_core::metrics::names;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Latency buckets (seconds): from a cached read (sub-millisecond) to a large state upload.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process's recorder, installed once ([`install`]).
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Whether this process records metrics ([`install`] ran): request tracking skips its label
/// work when not.
pub fn recording() -> bool {
    HANDLE.get().is_some()
}

/// Installs the Prometheus recorder as the process's `metrics` recorder (once; later calls
/// return the same handle) and describes every metric. Until this runs, the facade's calls
/// cost next to nothing and record nothing (CLI commands never install it).
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new();
    let builder = [
        names::HTTP_REQUEST_SECONDS,
        names::S3_REQUEST_SECONDS,
        names::STORE_QUERY_SECONDS,
    ]
    .into_iter()
    .try_fold(builder, |b, name| {
        b.set_buckets_for_metric(Matcher::Full(name.to_owned()), LATENCY_BUCKETS)
    })
    .map_err(|e| format!("metrics buckets: {e}"))?;
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    // A race with another caller (tests) leaves the first recorder installed; its handle wins.
    if ::metrics::set_global_recorder(recorder).is_err() {
        return HANDLE
            .get()
            .cloned()
            .ok_or_else(|| "another metrics recorder is installed".to_owned());
    }
    let handle = HANDLE.get_or_init(|| handle).clone();
    describe();
    zero();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP_EVERY);
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Counters start at zero, so that `rate()` and `increase()` see their first event (and the
/// shipped rules and dashboard find every series before anything happened).
fn zero() {
    for name in [
        names::STATE_WRITES,
        names::STATE_READS,
        names::LOCKS_ACQUIRED,
        names::LOCK_CONFLICTS,
        names::WEBHOOK_ATTEMPTS,
        names::WEBHOOK_FAILURES,
    ] {
        ::metrics::counter!(name).absolute(0);
    }
    for reason in statehouse_core::metrics::REFUSAL_REASONS {
        ::metrics::counter!(names::STATE_WRITES_REFUSED, "reason" => reason).absolute(0);
        ::metrics::counter!(names::STATE_READS_REFUSED, "reason" => reason).absolute(0);
    }
    for forced in ["false", "true"] {
        ::metrics::counter!(names::LOCKS_RELEASED, "forced" => forced).absolute(0);
    }
    ::metrics::gauge!(names::NOTIFICATIONS_QUEUED).increment(0.0);
}

/// `# HELP` texts of the metrics the recorder holds.
fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status"
    );
    describe_histogram!(
        names::HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request (until the response starts), by route template, method and status"
    );
    describe_counter!(
        names::S3_REQUESTS,
        "S3 requests answered, by operation and status"
    );
    describe_histogram!(
        names::S3_REQUEST_SECONDS,
        Unit::Seconds,
        "Time to answer an S3 request, by operation and status"
    );
    describe_counter!(
        names::STATE_WRITES,
        "State writes accepted (Terraform and Pulumi; identical writes included)"
    );
    describe_counter!(
        names::STATE_WRITES_REFUSED,
        "State writes refused, by reason"
    );
    describe_counter!(names::STATE_READS, "State reads served");
    describe_counter!(names::STATE_READS_REFUSED, "State reads refused, by reason");
    describe_counter!(
        names::LOCKS_ACQUIRED,
        "Locks taken (a retried LOCK by the holder included)"
    );
    describe_counter!(names::LOCKS_RELEASED, "Locks released, by whether forced");
    describe_counter!(
        names::LOCK_CONFLICTS,
        "LOCKs refused because another client holds the lock"
    );
    describe_counter!(
        names::WEBHOOK_ATTEMPTS,
        "Webhook delivery attempts made by this process"
    );
    describe_counter!(
        names::WEBHOOK_FAILURES,
        "Webhook delivery attempts that failed"
    );
    describe_counter!(
        names::NOTIFICATIONS_SENT,
        "Notifications sent, by notifier kind"
    );
    describe_counter!(
        names::NOTIFICATION_FAILURES,
        "Notification attempts that failed, by notifier kind"
    );
    describe_counter!(
        names::NOTIFICATIONS_UNDELIVERED,
        "Notifications given up on after every retry, by notifier kind"
    );
    describe_gauge!(
        names::NOTIFICATIONS_QUEUED,
        "Notifications waiting to be sent or retried in this process"
    );
    describe_counter!(
        names::TARGET_ERRORS,
        "Failed operations on a backup storage target, by target and operation"
    );
    describe_histogram!(
        names::STORE_QUERY_SECONDS,
        Unit::Seconds,
        "Time one database statement takes"
    );
    describe_counter!(
        names::STORE_HOST_SWITCHES,
        "Times this process moved a PostgreSQL pool to another host of its URL (a failover), by pool (primary, replica)"
    );
    describe_counter!(
        names::STORE_LAG_TOLERANT_READS,
        "Reads that tolerate lag (listings, search, store gauges), by where they were served (replica, primary)"
    );
}

/// Who may scrape, and what a scrape adds to the recorder's figures.
#[derive(Clone)]
pub struct MetricsEndpoint {
    handle: PrometheusHandle,
    backups: BackupService,
    /// SHA-256 of the bearer token scrapes must send (`metrics.token_file`); none: open.
    token_sha256: Option<Arc<[u8; 32]>>,
}

impl MetricsEndpoint {
    /// `token`: the secret scrapers must send as `Authorization: Bearer …`. Only its digest is
    /// kept.
    pub fn new(
        handle: PrometheusHandle,
        backups: BackupService,
        token: Option<Zeroizing<String>>,
    ) -> Self {
        MetricsEndpoint {
            handle,
            backups,
            token_sha256: token.map(|t| Arc::new(Sha256::digest(t.as_bytes()).into())),
        }
    }

    /// Compared in constant time (digests of equal length, whatever was sent).
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(expected) = &self.token_sha256 else {
            return true;
        };
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let sent: [u8; 32] = Sha256::digest(sent.trim().as_bytes()).into();
        bool::from(sent[..].ct_eq(&expected[..]))
    }
}

/// The `/metrics` route, to merge into a listener's application.
pub fn routes(endpoint: MetricsEndpoint) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::new(endpoint))
}

async fn scrape(State(endpoint): State<Arc<MetricsEndpoint>>, headers: HeaderMap) -> Response {
    if !endpoint.allows(&headers) {
        let mut response =
            (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"statehouse metrics\""),
        );
        return response;
    }
    let mut body = Vec::with_capacity(16 * 1024);
    if let Err(e) = endpoint.handle.render_to_write(&mut body) {
        tracing::warn!(error = %e, "rendering metrics failed");
    }
    let mut out = text::Exposition::new(body);
    gauges::write(&mut out, &endpoint.backups).await;
    process::write(&mut out);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        out.into_bytes(),
    )
        .into_response()
}
