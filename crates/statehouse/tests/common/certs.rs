//! Certificates for HTTPS tests, made by `openssl`: a certificate authority per test and
//! server certificates for `localhost` / 127.0.0.1 signed by it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A certificate authority made for the test.
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn make_ca(dir: &Path, name: &str) -> Ca {
    let (cert, key) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ],
    );
    Ca { cert, key }
}

/// A server certificate for `localhost` and 127.0.0.1 signed by `ca`, written to
/// `<name>.crt` / `<name>.key` in `dir`.
pub fn make_server_cert(dir: &Path, ca: &Ca, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key, csr) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
    );
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key.display().to_string(),
            "-out",
            &csr.display().to_string(),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr.display().to_string(),
            "-CA",
            &ca.cert.display().to_string(),
            "-CAkey",
            &ca.key.display().to_string(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext.display().to_string(),
            "-out",
            &cert.display().to_string(),
        ],
    );
    (cert, key)
}

/// A client trusting `ca` only.
pub fn client_trusting(ca: &Ca) -> reqwest::blocking::Client {
    let pem = std::fs::read(&ca.cert).unwrap();
    reqwest::blocking::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}
