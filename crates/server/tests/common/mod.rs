//! An in-process server on 127.0.0.1:0 over a fresh SQLite store (or, with
//! [`TestServer::start_on`], a fresh PostgreSQL schema), for HTTP-level tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod engines;

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use md5::{Digest, Md5};
use statehouse_core::access::Role;
use statehouse_core::clock::{FakeClock, Timestamp};
use statehouse_core::crypto::{Cipher, KeyFile};
use statehouse_core::service::Services;
use statehouse_server::{AppState, ConnectionLimits, router};

pub struct TestServer {
    pub url: String,
    pub services: Services,
    /// The store under `services`, for tests that set up or check rows directly.
    pub store: Arc<dyn statehouse_core::store::Store>,
    pub backups: statehouse_backup::service::BackupService,
    pub clock: Arc<FakeClock>,
    pub dir: tempfile::TempDir,
    pub client: reqwest::Client,
    /// Kept so the server runs until the test ends (dropping it would stop the server).
    _stop: tokio::sync::watch::Sender<bool>,
    /// Keeps the store's database until the server goes.
    pub db: engines::Database,
}

pub const MAX_BYTES: usize = 1024 * 1024;

/// The outbound policy the test server runs with, allowed explicitly as an operator would in
/// `[outbound]`: its receivers, databases and storage servers listen on this host, and local
/// targets live in temporary directories.
pub fn local_outbound() -> Arc<statehouse_outbound::OutboundPolicy> {
    Arc::new(
        statehouse_outbound::OutboundPolicy::default()
            .allowing_loopback()
            .with_local_roots(vec![std::env::temp_dir()]),
    )
}
/// The password test users get.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_on(engines::Engine::Sqlite).await
    }

    pub async fn start_on(engine: engines::Engine) -> TestServer {
        Self::start_with_on(
            engine,
            ConnectionLimits::default(),
            MAX_BYTES,
            local_outbound(),
        )
        .await
    }

    /// A SQLite server with these connection limits and largest state body.
    pub async fn start_with(limits: ConnectionLimits, max_state_bytes: usize) -> TestServer {
        Self::start_with_on(
            engines::Engine::Sqlite,
            limits,
            max_state_bytes,
            local_outbound(),
        )
        .await
    }

    /// A SQLite server whose backups, notifiers (and webhook transport, when a test builds one)
    /// obey `outbound`.
    pub async fn start_with_outbound(
        outbound: Arc<statehouse_outbound::OutboundPolicy>,
    ) -> TestServer {
        Self::start_with_on(
            engines::Engine::Sqlite,
            ConnectionLimits::default(),
            MAX_BYTES,
            outbound,
        )
        .await
    }

    async fn start_with_on(
        engine: engines::Engine,
        limits: ConnectionLimits,
        max_state_bytes: usize,
        outbound: Arc<statehouse_outbound::OutboundPolicy>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let (store, db) = engine.open(dir.path()).await;
        let key_file = KeyFile::new(dir.path().join("master.key"));
        key_file.load_or_create().unwrap();
        let clock = Arc::new(FakeClock::new(Timestamp(1_700_000_000_000)));
        let services = Services::new(
            store.clone(),
            Arc::new(Cipher::from_file(key_file).unwrap()),
            clock.clone(),
        );
        services.verify_master_keys().await.unwrap();
        services.ensure_default_workspace().await.unwrap();
        services.create_workspace("other").await.unwrap();
        let backups = statehouse_backup::service::BackupService::new(
            services.clone(),
            statehouse_backup::service::BackupOptions {
                outbound,
                ..Default::default()
            },
        )
        .unwrap();
        let app = router(AppState {
            services: services.clone(),
            backups: backups.clone(),
            max_state_bytes,
            oidc: None,
            s3_endpoint: None,
            s3_tls: false,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(statehouse_server::serve(
            listener,
            app,
            limits,
            None,
            Default::default(),
            stopped,
        ));
        TestServer {
            url,
            services,
            store,
            backups,
            clock,
            dir,
            client: reqwest::Client::new(),
            _stop: stop,
            db,
        }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("db.sqlite")
    }

    pub async fn token(&self, workspace: Option<&str>, role: Role) -> String {
        let (_, secret) = self
            .services
            .create_token(workspace, role, &format!("{workspace:?}-{role}"), None)
            .await
            .unwrap();
        secret.expose().to_owned()
    }

    /// A user with a password, its roles given as (workspace, role).
    pub async fn user(
        &self,
        name: &str,
        roles: &[(&str, Role)],
    ) -> statehouse_core::accounts::User {
        let op = statehouse_core::access::Principal::local_operator();
        let user = self
            .services
            .create_user(&op, name, Some(PASSWORD), false)
            .await
            .unwrap();
        for (ws, role) in roles {
            self.services
                .set_member(&op, ws, name, *role)
                .await
                .unwrap();
        }
        user
    }

    /// A user token of `user`, optionally narrowed to a workspace and/or capped at a role.
    pub async fn user_token(
        &self,
        user: &str,
        workspace: Option<&str>,
        cap: Option<Role>,
    ) -> String {
        let op = statehouse_core::access::Principal::local_operator();
        let (_, secret) = self
            .services
            .create_token_as(
                &op,
                statehouse_core::service::TokenRequest {
                    name: format!("{user}-{workspace:?}-{cap:?}"),
                    owner: statehouse_core::service::TokenOwner::User(user.into()),
                    workspace: workspace.map(str::to_owned),
                    role: cap,
                    expires_in_millis: None,
                },
            )
            .await
            .unwrap();
        secret.expose().to_owned()
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("{}/api/v1{}", self.url, path)
    }

    pub fn addr(&self, path: &str) -> String {
        format!("{}/tf/{}", self.url, path)
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&[u8]>,
    ) -> (u16, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, self.addr(path));
        if let Some(t) = token {
            req = req.basic_auth("terraform", Some(t));
        }
        if let Some(b) = body {
            req = req.header("Content-MD5", content_md5(b)).body(b.to_vec());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    pub async fn versions(&self, ws: &str, name: &str) -> usize {
        let ws = self.store.workspace_by_name(ws).await.unwrap().unwrap();
        match self.store.state(&ws.id, name).await.unwrap() {
            Some(s) => self
                .store
                .list_versions(&s.id, None, i64::MAX)
                .await
                .unwrap()
                .len(),
            None => 0,
        }
    }
}

impl TestServer {
    /// Calls the REST API (`path` below `/api/v1`), returning status and JSON body (`Null`
    /// for empty bodies).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .client
            .request(method, format!("{}/api/v1{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, value)
    }
}

/// `len` lowercase letters without repeats a compressor could use: PostgreSQL compresses
/// index entries, so only such text shows what an overlong value does to an index.
pub fn incompressible(len: usize) -> String {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect()
}

pub fn content_md5(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(body))
}

pub fn state_json(serial: i64, lineage: &str, marker: &str) -> Vec<u8> {
    format!(
        r#"{{"version":4,"terraform_version":"1.0.3","serial":{serial},"lineage":"{lineage}","outputs":{{"m":{{"value":"{marker}","type":"string"}}}},"resources":[]}}"#
    )
    .into_bytes()
}

pub fn lock_info(id: &str, who: &str) -> Vec<u8> {
    format!(
        r#"{{"ID":"{id}","Operation":"OperationTypeApply","Info":"","Who":"{who}","Version":"1.0.3","Created":"2026-11-22T00:00:00Z","Path":""}}"#
    )
    .into_bytes()
}

impl TestServer {
    /// Sends a request with the path exactly as given (HTTP clients normalise `..` away),
    /// returning status and body.
    pub async fn raw(
        &self,
        method: &str,
        raw_path: &str,
        token: &str,
        body: &[u8],
    ) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.url.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
        let head = format!(
            "{method} {raw_path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response).to_string();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}
