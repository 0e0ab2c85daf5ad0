//! Local receivers for the notifier tests: an HTTP server that records requests and answers as
//! told, and a small SMTP server (see `smtp`).
#![allow(dead_code)] // each test binary uses a part

pub mod smtp;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use statehouse_core::clock::Timestamp;
use statehouse_notify::{Notification, Severity};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).expect("the body is UTF-8")
    }
}

#[derive(Clone)]
struct Behaviour {
    status: StatusCode,
    body: String,
    content_type: &'static str,
    hang: bool,
    requests: Arc<Mutex<Vec<Captured>>>,
}

/// A running receiver; `base` is `http://127.0.0.1:port`.
pub struct Receiver {
    pub base: String,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl Receiver {
    /// Answers every request with `status` and `body`.
    pub async fn answering(status: u16, body: &str) -> Receiver {
        Receiver::start(status, body, false).await
    }

    /// Accepts requests but never answers.
    pub async fn silent() -> Receiver {
        Receiver::start(200, "", true).await
    }

    async fn start(status: u16, body: &str, hang: bool) -> Receiver {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let content_type = if body.trim_start().starts_with('{') {
            "application/json"
        } else {
            "text/plain"
        };
        let behaviour = Behaviour {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.to_owned(),
            content_type,
            hang,
            requests: requests.clone(),
        };
        let app = Router::new().fallback(record).with_state(behaviour);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { base, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    /// The one request received.
    pub fn only(&self) -> Captured {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request, got {requests:?}");
        requests.into_iter().next().unwrap()
    }
}

async fn record(
    State(behaviour): State<Behaviour>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    behaviour.requests.lock().unwrap().push(Captured {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body,
    });
    if behaviour.hang {
        std::future::pending::<()>().await;
    }
    (
        behaviour.status,
        [("content-type", behaviour.content_type)],
        behaviour.body,
    )
        .into_response()
}

/// A port nothing listens on.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// The notifiers' client, with loopback allowed explicitly: the receivers listen on this host.
pub fn http_client() -> statehouse_notify::HttpClient {
    statehouse_notify::HttpClient::new(
        std::sync::Arc::new(statehouse_outbound::OutboundPolicy::default().allowing_loopback()),
        statehouse_outbound::Purpose::Notifiers,
        reqwest::Client::builder(),
    )
    .unwrap()
}

pub const SHORT: Duration = Duration::from_secs(5);

/// 2023-11-14T22:13:20Z
pub const AT: Timestamp = Timestamp(1_700_000_000_000);

/// A critical backup failure with every optional part set.
pub fn backup_failed() -> Notification {
    Notification {
        event: "backup.failed".to_owned(),
        severity: Severity::Critical,
        title: "Backup of billing failed".to_owned(),
        message: "pg_dump exited with status 1: connection refused. Check that the database is up."
            .to_owned(),
        workspace: "prod".to_owned(),
        database: Some("billing".to_owned()),
        at: AT,
        link: Some("https://statehouse.example.com/ui/backups/42".to_owned()),
        fields: vec![
            ("Duration".to_owned(), "12 s".to_owned()),
            ("Target".to_owned(), "s3-eu".to_owned()),
        ],
    }
}
