//! HTTPS on the main and the S3 listeners (`[tls]`): real certificates made by `openssl`, a
//! real Terraform client over HTTPS, a renewal picked up without a restart (and a broken one
//! ignored), and starts refused with a clear reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::certs::{client_trusting, make_ca, make_server_cert};
use common::{BIN, Server, Store, Terraform, skip_e2e};

/// Copies a certificate and key over the served files as a renewal does (write, then rename).
fn install(from: &(PathBuf, PathBuf), to: &(PathBuf, PathBuf)) {
    for (src, dst) in [(&from.0, &to.0), (&from.1, &to.1)] {
        let tmp = dst.with_extension("new");
        std::fs::copy(src, &tmp).unwrap();
        std::fs::rename(&tmp, dst).unwrap();
    }
}

fn https_everywhere_and_a_renewal_without_restart(store: Store) {
    if skip_e2e() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (first_ca, second_ca) = (make_ca(dir.path(), "ca-one"), make_ca(dir.path(), "ca-two"));
    let first = make_server_cert(dir.path(), &first_ca, "first");
    let second = make_server_cert(dir.path(), &second_ca, "second");
    let served = (dir.path().join("served.crt"), dir.path().join("served.key"));
    install(&first, &served);
    let server = Server::start_with(
        store,
        &[
            ("STATEHOUSE_TLS__CERT_FILE", &served.0.display().to_string()),
            ("STATEHOUSE_TLS__KEY_FILE", &served.1.display().to_string()),
        ],
    );
    assert!(server.url.starts_with("https://"), "{}", server.url);
    assert!(server.s3_url.starts_with("https://"), "{}", server.s3_url);

    // Both listeners speak TLS with the configured certificate; plain HTTP gets nowhere.
    let trusts_first = client_trusting(&first_ca);
    let ready = trusts_first
        .get(format!("{}/readyz", server.url))
        .send()
        .unwrap();
    assert_eq!(ready.status(), 200);
    let anonymous_s3 = trusts_first
        .get(format!("{}/", server.s3_url))
        .send()
        .unwrap();
    assert_eq!(
        anonymous_s3.status(),
        403,
        "an unsigned ListBuckets is refused, over TLS"
    );
    assert!(
        anonymous_s3
            .text()
            .unwrap()
            .contains("<Code>AccessDenied</Code>")
    );
    let plain = server.url.replacen("https://", "http://", 1);
    assert!(
        common::http_client()
            .get(format!("{plain}/readyz"))
            .timeout(Duration::from_secs(5))
            .send()
            .map(|r| r.status() != 200)
            .unwrap_or(true),
        "plain HTTP must not be served on a TLS listener"
    );

    // A real Terraform, trusting the test's CA (Go reads SSL_CERT_FILE), applies over HTTPS.
    let work = tempfile::tempdir().unwrap();
    let token = server.create_token("default", "editor", "tls-ci");
    let mut tf = Terraform::new(work.path());
    tf.set_env("TF_HTTP_USERNAME", "ci")
        .set_env("TF_HTTP_PASSWORD", &token)
        .set_env("SSL_CERT_FILE", &first_ca.cert.display().to_string());
    let address = server.tf_address("default", "over-tls");
    tf.write_config(&format!(
        "terraform {{\n  backend \"http\" {{\n    address = \"{address}\"\n    lock_address = \"{address}\"\n    unlock_address = \"{address}\"\n  }}\n}}\noutput \"n\" {{ value = 7 }}\n"
    ));
    tf.ok(&["init", "-input=false"]);
    tf.ok(&["apply", "-auto-approve", "-input=false"]);
    let state: serde_json::Value = trusts_first
        .get(&address)
        .basic_auth("ci", Some(&token))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(state["outputs"]["n"]["value"], 7, "{state}");

    // A renewal signed by another CA is served to new connections within the reload period.
    install(&second, &served);
    let trusts_second = client_trusting(&second_ca);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = trusts_second.get(format!("{}/readyz", server.url)).send();
        if fresh.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was not picked up"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(server.wait_for_log("TLS certificate reloaded"));
    let s3_fresh = client_trusting(&second_ca)
        .get(format!("{}/", server.s3_url))
        .send();
    assert!(
        s3_fresh.is_ok(),
        "the S3 listener serves the renewed certificate too"
    );
    assert!(
        client_trusting(&first_ca)
            .get(format!("{}/readyz", server.url))
            .send()
            .is_err(),
        "the old certificate is no longer served"
    );

    // A renewal whose key is not the certificate's is refused; the loaded one stays.
    std::fs::copy(&first.1, &served.1).unwrap();
    assert!(
        server.wait_for_log("cannot be used"),
        "{}",
        server.log_text()
    );
    let still = trusts_second
        .get(format!("{}/readyz", server.url))
        .send()
        .unwrap();
    assert_eq!(still.status(), 200);
}

/// `statehouse serve` with TLS files it cannot use stops at once and says which file and why
/// (before opening the store: the same on both).
#[test]
fn unusable_tls_files_stop_the_start() {
    if skip_e2e() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path(), "ca");
    let (cert, key) = make_server_cert(dir.path(), &ca, "server");
    let other_key = make_server_cert(dir.path(), &ca, "other").1;
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").unwrap();
    let cases: [(&[(&str, &Path)], &str); 4] = [
        (
            &[("STATEHOUSE_TLS__CERT_FILE", &cert)],
            "tls.cert_file is set but tls.key_file is not",
        ),
        (
            &[
                ("STATEHOUSE_TLS__CERT_FILE", &missing),
                ("STATEHOUSE_TLS__KEY_FILE", &key),
            ],
            "cannot read the TLS certificate",
        ),
        (
            &[
                ("STATEHOUSE_TLS__CERT_FILE", &not_pem),
                ("STATEHOUSE_TLS__KEY_FILE", &key),
            ],
            "holds no certificate",
        ),
        (
            &[
                ("STATEHOUSE_TLS__CERT_FILE", &cert),
                ("STATEHOUSE_TLS__KEY_FILE", &other_key),
            ],
            "does not go with the certificate",
        ),
    ];
    for (env, expected) in cases {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("STATEHOUSE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("STATEHOUSE_DATA_DIR", data.path())
            .env("STATEHOUSE_LISTEN", "127.0.0.1:0")
            .env("STATEHOUSE_S3_LISTEN", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.arg("serve").stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} started");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("admin token"),
            "no admin token is spent on a start that fails"
        );
    }
}

on_both_stores!(https_everywhere_and_a_renewal_without_restart);
