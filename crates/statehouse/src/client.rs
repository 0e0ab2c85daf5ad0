//! The REST API as the CLI sees it: one [`Client`], two transports. **Remote** sends HTTP to
//! the server given by `--server` with the token from `--token`; **Local** hands the very same
//! requests to an in-process router over the locally configured store, authenticated as the
//! local operator with a per-process secret. Each command is written once, against
//! [`Client`], and behaves the same both ways.
//!
//! Adding a command for a new endpoint: add a variant to the command enum (or a new
//! `Subcommand` enum in its own module, wired in `main.rs` with `remote.client(&config)`), then
//! call `client.get(&path([...]), &query)` / `client.list(path, query, &paging)` (cursor pages)
//! / `client.json(Method::POST, path, &Query::new(), Some(&json!({...})))` and hand the answer
//! to [`crate::output::Output`] (`page`, `list`, `record`, `done`), which prints it as is with
//! `--json` or as a table through a row function over the server's view type (derive
//! `Deserialize` on it) or over `serde_json::Value`. Errors, exit codes, tokens and both
//! transports come for free.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Method;
use serde::de::DeserializeOwned;
use statehouse_backup::service::{BackupOptions, BackupService};
use statehouse_core::access::TokenSecret;
use statehouse_server::{AppState, router};
use tower::ServiceExt;

use crate::config::Config;
use crate::instance;

/// How long a remote connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a remote server may stay silent in the middle of an answer.
const READ_TIMEOUT: Duration = Duration::from_secs(120);
/// The same for long operations: a restore's final pg_restore steps (indexes, constraints)
/// send no progress for a while.
const PATIENT_READ_TIMEOUT: Duration = Duration::from_secs(3_600);

/// Characters left as they are in a path segment or query value; everything else is
/// percent-encoded (so `prod/network` is one segment: `prod%2Fnetwork`).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Where the API is: a server, or this process.
pub struct Client {
    transport: Transport,
}

enum Transport {
    Remote {
        http: reqwest::Client,
        /// For long operations (backups, restores) whose answer may pause longer than
        /// [`READ_TIMEOUT`] between progress lines.
        patient_http: reqwest::Client,
        /// Base URL without a trailing slash, e.g. `https://statehouse.example.com`.
        base: String,
        token: Option<String>,
    },
    Local {
        router: axum::Router,
        secret: TokenSecret,
        /// Kept to store the audit entries of this process's requests before it exits.
        services: statehouse_core::service::Services,
        /// Sends the notifications of the events this process stores (a local backup
        /// notifies like a server's), until [`Client::finish`].
        /// Boxed: a remote client would otherwise carry its size too.
        notifications: Box<LocalNotifications>,
    },
}

/// The notification sender of a local client.
struct LocalNotifications {
    backups: BackupService,
    stop: tokio::sync::watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How long a finishing local command waits for its notifications.
const NOTIFICATIONS_WAIT: Duration = Duration::from_secs(120);
/// A local command's failed notification is retried twice too, sooner than a server's (the
/// command waits for it).
const NOTIFICATION_RETRIES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

/// Why a request failed, for the exit status: the server refused it (4xx: fix the request or
/// the token), or the server could not be reached or failed (connection, TLS, 5xx: retry or
/// fix the server).
#[derive(Debug)]
pub enum ApiFailure {
    Refused(String),
    Unavailable(String),
}

impl fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiFailure::Refused(message) | ApiFailure::Unavailable(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for ApiFailure {}

/// A successful response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    body: ResponseBody,
}

enum ResponseBody {
    Remote(reqwest::Response),
    Local(Body),
}

impl Response {
    /// The next piece of the body; `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        match &mut self.body {
            ResponseBody::Remote(r) => Ok(r
                .chunk()
                .await
                .map_err(|e| ApiFailure::Unavailable(describe_transport_error(&e)))?),
            ResponseBody::Local(body) => loop {
                match body.frame().await {
                    None => return Ok(None),
                    Some(Err(e)) => return Err(anyhow::anyhow!("reading the response: {e}")),
                    Some(Ok(frame)) => {
                        if let Ok(data) = frame.into_data() {
                            return Ok(Some(data));
                        }
                    }
                }
            },
        }
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }
}

/// Builds an API path from raw segments, each percent-encoded: `path(["workspaces", ws,
/// "states", name])` → `/workspaces/default/states/prod%2Fnetwork`.
pub fn path<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    segments
        .into_iter()
        .map(|s| format!("/{}", utf8_percent_encode(s, UNRESERVED)))
        .collect()
}

/// Query parameters; `None` values are left out.
#[derive(Default, Clone)]
pub struct Query(Vec<(&'static str, String)>);

impl Query {
    pub fn new() -> Self {
        Query::default()
    }

    pub fn with(mut self, key: &'static str, value: Option<impl ToString>) -> Self {
        if let Some(v) = value {
            self.0.push((key, v.to_string()));
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn render(&self) -> String {
        let pairs: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, UNRESERVED)))
            .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }
}

/// Which part of a paged listing to fetch.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Paging {
    /// Items per page, 1–1000 (server default 100).
    #[arg(long)]
    pub limit: Option<i64>,
    /// Fetch every page (follows `next_cursor`).
    #[arg(long, conflicts_with = "cursor")]
    pub all: bool,
    /// Continue a listing where a previous page ended (its `next_cursor`).
    #[arg(long)]
    pub cursor: Option<String>,
}

impl Client {
    /// The client for these global options: remote when a server is given, else local.
    pub async fn connect(
        config: &Config,
        server: Option<&str>,
        token: Option<&str>,
    ) -> Result<Client> {
        match server {
            Some(server) => Client::remote(server, token),
            None => Client::local(config).await,
        }
    }

    /// Talks to the server at `server` (`http://…` or `https://…`, optionally with a path
    /// prefix when behind a proxy), sending `token` as a Bearer token.
    pub fn remote(server: &str, token: Option<&str>) -> Result<Client> {
        let url = reqwest::Url::parse(server.trim()).map_err(|e| {
            anyhow::anyhow!(
                "--server / STATEHOUSE_SERVER {server:?} is not a URL ({e}); write it like https://statehouse.example.com"
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            anyhow::bail!(
                "--server / STATEHOUSE_SERVER {server:?} must be an http:// or https:// URL with a host, e.g. https://statehouse.example.com"
            );
        }
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        if token.is_some() && url.scheme() == "http" && !is_loopback(&url) {
            errln!(
                "warning: the token goes unencrypted over http:// to {}; use https:// outside a trusted network",
                url.host_str().unwrap_or_default()
            );
        }
        let http_client = |read_timeout| {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .read_timeout(read_timeout)
                .tcp_keepalive(Duration::from_secs(30))
                .user_agent(concat!("statehouse-cli/", env!("CARGO_PKG_VERSION")))
                .build()
                .context("cannot set up the HTTP client")
        };
        Ok(Client {
            transport: Transport::Remote {
                http: http_client(READ_TIMEOUT)?,
                patient_http: http_client(PATIENT_READ_TIMEOUT)?,
                // People paste the API's address too; requests add `/api/v1` themselves.
                base: url
                    .as_str()
                    .trim_end_matches('/')
                    .trim_end_matches("/api/v1")
                    .to_owned(),
                token,
            },
        })
    }

    /// Serves requests in this process over the configured store, as the local operator
    /// (whoever may read the data directory and master key may do everything anyway).
    pub async fn local(config: &Config) -> Result<Client> {
        let instance = instance::open(config, instance::Access::Existing).await?;
        let mut services = instance.services;
        let secret = TokenSecret::generate();
        services.trust_operator_secret(&secret);
        let backups = BackupService::new(
            services.clone(),
            BackupOptions {
                outbound: config.outbound_policy(),
                notification_retries: NOTIFICATION_RETRIES.to_vec(),
                ..BackupOptions::default()
            },
        )?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = backups.start_notifications(stopped);
        let router = router(AppState {
            services: services.clone(),
            backups: backups.clone(),
            max_state_bytes: usize::try_from(config.max_state_bytes).unwrap_or(usize::MAX),
            oidc: None,
            s3_endpoint: None,
            s3_tls: false,
        });
        Ok(Client {
            transport: Transport::Local {
                router,
                secret,
                services,
                notifications: Box::new(LocalNotifications {
                    backups,
                    stop,
                    task: std::sync::Mutex::new(Some(task)),
                }),
            },
        })
    }

    /// Stores the audit entries and events this process queued and sends the notifications
    /// of those events (local mode); call before exiting.
    pub async fn finish(&self) {
        if let Transport::Local {
            services,
            notifications,
            ..
        } = &self.transport
        {
            services.flush_journal().await;
            // Every stored event has been handed to the sender by now: stop it once it has
            // offered them all, then wait for the sending.
            let _ = notifications.stop.send(true);
            let task = notifications.task.lock().ok().and_then(|mut t| t.take());
            let sent = async {
                if let Some(task) = task {
                    let _ = task.await;
                }
                notifications.backups.wait_idle().await;
            };
            if tokio::time::timeout(NOTIFICATIONS_WAIT, sent)
                .await
                .is_err()
            {
                errln!(
                    "warning: notifications were still being sent after {}s; some may not have \
                     been delivered (see `statehouse notifier test`)",
                    NOTIFICATIONS_WAIT.as_secs()
                );
            }
            for failed in notifications.backups.take_undelivered() {
                errln!(
                    "warning: a notification was not delivered: {failed} (check the notifier \
                     with `statehouse notifier test`)"
                );
            }
        }
    }

    /// Sends a request to `/api/v1{path}`; a JSON `body` is sent as such. Error statuses come
    /// back as [`ApiFailure`] with the server's message.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Option<&serde_json::Value>,
    ) -> Result<Response> {
        self.send_accepting(method, path, query, body, None).await
    }

    /// Like [`Client::send`], asking for the `accept` media type (e.g. NDJSON progress lines
    /// of a long operation, which may pause longer between lines than other answers).
    pub async fn send_accepting(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Option<&serde_json::Value>,
        accept: Option<&str>,
    ) -> Result<Response> {
        let target = format!("/api/v1{path}{}", query.render());
        let body = body.map(serde_json::to_vec).transpose()?;
        let response = match &self.transport {
            Transport::Remote {
                http,
                patient_http,
                base,
                token,
            } => {
                let url = format!("{base}{target}");
                let client = if accept.is_some() { patient_http } else { http };
                let mut request = client.request(method, &url);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if let Some(accept) = accept {
                    request = request.header(reqwest::header::ACCEPT, accept);
                }
                if let Some(body) = body {
                    request = request
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body);
                }
                let response = request.send().await.map_err(|e| {
                    ApiFailure::Unavailable(format!(
                        "cannot reach the statehouse server at {base}: {}",
                        describe_transport_error(&e)
                    ))
                })?;
                Response {
                    status: response.status().as_u16(),
                    headers: response.headers().clone(),
                    body: ResponseBody::Remote(response),
                }
            }
            Transport::Local { router, secret, .. } => {
                let mut request = axum::http::Request::builder()
                    .method(method.as_str())
                    .uri(&target)
                    .header(
                        axum::http::header::AUTHORIZATION,
                        format!("Bearer {}", secret.expose()),
                    );
                if body.is_some() {
                    request = request.header(axum::http::header::CONTENT_TYPE, "application/json");
                }
                if let Some(accept) = accept {
                    request = request.header(axum::http::header::ACCEPT, accept);
                }
                let request = request
                    .body(body.map(Body::from).unwrap_or_else(Body::empty))
                    .with_context(|| format!("building the request for {target}"))?;
                let response = router
                    .clone()
                    .oneshot(request)
                    .await
                    .map_err(|e| anyhow::anyhow!("in-process request failed: {e}"))?;
                let (parts, body) = response.into_parts();
                Response {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body: ResponseBody::Local(body),
                }
            }
        };
        if response.status >= 400 {
            return Err(self.failure(response).await.into());
        }
        Ok(response)
    }

    /// The error for a failed response, with the server's message and a hint where one helps.
    async fn failure(&self, response: Response) -> ApiFailure {
        let status = response.status;
        let text = response.bytes().await.unwrap_or_default();
        let message = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
        let remote = match &self.transport {
            Transport::Remote { base, token, .. } => Some((base.as_str(), token.is_some())),
            Transport::Local { .. } => None,
        };
        let message = match (message, remote) {
            (_, Some((_, false))) if status == 401 => {
                "no token: pass --token or set STATEHOUSE_TOKEN (an admin creates one with \
                 `statehouse token create`)"
                    .to_owned()
            }
            (Some(m), Some(_)) if status == 401 => {
                format!("the server refused the token: {m} (check --token / STATEHOUSE_TOKEN)")
            }
            (Some(m), _) => m,
            (None, Some((base, _))) => format!(
                "{base} answered {status} without a statehouse error; is --server the address of a statehouse server?"
            ),
            (None, None) => format!("the request failed with status {status}"),
        };
        if status >= 500 {
            ApiFailure::Unavailable(message)
        } else {
            ApiFailure::Refused(message)
        }
    }

    /// `GET` → JSON.
    pub async fn get(&self, path: &str, query: &Query) -> Result<serde_json::Value> {
        self.json(Method::GET, path, query, None).await
    }

    /// A request whose answer is JSON (`null` for an empty answer such as `204`).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let bytes = self.send(method, path, query, body).await?.bytes().await?;
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("the server's answer to {path} is not JSON"))
    }

    /// A paged listing (`{"items": [...], "next_cursor": …, …}`): one page (from
    /// `paging.cursor`), or with `paging.all` every page, joined into the last page's answer
    /// (whose `next_cursor` is then null). Other fields of the answer are kept.
    pub async fn list(
        &self,
        path: &str,
        query: Query,
        paging: &Paging,
    ) -> Result<serde_json::Value> {
        let query = query.with("limit", paging.limit);
        let mut cursor = paging.cursor.clone();
        let mut items = Vec::new();
        loop {
            let page_query = query.clone().with("cursor", cursor.as_deref());
            let mut page = self.get(path, &page_query).await?;
            let Some(fields) = page.as_object_mut() else {
                anyhow::bail!("the server's answer to {path} is not a page of items");
            };
            if let Some(serde_json::Value::Array(more)) = fields.remove("items") {
                items.extend(more);
            }
            match fields.get("next_cursor").and_then(|c| c.as_str()) {
                Some(next) if paging.all => cursor = Some(next.to_owned()),
                _ => {
                    fields.insert("items".into(), serde_json::Value::Array(items));
                    return Ok(page);
                }
            }
        }
    }
}

impl Client {
    /// Every item of a paged listing (for commands that look one up).
    pub async fn list_all(&self, path: &str, query: Query) -> Result<Vec<serde_json::Value>> {
        let paging = Paging {
            limit: Some(1_000),
            all: true,
            cursor: None,
        };
        let mut page = self.list(path, query, &paging).await?;
        match page["items"].take() {
            serde_json::Value::Array(items) => Ok(items),
            _ => anyhow::bail!("the server's answer to {path} is not a page of items"),
        }
    }
}

/// Reads an API answer into the server's view type.
pub fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).context(
        "the server's answer has an unexpected shape (is the CLI much older or newer than the server?)",
    )
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A transport error as one line: what went wrong at the bottom, and what to check.
fn describe_transport_error(e: &reqwest::Error) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(source) = root.source() {
        root = source;
    }
    let cause = root.to_string();
    let lower = cause.to_lowercase();
    // Refused connections and failed name lookups end in plain I/O errors; the TLS layer
    // reports a failed handshake as invalid data.
    let tls_failed = e.url().is_some_and(|u| u.scheme() == "https")
        && e.is_connect()
        && root
            .downcast_ref::<std::io::Error>()
            .is_none_or(|io| innermost_io_kind(io) == std::io::ErrorKind::InvalidData);
    if tls_failed || lower.contains("certificate") || lower.contains("handshake") {
        format!(
            "TLS failed: {cause}; check that the server speaks HTTPS at this address (else use http://) \
             and that its certificate is valid for this host name and issued by a public certificate authority"
        )
    } else if e.is_timeout() {
        format!("no answer in time ({cause})")
    } else if e.is_connect() {
        format!("{cause}; is the server running, and is --server / STATEHOUSE_SERVER right?")
    } else {
        cause
    }
}

/// I/O errors wrap I/O errors; the innermost one says what happened.
fn innermost_io_kind(error: &std::io::Error) -> std::io::ErrorKind {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<std::io::Error>())
    {
        Some(inner) => innermost_io_kind(inner),
        None => error.kind(),
    }
}

/// The exit status for an error: 1 when a request was refused or input is wrong, 3 when the
/// server could not be reached or failed (worth retrying). Clap uses 2 for usage errors.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    match error.downcast_ref::<ApiFailure>() {
        Some(ApiFailure::Unavailable(_)) => 3,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_encode_each_segment() {
        assert_eq!(
            path(["workspaces", "default", "states", "prod/net work"]),
            "/workspaces/default/states/prod%2Fnet%20work"
        );
        assert_eq!(path(["a-b_c.d~e"]), "/a-b_c.d~e");
    }

    #[test]
    fn queries_leave_out_absent_values() {
        let q = Query::new()
            .with("prefix", Some("env/"))
            .with("locked", None::<bool>)
            .with("limit", Some(5));
        assert_eq!(q.render(), "?prefix=env%2F&limit=5");
        assert_eq!(Query::new().render(), "");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for (url, local) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost", true),
            ("http://[::1]:1", true),
            ("http://10.0.0.1", false),
            ("http://statehouse.example.com", false),
        ] {
            assert_eq!(
                is_loopback(&reqwest::Url::parse(url).unwrap()),
                local,
                "{url}"
            );
        }
    }

    #[test]
    fn server_urls_are_checked() {
        assert!(Client::remote("https://statehouse.example.com/", None).is_ok());
        let pasted = Client::remote("https://statehouse.example.com/api/v1/", None).unwrap();
        assert!(matches!(
            pasted.transport,
            Transport::Remote { ref base, .. } if base == "https://statehouse.example.com"
        ));
        for bad in ["statehouse.example.com", "ftp://x", "http://", ""] {
            assert!(Client::remote(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn exit_codes_tell_refusals_from_outages() {
        let refused = anyhow::Error::from(ApiFailure::Refused("no".into()));
        assert_eq!(exit_code(&refused), 1);
        let down = anyhow::Error::from(ApiFailure::Unavailable("down".into()));
        assert_eq!(exit_code(&down), 3);
        assert_eq!(exit_code(&anyhow::anyhow!("other")), 1);
    }
}
