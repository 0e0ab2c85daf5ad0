//! Targets reached through OpenDAL: S3 (and R2, MinIO), Azure Blob, GCS, SFTP, WebDAV, FTP and
//! Google Drive.
//!
//! How each kind writes, so that an object is visible only once committed:
//! - S3, Azure Blob, GCS: multipart (block) uploads, cut by [`upload_plan`]; the object appears
//!   when the upload completes, an abort discards the parts.
//! - SFTP: streamed into `<name>.partial`, renamed to `<name>` on commit, deleted on abort.
//! - FTP: streamed; OpenDAL writes a temporary `<file>.<random>` in the root folder and renames
//!   it on close. FTP transfers cannot be abandoned without desynchronising the connection, so an
//!   abort finishes the transfer and deletes the object right away: a partial object is visible
//!   under its name for that moment, never with its sidecar (which marks a finished backup).
//! - WebDAV, Google Drive: OpenDAL uploads these in one request from one in-memory buffer, so the
//!   object is spooled to an (unlinked) temp file while the dump runs and read into memory for
//!   the upload at commit: memory ≈ object size, capped by [`SPOOLED_UPLOAD_LIMIT`].

use std::io::SeekFrom;
use std::sync::{Arc, Once};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator, services};
use statehouse_outbound::OutboundPolicy;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::OnceCell;

use super::explain::{Explainer, setup_details};
use super::spec::{KnownHostsStrategy, TargetSpec};
use super::transport::{http_transporter, pinned_host, url_host};
use super::writer::{OpendalSink, upload_plan};
use super::{
    BackupMetadata, BackupTarget, BackupUpload, ObjectReader, PROBE_FOLDER, check_object_name,
    decode_metadata, encode_metadata, probe_name, probe_payload, sidecar_name,
};
use crate::pipeline::BackupError;

/// The largest object WebDAV and Google Drive targets take: OpenDAL sends those in one request
/// from one in-memory buffer, so the whole object is in memory during its upload.
pub const SPOOLED_UPLOAD_LIMIT: u64 = 1024 * 1024 * 1024;
/// The whole storage test gives up after this long (a host that drops packets).
const PROBE_TIMEOUT: Duration = Duration::from_secs(45);
/// Read-side chunking of object stores: two 4 MiB ranges in flight.
const READ_CHUNK: usize = 4 * 1024 * 1024;
/// Streamed (SFTP, FTP) writes go out in pieces of this size.
const STREAM_CHUNK: usize = 1024 * 1024;

/// How a kind of target writes an object (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    Multipart,
    StreamThenRename,
    StreamServiceTemp,
    Spooled,
}

pub(crate) struct RemoteTarget {
    spec: TargetSpec,
    policy: Arc<OutboundPolicy>,
    /// Built on first use, when the service is about to be contacted: SFTP and FTP hosts are
    /// resolved and checked then.
    built: OnceCell<Built>,
    explainer: Arc<Explainer>,
    mode: WriteMode,
}

struct Built {
    op: Operator,
    /// The SFTP private key, written to a 0600 temp file for the `ssh` client; removed on drop.
    _key_file: Option<tempfile::TempPath>,
}

fn build_error(label: &str, e: &opendal::Error) -> BackupError {
    BackupError::Config(format!(
        "cannot set up the {label} target: {}",
        setup_details(e)
    ))
}

/// The folder inside the store as an OpenDAL root (`/a/b/`).
fn root_of(folder: Option<&str>) -> String {
    let inner = folder.unwrap_or("").trim_matches('/');
    if inner.is_empty() {
        "/".to_owned()
    } else {
        format!("/{inner}/")
    }
}

impl RemoteTarget {
    /// Prepares a validated, non-local spec; nothing is contacted (or resolved) yet.
    pub(crate) fn open(
        spec: &TargetSpec,
        policy: Arc<OutboundPolicy>,
    ) -> Result<RemoteTarget, BackupError> {
        let (label, mode) = match spec {
            TargetSpec::Local(_) => {
                return Err(BackupError::Config(
                    "a local directory target is not a remote target".to_owned(),
                ));
            }
            TargetSpec::S3(s) => (format!("S3 bucket {:?}", s.bucket), WriteMode::Multipart),
            TargetSpec::Azblob(s) => (
                format!("Azure Blob container {:?}", s.container),
                WriteMode::Multipart,
            ),
            TargetSpec::Gcs(s) => (format!("GCS bucket {:?}", s.bucket), WriteMode::Multipart),
            TargetSpec::Sftp(s) => (
                format!("SFTP server {}:{}", s.host, s.port),
                WriteMode::StreamThenRename,
            ),
            TargetSpec::Webdav(s) => (format!("WebDAV server {}", s.endpoint), WriteMode::Spooled),
            TargetSpec::Ftp(s) => (
                format!("FTP server {}", s.endpoint),
                WriteMode::StreamServiceTemp,
            ),
            TargetSpec::Gdrive(s) => (
                format!("Google Drive folder {:?}", s.root),
                WriteMode::Spooled,
            ),
        };
        Ok(RemoteTarget {
            spec: spec.clone(),
            policy,
            built: OnceCell::new(),
            explainer: Arc::new(Explainer::new(spec, label)),
            mode,
        })
    }

    /// The operator, built on first use.
    async fn op(&self) -> Result<&Operator, BackupError> {
        let built = self
            .built
            .get_or_try_init(|| build(&self.spec, &self.policy, &self.explainer.label))
            .await?;
        Ok(&built.op)
    }
}

/// Builds the operator, every request of it under the outbound policy (see
/// [`super::transport`]).
async fn build(
    spec: &TargetSpec,
    policy: &Arc<OutboundPolicy>,
    label: &str,
) -> Result<Built, BackupError> {
    // Registers OpenDAL's services; the HTTP client is ours (below).
    static INSTALL: Once = Once::new();
    INSTALL.call_once(opendal::install_default);
    let mut key_file = None;
    let mut google_endpoint = None;
    let op = match spec {
        TargetSpec::Local(_) => {
            return Err(BackupError::Config(
                "a local directory target is not a remote target".to_owned(),
            ));
        }
        TargetSpec::S3(s) => {
            let mut b = services::S3::default()
                .bucket(&s.bucket)
                .region(&s.region)
                .root(&root_of(s.prefix.as_deref()));
            if let Some(endpoint) = &s.endpoint {
                b = b.endpoint(endpoint);
            }
            if !s.path_style {
                b = b.enable_virtual_host_style();
            }
            if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
                // Explicit keys only: no fallback to whatever the server's environment holds.
                b = b
                    .access_key_id(id)
                    .secret_access_key(secret.expose())
                    .disable_config_load();
                if let Some(token) = &s.session_token {
                    b = b.session_token(token.expose());
                }
            }
            Operator::new(b)
        }
        TargetSpec::Azblob(s) => {
            let endpoint = s
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("https://{}.blob.core.windows.net", s.account_name));
            let mut b = services::Azblob::default()
                .container(&s.container)
                .account_name(&s.account_name)
                .endpoint(&endpoint)
                .root(&root_of(s.prefix.as_deref()));
            if let Some(key) = &s.account_key {
                b = b.account_key(key.expose());
            }
            if let Some(sas) = &s.sas_token {
                b = b.sas_token(sas.expose().trim_start_matches('?'));
            }
            Operator::new(b)
        }
        TargetSpec::Gcs(s) => {
            let mut b = services::Gcs::default()
                .bucket(&s.bucket)
                .root(&root_of(s.prefix.as_deref()));
            if let Some(endpoint) = &s.endpoint {
                b = b.endpoint(endpoint);
                google_endpoint = Some(endpoint.clone());
            }
            if let Some(credential) = &s.credential {
                let encoded = base64::engine::general_purpose::STANDARD.encode(credential.expose());
                b = b
                    .credential(&encoded)
                    .disable_config_load()
                    .disable_vm_metadata();
            }
            Operator::new(b)
        }
        TargetSpec::Sftp(s) => {
            // `ssh` resolves names itself: it gets the checked address. Its known_hosts
            // entries are therefore looked up under that address.
            let address = pinned_host(policy, &s.host, s.port).await?;
            let key = s.private_key.as_ref().map(|k| k.expose()).unwrap_or("");
            let path = write_key_file(key)?;
            let strategy = match s.known_hosts_strategy.unwrap_or(KnownHostsStrategy::Strict) {
                KnownHostsStrategy::Strict => "strict",
                KnownHostsStrategy::Add => "add",
                KnownHostsStrategy::Accept => "accept",
            };
            let b = services::Sftp::default()
                .endpoint(&format!("ssh://{}:{}", url_host(address), s.port))
                .user(&s.user)
                .key(&path.to_string_lossy())
                .known_hosts_strategy(strategy)
                .root(&s.root);
            key_file = Some(path);
            Operator::new(b)
        }
        TargetSpec::Webdav(s) => {
            let mut b = services::Webdav::default()
                .endpoint(&s.endpoint)
                .root(&root_of(s.root.as_deref()));
            if let (Some(user), Some(password)) = (&s.username, &s.password) {
                b = b.username(user).password(password.expose());
            }
            Operator::new(b)
        }
        TargetSpec::Ftp(s) => {
            let mut b = services::Ftp::default()
                .endpoint(&ftp_endpoint(policy, &s.endpoint).await?)
                .root(&root_of(s.root.as_deref()));
            if let Some(user) = &s.username {
                b = b.user(user);
            }
            if let Some(password) = &s.password {
                b = b.password(password.expose());
            }
            Operator::new(b)
        }
        TargetSpec::Gdrive(s) => {
            let mut b = services::Gdrive::default().root(&root_of(Some(&s.root)));
            if let Some(token) = &s.access_token {
                b = b.access_token(token.expose());
            }
            if let (Some(refresh), Some(id), Some(secret)) =
                (&s.refresh_token, &s.client_id, &s.client_secret)
            {
                b = b
                    .refresh_token(refresh.expose())
                    .client_id(id)
                    .client_secret(secret.expose());
            }
            google_endpoint = s.endpoint.clone();
            Operator::new(b)
        }
    }
    .map_err(|e| build_error(label, &e))?;
    let transport = http_transporter(policy, google_endpoint.as_deref())?;
    let op = op
        .layer(
            TimeoutLayer::new()
                .with_timeout(Duration::from_secs(120))
                .with_io_timeout(Duration::from_secs(600)),
        )
        .layer(
            RetryLayer::new()
                .with_max_times(3)
                .with_min_delay(Duration::from_millis(300))
                .with_jitter(),
        )
        .with_context(opendal::OperationContext::new().with_http_transport(transport));
    Ok(Built {
        op,
        _key_file: key_file,
    })
}

/// An FTP endpoint whose host is the checked address. With `ftps://` the name stays (the TLS
/// handshake verifies the server's certificate for it, so a second resolution answering
/// differently fails there) after the same check.
async fn ftp_endpoint(policy: &OutboundPolicy, endpoint: &str) -> Result<String, BackupError> {
    let url = url::Url::parse(endpoint)
        .map_err(|e| BackupError::Config(format!("the FTP endpoint is not a URL: {e}")))?;
    let host = url.host_str().unwrap_or_default();
    let port = url.port().unwrap_or(21);
    let address = pinned_host(policy, host, port).await?;
    Ok(if url.scheme() == "ftps" {
        endpoint.to_owned()
    } else {
        format!("ftp://{}:{port}", url_host(address))
    })
}

impl RemoteTarget {
    /// A failed read, look-up or delete.
    fn failure(&self, what: &str, e: &opendal::Error) -> BackupError {
        BackupError::Target(format!(
            "{what} on the {}: {}",
            self.explainer.label,
            self.explainer.explain(e, false)
        ))
    }

    /// A failed write.
    fn write_failure(&self, what: &str, e: &opendal::Error) -> BackupError {
        BackupError::Storage(format!(
            "{what} on the {}: {}",
            self.explainer.label,
            self.explainer.explain(e, true)
        ))
    }

    fn sink(&self, writer: opendal::Writer) -> OpendalSink {
        let explainer = self.explainer.clone();
        OpendalSink::new(writer, Arc::new(move |e| explainer.explain(e, true)))
    }
}

/// Writes an SSH private key into a fresh 0600 temp file, as `ssh -i` wants.
fn write_key_file(key: &str) -> Result<tempfile::TempPath, BackupError> {
    use std::io::Write;
    let io_error = |e: std::io::Error| {
        BackupError::Storage(format!("cannot write the SSH key to a temporary file: {e}"))
    };
    // tempfile creates files readable by their owner only.
    let mut file = tempfile::Builder::new()
        .prefix("statehouse-sftp-key-")
        .tempfile()
        .map_err(io_error)?;
    let mut text = key.trim().replace("\r\n", "\n");
    text.push('\n');
    file.write_all(text.as_bytes()).map_err(io_error)?;
    file.flush().map_err(io_error)?;
    Ok(file.into_temp_path())
}

#[async_trait]
impl BackupTarget for RemoteTarget {
    async fn begin(
        &self,
        name: &str,
        expected_size: Option<u64>,
    ) -> Result<Box<dyn BackupUpload>, BackupError> {
        check_object_name(name)?;
        let writing = |what: &str, path: &str| format!("cannot start writing {path} ({what})");
        let op = self.op().await?;
        let body = match self.mode {
            WriteMode::Multipart => {
                let plan = upload_plan(expected_size);
                let writer = op
                    .writer_with(name)
                    .chunk(plan.part_size)
                    .concurrent(plan.concurrency)
                    .await
                    .map_err(|e| self.write_failure(&writing("multipart", name), &e))?;
                Body::Stream(self.sink(writer))
            }
            WriteMode::StreamThenRename | WriteMode::StreamServiceTemp => {
                let path = self.upload_path(name);
                let writer = op
                    .writer_with(&path)
                    .chunk(STREAM_CHUNK)
                    .await
                    .map_err(|e| self.write_failure(&writing("stream", &path), &e))?;
                Body::Stream(self.sink(writer))
            }
            WriteMode::Spooled => {
                if let Some(expected) = expected_size.filter(|s| *s > SPOOLED_UPLOAD_LIMIT) {
                    return Err(spool_too_large(&self.explainer.label, expected));
                }
                let file = tempfile::tempfile().map_err(|e| {
                    BackupError::Storage(format!(
                        "cannot create a temporary file to stage the upload: {e}"
                    ))
                })?;
                Body::Spool(tokio::fs::File::from_std(file))
            }
        };
        Ok(Box::new(RemoteUpload {
            to: UploadTo {
                op: op.clone(),
                explainer: self.explainer.clone(),
                mode: self.mode,
                name: name.to_owned(),
            },
            body,
        }))
    }

    async fn open(&self, name: &str) -> Result<ObjectReader, BackupError> {
        check_object_name(name)?;
        let size = self.size(name).await?.ok_or_else(|| self.not_found(name))?;
        let op = self.op().await?;
        let reader = if self.mode == WriteMode::Multipart {
            op.reader_with(name).chunk(READ_CHUNK).concurrent(2).await
        } else {
            op.reader(name).await
        }
        .map_err(|e| self.failure(&format!("cannot read {name}"), &e))?;
        let stream = reader
            .into_bytes_stream(0..size)
            .await
            .map_err(|e| self.failure(&format!("cannot read {name}"), &e))?;
        Ok(Box::new(tokio_util::io::StreamReader::new(stream)))
    }

    async fn size(&self, name: &str) -> Result<Option<u64>, BackupError> {
        check_object_name(name)?;
        let op = self.op().await?;
        match op.stat(name).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.content_length())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failure(&format!("cannot look up {name}"), &e)),
        }
    }

    async fn read_metadata(&self, name: &str) -> Result<BackupMetadata, BackupError> {
        check_object_name(name)?;
        let op = self.op().await?;
        let sidecar = sidecar_name(name);
        match op.read(&sidecar).await {
            Ok(buffer) => decode_metadata(name, &buffer.to_vec()),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(BackupError::NotFound(format!(
                "the metadata file {sidecar} does not exist on the {}",
                self.explainer.label
            ))),
            Err(e) => Err(self.failure(&format!("cannot read {sidecar}"), &e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), BackupError> {
        check_object_name(name)?;
        let op = self.op().await?;
        for path in [name.to_owned(), sidecar_name(name)] {
            match op.delete(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(self.failure(&format!("cannot delete {path}"), &e)),
            }
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        let op = self.op().await?;
        match op.list(prefix).await {
            Ok(entries) => Ok(entries
                .into_iter()
                .filter(|e| e.metadata().is_file())
                .map(|e| e.path().to_owned())
                .collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(self.failure(&format!("cannot list {prefix}"), &e)),
        }
    }

    async fn probe(&self) -> Result<(), BackupError> {
        let name = probe_name();
        let payload = probe_payload(&name);
        let label = &self.explainer.label;
        let step = |step: &str, e: &opendal::Error, writing: bool| {
            BackupError::Target(format!(
                "the storage test of the {label} failed while {step}: {}",
                self.explainer.explain(e, writing)
            ))
        };
        let run = async {
            let op = self.op().await.map_err(|e| {
                BackupError::Target(format!("the storage test of the {label} failed: {e}"))
            })?;
            op.write(&name, payload.clone())
                .await
                .map_err(|e| step("writing a test object", &e, true))?;
            let read = op
                .read(&name)
                .await
                .map_err(|e| step("reading the test object back", &e, false));
            let deleted = op
                .delete(&name)
                .await
                .map_err(|e| step("deleting the test object", &e, false));
            if self.mode != WriteMode::Multipart {
                // File-like stores keep the (now empty) folder otherwise.
                let _ = op.delete(&format!("{PROBE_FOLDER}/")).await;
            }
            if read?.to_vec() != payload {
                return Err(BackupError::Target(format!(
                    "the storage test of the {label} failed: the test object read back differs from what was written"
                )));
            }
            deleted
        };
        tokio::time::timeout(PROBE_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                Err(BackupError::Target(format!(
                    "the storage test of the {label} did not finish within {} s: {}",
                    PROBE_TIMEOUT.as_secs(),
                    self.explainer.unreachable()
                )))
            })
    }
}

impl RemoteTarget {
    /// Where the bytes of `name` go while it is being written.
    fn upload_path(&self, name: &str) -> String {
        match self.mode {
            WriteMode::StreamThenRename => format!("{name}.partial"),
            _ => name.to_owned(),
        }
    }

    fn not_found(&self, name: &str) -> BackupError {
        BackupError::NotFound(format!(
            "backup object {name} does not exist on the {}",
            self.explainer.label
        ))
    }
}

fn spool_too_large(label: &str, size: u64) -> BackupError {
    BackupError::Storage(format!(
        "the backup ({} MiB) is larger than the {} MiB a {label} target takes (WebDAV and Google Drive uploads are held in memory); use an S3, Azure, GCS, SFTP or FTP target for large databases",
        size.div_ceil(1024 * 1024),
        SPOOLED_UPLOAD_LIMIT / (1024 * 1024)
    ))
}

enum Body {
    Stream(OpendalSink),
    Spool(tokio::fs::File),
    /// Committed or aborted: writes go nowhere.
    Done(tokio::io::Sink),
}

struct RemoteUpload {
    to: UploadTo,
    body: Body,
}

/// What an upload needs besides its body; `Sync`, unlike the body, so it can be borrowed
/// across awaits.
struct UploadTo {
    op: Operator,
    explainer: Arc<Explainer>,
    mode: WriteMode,
    name: String,
}

impl UploadTo {
    fn failure(&self, what: &str, e: &opendal::Error) -> BackupError {
        BackupError::Storage(format!(
            "{what} on the {}: {}",
            self.explainer.label,
            self.explainer.explain(e, true)
        ))
    }

    /// Uploads the spooled object in one request (see [`SPOOLED_UPLOAD_LIMIT`]).
    async fn upload_spool(&self, file: &mut tokio::fs::File) -> Result<(), BackupError> {
        let io = |e: std::io::Error| {
            BackupError::Storage(format!("cannot read back the staged upload: {e}"))
        };
        file.flush().await.map_err(io)?;
        let size = file.seek(SeekFrom::End(0)).await.map_err(io)?;
        if size > SPOOLED_UPLOAD_LIMIT {
            return Err(spool_too_large(&self.explainer.label, size));
        }
        file.seek(SeekFrom::Start(0)).await.map_err(io)?;
        let mut chunks = Vec::new();
        loop {
            let mut chunk = Vec::with_capacity(STREAM_CHUNK);
            let n = (&mut *file)
                .take(STREAM_CHUNK as u64)
                .read_to_end(&mut chunk)
                .await
                .map_err(io)?;
            if n == 0 {
                break;
            }
            chunks.push(Bytes::from(chunk));
        }
        self.op
            .write(&self.name, opendal::Buffer::from(chunks))
            .await
            .map(|_| ())
            .map_err(|e| self.failure(&format!("cannot upload {}", self.name), &e))
    }

    /// Deletes the temporary file FTP's writer leaves in the root folder (`<file>.<8 random
    /// letters or digits>`) when an upload stops half-way.
    async fn sweep_ftp_temp(&self) {
        let base = self.name.rsplit('/').next().unwrap_or(&self.name);
        let Ok(entries) = self.op.list("/").await else {
            return;
        };
        for entry in entries {
            let leftover = entry
                .name()
                .strip_prefix(base)
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|random| {
                    random.len() == 8 && random.chars().all(|c| c.is_ascii_alphanumeric())
                });
            if leftover {
                let _ = self.op.delete(entry.path()).await;
            }
        }
    }
}

#[async_trait]
impl BackupUpload for RemoteUpload {
    fn writer(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        match &mut self.body {
            Body::Stream(sink) => sink,
            Body::Spool(file) => file,
            Body::Done(sink) => sink,
        }
    }

    async fn commit(mut self: Box<Self>, metadata: &BackupMetadata) -> Result<(), BackupError> {
        let to = &self.to;
        match std::mem::replace(&mut self.body, Body::Done(tokio::io::sink())) {
            Body::Stream(mut sink) => {
                if let Err(message) = sink.close().await {
                    let failure = BackupError::Storage(format!(
                        "cannot complete {} on the {}: {message}",
                        to.name, to.explainer.label
                    ));
                    if to.mode == WriteMode::StreamThenRename {
                        let _ = to.op.delete(&format!("{}.partial", to.name)).await;
                    }
                    return Err(failure);
                }
                if to.mode == WriteMode::StreamThenRename {
                    let partial = format!("{}.partial", to.name);
                    if let Err(e) = to.op.rename(&partial, &to.name).await {
                        let _ = to.op.delete(&partial).await;
                        return Err(
                            to.failure(&format!("cannot rename {partial} to {}", to.name), &e)
                        );
                    }
                }
            }
            Body::Spool(mut file) => to.upload_spool(&mut file).await?,
            Body::Done(_) => {}
        }
        let sidecar = sidecar_name(&to.name);
        to.op
            .write(&sidecar, encode_metadata(metadata)?)
            .await
            .map(|_| ())
            .map_err(|e| {
                to.failure(
                    &format!(
                        "the backup object {} is stored but its metadata file {sidecar} could not be written",
                        to.name
                    ),
                    &e,
                )
            })
    }

    async fn abort(mut self: Box<Self>) {
        if let Body::Stream(sink) = &mut self.body {
            if self.to.mode == WriteMode::StreamServiceTemp {
                // FTP cannot abort a transfer and stay in step with the server (the pooled
                // connection would then answer the next command with this transfer's reply):
                // the transfer is finished instead, and the object deleted below.
                let _ = sink.close().await;
            } else {
                sink.abort().await;
            }
        }
        // Drops the writer (and with it FTP's data connection) before cleaning up after it.
        self.body = Body::Done(tokio::io::sink());
        let to = &self.to;
        match to.mode {
            WriteMode::Multipart | WriteMode::Spooled => {}
            WriteMode::StreamThenRename => {
                let _ = to.op.delete(&format!("{}.partial", to.name)).await;
            }
            WriteMode::StreamServiceTemp => {
                let _ = to.op.delete(&to.name).await;
                to.sweep_ftp_temp().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::targets::{WebdavSpec, open_target};

    #[tokio::test]
    async fn spooled_targets_refuse_backups_larger_than_they_can_hold() {
        let spec = TargetSpec::Webdav(WebdavSpec {
            endpoint: "http://127.0.0.1:9".to_owned(),
            username: None,
            password: None,
            root: None,
        });
        let target = open_target(&spec, &Arc::new(OutboundPolicy::default())).unwrap();
        let err = target
            .begin("db/x.dump.zst.age", Some(2 * SPOOLED_UPLOAD_LIMIT))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("larger than the 1024 MiB"), "{err}");
        assert!(
            err.contains("use an S3, Azure, GCS, SFTP or FTP target"),
            "{err}"
        );
    }
}
