//! Building a remote target's OpenDAL operator: each kind's service settings, the SFTP key file,
//! the FTP endpoint's checked address, and the timeout, retry and HTTP transport layers (every
//! request under the outbound policy).

use std::sync::{Arc, Once};
use std::time::Duration;

use base64::Engine as _;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{Operator, services};
use statehouse_outbound::OutboundPolicy;

use super::Built;
use crate::pipeline::BackupError;
use crate::targets::explain::setup_details;
use crate::targets::spec::{KnownHostsStrategy, TargetSpec};
use crate::targets::transport::{http_transporter, pinned_host, url_host};

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

/// Builds the operator, every request of it under the outbound policy (see
/// [`crate::targets::transport`]).
pub(super) async fn build(
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
    let s3 = matches!(spec, TargetSpec::S3(_));
    let transport = http_transporter(policy, google_endpoint.as_deref(), s3)?;
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
