//! The backup encryption page in a real browser (headless Chromium through chromedriver)
//! against the real binary, on SQLite and PostgreSQL: a managed key generated, own recipients
//! (made with `age-keygen`, a bad one refused), back to a managed key beside them and then alone,
//! the key exported once and checked with `age-keygen -y`, a passphrase refused when typed twice
//! differently and then set, back to a managed key, and the verification server set (a port that
//! is none refused) and removed; each step as the REST API then shows it.
//!
//! What viewers and editors see of it, and their forged forms, are in `ui_backup_config.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Store;
use common::browser::Browser;
use common::ui::{ADMIN_PASSWORD, admin_get, signed_in, start_backups};
use serde_json::{Value, json};

on_both_stores!(encryption_and_the_verification_server_change_in_the_browser);

/// A new age key pair: `(identity file, recipient)`.
fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&file)
        .output()
        .expect("age-keygen (Debian package age)");
    assert!(out.status.success(), "{}", common::describe(&out));
    (file.clone(), recipient_of(&file))
}

/// The public key of an identity file, as `age-keygen -y` prints it.
fn recipient_of(file: &Path) -> String {
    let out = Command::new("age-keygen")
        .arg("-y")
        .arg(file)
        .output()
        .expect("age-keygen -y");
    assert!(out.status.success(), "{}", common::describe(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn mode(browser: &Browser) -> String {
    browser.find("#encryption-mode").attr("data-mode").unwrap()
}

fn encryption_and_the_verification_server_change_in_the_browser(store: Store) {
    let Some(server) = start_backups(store) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, own) = age_key(dir.path(), "own.txt");
    let browser = signed_in(&server, "admin", ADMIN_PASSWORD);
    browser.goto(&format!("{}/ui/backups?ws=default", server.url));
    browser.click("#nav-encryption");
    browser.wait_for_text("h1", "Backup encryption of default");
    browser.wait_for_text("#trade-off", "cannot read the backups it writes");
    browser.click("#generate-key");
    browser.wait_for_text("#notice", "A new managed key");
    assert_eq!(mode(&browser), "managed");
    let managed = browser.find("#managed-recipient").text();
    assert!(managed.starts_with("age1"), "{managed}");

    // Own recipients only: the server cannot read new backups.
    browser.fill("#recipients", "age1nothing");
    browser.click("#save-recipients");
    browser.wait_for_text("#form-error", "is not an age X25519 recipient");
    browser.fill("#recipients", &own);
    browser.click("#keep-managed"); // ticked while there is a managed key
    browser.click("#save-recipients");
    browser.wait_for_text("#notice", "encrypted to the recipients");
    assert_eq!(mode(&browser), "recipients");
    assert!(browser.find("#server-can-decrypt").text().starts_with("no"));
    let view = admin_get(&server, "/workspaces/default/backup-encryption");
    assert_eq!(view["recipients"], json!([own]), "{view}");
    assert_eq!(view["server_can_decrypt"], false, "{view}");
    assert!(browser.try_find("#export-key").is_none());

    // Back to a managed key (a new one), beside the recipients, then alone.
    browser.click("#generate-key");
    browser.wait_for_text("#notice", "A new managed key");
    assert_eq!(mode(&browser), "managed-and-recipients");
    browser.find("#recipients").clear();
    browser.click("#save-recipients");
    browser.wait_for_text("#notice", "encrypted to the recipients");
    assert_eq!(mode(&browser), "managed");
    let managed = browser.find("#managed-recipient").text();
    assert!(managed.starts_with("age1"), "{managed}");

    // The key exported once: its public half is the managed recipient.
    browser.click("#export-key");
    browser.wait_for_text("h1", "The managed backup key of default");
    let identity = browser.find("#secret").text();
    assert!(identity.starts_with("AGE-SECRET-KEY-1"), "{identity}");
    assert!(browser.find("main").text().contains("age -d -i key.txt"));
    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, format!("{identity}\n")).unwrap();
    assert_eq!(recipient_of(&key_file), managed);
    let audit = admin_get(&server, "/audit?action=backup.key.export");
    assert_eq!(audit["items"][0]["actor"], "admin", "{audit}");
    browser.click("#back");

    // A passphrase typed twice differently: refused, nothing changes; then set.
    browser.fill("#passphrase", "correct horse battery staple");
    browser.fill("#passphrase-confirm", "correct horse battery stapel");
    browser.click("#set-passphrase");
    browser.wait_for_text("#form-error", "the two passphrases differ");
    assert_eq!(
        admin_get(&server, "/workspaces/default/backup-encryption")["passphrase"],
        false
    );
    assert!(
        !browser.source().contains("battery sta"),
        "passphrase echoed"
    );
    browser.fill("#passphrase", "correct horse battery staple");
    browser.fill("#passphrase-confirm", "correct horse battery staple");
    browser.click("#set-passphrase");
    browser.wait_for_text("#notice", "encrypted with the passphrase");
    assert_eq!(mode(&browser), "passphrase");
    let view = admin_get(&server, "/workspaces/default/backup-encryption");
    assert_eq!(view["passphrase"], true, "{view}");
    assert_eq!(view["managed_recipient"], Value::Null, "{view}");
    // From a passphrase back to a managed key.
    browser.click("#generate-key");
    browser.wait_for_text("#notice", "A new managed key");
    assert_eq!(mode(&browser), "managed");

    // The verification server: a port that is none, then set, then removed.
    browser.fill("#verification-host", "127.0.0.1");
    browser.fill("#verification-port", "fifty");
    browser.fill("#verification-user", "verifier");
    browser.fill("#verification-password", "verifier-pa55word");
    browser.click("#save-verification");
    browser.wait_for_text("#form-error", "not a number");
    assert_eq!(
        browser.find("#verification-user").attr("value").as_deref(),
        Some("verifier")
    );
    browser.fill("#verification-port", "5433");
    browser.fill("#verification-password", "verifier-pa55word");
    browser.click("#save-verification");
    browser.wait_for_text("#notice", "The verification server was saved.");
    browser.wait_for_text("#verification-fact", "verifier@127.0.0.1:5433/postgres");
    assert!(!browser.source().contains("verifier-pa55word"));
    let view = admin_get(&server, "/workspaces/default/backup-encryption");
    assert_eq!(view["verification_server"]["port"], 5433, "{view}");
    browser.click("#remove-verification");
    browser.wait_for_text("#notice", "removed");
    assert_eq!(browser.find("#verification-fact").text(), "none");
    let view = admin_get(&server, "/workspaces/default/backup-encryption");
    assert_eq!(view["verification_server"], Value::Null, "{view}");
}
