//! The `[tls]` section: HTTPS on the main and the S3 listeners from a PEM certificate chain
//! and its private key, reloaded when the files change.

use std::path::PathBuf;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use statehouse_server::tls::TlsFiles;

/// HTTPS for the main and the S3 listeners; plain HTTP when neither file is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsConfig {
    /// The certificate chain, PEM, the server's certificate first (e.g. certbot's
    /// `fullchain.pem`).
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1; e.g. certbot's `privkey.pem`).
    pub key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// The files to serve HTTPS with, or none for plain HTTP; one without the other is an
    /// error.
    pub fn files(&self) -> Result<Option<TlsFiles>> {
        match (&self.cert_file, &self.key_file) {
            (None, None) => Ok(None),
            (Some(cert_file), Some(key_file)) => Ok(Some(TlsFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            })),
            (Some(_), None) => bail!(
                "tls.cert_file is set but tls.key_file is not (STATEHOUSE_TLS__KEY_FILE): HTTPS needs both the certificate and its private key"
            ),
            (None, Some(_)) => bail!(
                "tls.key_file is set but tls.cert_file is not (STATEHOUSE_TLS__CERT_FILE): HTTPS needs both the certificate and its private key"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_files_or_neither() {
        let none = TlsConfig::default();
        assert!(none.files().is_ok_and(|f| f.is_none()));
        let both = TlsConfig {
            cert_file: Some("c.pem".into()),
            key_file: Some("k.pem".into()),
        };
        assert!(both.files().is_ok_and(|f| f.is_some()));
        let half = TlsConfig {
            cert_file: Some("c.pem".into()),
            key_file: None,
        };
        let error = half
            .files()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.contains("STATEHOUSE_TLS__KEY_FILE"), "{error}");
    }
}
