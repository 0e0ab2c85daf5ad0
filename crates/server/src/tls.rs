//! TLS for the main and the S3 listeners (`[tls]`): a PEM certificate chain and private key,
//! read at start and read again whenever either file's content changes, so that a renewed
//! certificate (certbot, cert-manager, an ACME client's hook) is served to new connections
//! without a restart. A renewal that cannot be read (half-written, key and certificate not a
//! pair) is logged and the certificate already loaded stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How often the files are looked at for a renewal.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Where the certificate chain and its key are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The certificate being served, replaced when its files change.
#[derive(Debug)]
pub struct Certificate {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// SHA-256 of both files as last loaded (or last found unreadable): a change is a reload.
    loaded_from: Mutex<[u8; 32]>,
}

impl Certificate {
    /// Reads and checks both files: an error says which file and what is wrong with it.
    pub fn load(files: TlsFiles) -> Result<Arc<Certificate>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let (cert_pem, key_pem) = read_both(&files)?;
        let key = certified_key(&files, &provider, &cert_pem, &key_pem)?;
        Ok(Arc::new(Certificate {
            loaded_from: Mutex::new(fingerprint(&cert_pem, &key_pem)),
            current: RwLock::new(Arc::new(key)),
            files,
            provider,
        }))
    }

    /// An acceptor for a listener (HTTP/1.1, TLS 1.2 and 1.3), serving whatever certificate
    /// is current at each handshake.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS settings: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    /// Reads the files again and, when their content changed and reads as a certificate and
    /// its key, serves it from now on. `Ok(true)` when a new certificate was loaded.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let (cert_pem, key_pem) = read_both(&self.files)?;
        let seen = fingerprint(&cert_pem, &key_pem);
        {
            let mut loaded_from = self
                .loaded_from
                .lock()
                .map_err(|_| "TLS state poisoned".to_owned())?;
            if *loaded_from == seen {
                return Ok(false);
            }
            // Reported once per content, not every few seconds.
            *loaded_from = seen;
        }
        let key = certified_key(&self.files, &self.provider, &cert_pem, &key_pem)?;
        let mut current = self
            .current
            .write()
            .map_err(|_| "TLS state poisoned".to_owned())?;
        *current = Arc::new(key);
        Ok(true)
    }

    /// Looks at the files every [`RELOAD_EVERY`] until `shutdown`, logging each reload and
    /// each renewal that could not be used.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(RELOAD_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let this = self.clone();
            let outcome = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            match outcome {
                Ok(Ok(true)) => tracing::info!(
                    cert_file = %self.files.cert_file.display(),
                    "TLS certificate reloaded: new connections get the new one"
                ),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::error!(
                    error = %e,
                    "the TLS files changed but cannot be used; still serving the certificate loaded before"
                ),
                Err(e) => tracing::error!(error = %e, "reading the TLS files failed"),
            }
        }
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|current| current.clone())
    }
}

fn read_both(files: &TlsFiles) -> Result<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>), String> {
    let cert = read(&files.cert_file, "certificate", "tls.cert_file")?;
    let key = zeroize::Zeroizing::new(read(&files.key_file, "private key", "tls.key_file")?);
    Ok((cert, key))
}

fn read(path: &Path, what: &str, setting: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "cannot read the TLS {what} {} ({setting}): {e}",
            path.display()
        )
    })
}

fn fingerprint(cert_pem: &[u8], key_pem: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(cert_pem);
    hash.update([0]);
    hash.update(key_pem);
    hash.finalize().into()
}

fn certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, String> {
    let cert_file = files.cert_file.display();
    let key_file = files.key_file.display();
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the TLS certificate file {cert_file} is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "the TLS certificate file {cert_file} holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks, the server's first)"
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        format!(
            "the TLS key file {key_file} holds no usable private key (PEM PKCS#8, PKCS#1 or SEC1): {e}"
        )
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        format!("the TLS key {key_file} does not go with the certificate {cert_file}: {e}")
    })
}
