//! `/ui/workspaces/{ws}/backup-encryption`: how a workspace's new backups are encrypted (a
//! managed key, your own recipients, a passphrase) with the trade-off in words, and the server
//! full verifications restore to. Workspace admins switch between the three, replace or export
//! the managed key (shown once, as `secret_once.html`) and set or remove the verification
//! server; everyone else reads. As `/api/v1/workspaces/{ws}/backup-encryption…`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_backup::service::{EncryptionChange, EncryptionView};
use statehouse_backup::settings::ConnectionSettings;
use statehouse_core::Error;
use statehouse_core::access::Role;

use super::links::{backup_encryption_of, query_escape};
use super::page::{
    Chrome, NoFields, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other,
};
use super::states::Choice;
use crate::AppState;

/// `sslmode` choices of the verification server (`""`: libpq's default, `prefer`).
const SSL_MODES: [(&str, &str); 6] = [
    ("", "default (prefer)"),
    ("disable", "disable"),
    ("prefer", "prefer"),
    ("require", "require"),
    ("verify-ca", "verify-ca"),
    ("verify-full", "verify-full"),
];

/// One form of the page, as typed. No `Debug`: it may carry a passphrase or a password.
#[derive(Deserialize, Default)]
pub struct EncryptionForm {
    /// `generate`, `drop-managed`, `recipients`, `passphrase`, `verification` or
    /// `remove-verification`.
    #[serde(default)]
    action: String,
    /// One `age1…` per line.
    #[serde(default)]
    recipients: String,
    keep_managed: Option<String>,
    #[serde(default)]
    passphrase: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    database: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    sslmode: String,
    #[serde(default)]
    ca_cert: String,
}

impl EncryptionForm {
    /// The forms as the stored settings fill them.
    fn of(view: &EncryptionView) -> EncryptionForm {
        let server = view.verification_server.as_ref();
        EncryptionForm {
            recipients: view.recipients.join("\n"),
            keep_managed: view.managed_recipient.as_ref().map(|_| "on".into()),
            host: server.map_or_else(String::new, |s| s.host.clone()),
            port: server.map_or_else(|| "5432".into(), |s| s.port.to_string()),
            database: server.map_or_else(|| "postgres".into(), |s| s.database.clone()),
            user: server.map_or_else(String::new, |s| s.user.clone()),
            sslmode: server.and_then(|s| s.sslmode.clone()).unwrap_or_default(),
            ca_cert: server.and_then(|s| s.ca_cert.clone()).unwrap_or_default(),
            ..EncryptionForm::default()
        }
    }

    /// What was typed, without what must never be shown again.
    fn without_secrets(self) -> EncryptionForm {
        EncryptionForm {
            passphrase: String::new(),
            confirm: String::new(),
            password: String::new(),
            ..self
        }
    }

    /// The verification server the form describes, with its password.
    fn verification_server(&self) -> Result<(ConnectionSettings, Option<String>), Error> {
        let text = |s: &str| Some(s.trim().to_owned()).filter(|t| !t.is_empty());
        let port = match self.port.trim() {
            "" => 5432,
            p => p.parse::<u16>().map_err(|_| {
                Error::BadRequest(format!("the port {p:?} is not a number from 1 to 65535"))
            })?,
        };
        let connection = ConnectionSettings {
            host: self.host.trim().to_owned(),
            port,
            database: text(&self.database).unwrap_or_else(|| "postgres".into()),
            user: self.user.trim().to_owned(),
            sslmode: text(&self.sslmode),
            ca_cert: text(&self.ca_cert.replace("\r\n", "\n")),
        };
        Ok((connection, Some(self.password.clone())))
    }
}

/// How new backups are encrypted, in words: `(id, name, what it means)`.
fn mode_of(view: &EncryptionView) -> (&'static str, &'static str, &'static str) {
    match (
        view.passphrase,
        view.managed_recipient.is_some(),
        view.recipients.is_empty(),
    ) {
        (true, _, _) => (
            "passphrase",
            "Passphrase",
            "New backups are encrypted with a passphrase that statehouse keeps, sealed under its \
             master key. statehouse can decrypt them, so it restores and verifies them itself; by \
             hand, age -d asks for the passphrase.",
        ),
        (false, true, true) => (
            "managed",
            "Managed key",
            "New backups are encrypted to an age key pair that statehouse keeps, sealed under its \
             master key. statehouse can decrypt them, so it restores and verifies them itself. \
             Export the key and keep it apart from the backups: with the server gone, it is what \
             opens them.",
        ),
        (false, true, false) => (
            "managed-and-recipients",
            "Managed key and your own recipients",
            "New backups are encrypted to statehouse's key pair and to your recipients: \
             statehouse restores and verifies them itself, and each recipient's owner can open \
             them without statehouse.",
        ),
        (false, false, false) => (
            "recipients",
            "Your own recipients only",
            "New backups are encrypted only to public keys whose secret keys you hold: \
             statehouse cannot read the backups it writes. A restore needs your identity file, \
             and verification stops at the checks that need no decryption.",
        ),
        (false, false, true) => (
            "none",
            "Not set up yet",
            "statehouse generates a managed key when the workspace's first database is added, \
             or generate one below.",
        ),
    }
}

#[derive(Template)]
#[template(path = "backup_encryption.html")]
struct EncryptionPage {
    chrome: Chrome,
    workspace: String,
    mode_id: &'static str,
    mode: &'static str,
    meaning: &'static str,
    server_can_decrypt: bool,
    managed_recipient: String,
    recipients: Vec<String>,
    verification: String,
    can_manage: bool,
    base: String,
    form: EncryptionForm,
    ssl_modes: Vec<Choice>,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct EncryptionQuery {
    done: Option<String>,
}

/// `GET /ui/workspaces/{ws}/backup-encryption`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(ws): Path<String>,
    Query(q): Query<EncryptionQuery>,
) -> Result<Response, UiError> {
    let notice = match q.done.as_deref() {
        Some("generate") => {
            "A new managed key encrypts new backups; older backups stay readable with the keys \
             statehouse kept."
        }
        Some("drop-managed") => "New backups are no longer encrypted to the managed key.",
        Some("recipients") => "New backups are encrypted to the recipients below.",
        Some("passphrase") => "New backups are encrypted with the passphrase.",
        Some("verification") => "The verification server was saved.",
        Some("remove-verification") => "The verification server was removed.",
        _ => "",
    };
    render_page(&app, viewer, &uri, &ws, notice, None).await
}

async fn render_page(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    ws: &str,
    notice: &'static str,
    refused: Option<(Refusal, EncryptionForm)>,
) -> Result<Response, UiError> {
    let view = app
        .backups
        .encryption(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let (_, role) = app
        .services
        .workspace_for(&viewer.who, ws)
        .await
        .or_page(&viewer)?;
    let (status, error, form) = match refused {
        Some((r, typed)) => (r.status, r.message, typed.without_secrets()),
        None => (StatusCode::OK, String::new(), EncryptionForm::of(&view)),
    };
    let (mode_id, mode, meaning) = mode_of(&view);
    let data = EncryptionPage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("Backup encryption of {ws}"),
            uri,
            Section::Backups,
        ),
        workspace: ws.to_owned(),
        mode_id,
        mode,
        meaning,
        server_can_decrypt: view.server_can_decrypt,
        managed_recipient: view.managed_recipient.clone().unwrap_or_default(),
        recipients: view.recipients.clone(),
        verification: view
            .verification_server
            .as_ref()
            .map_or_else(String::new, |s| match &s.sslmode {
                Some(mode) => format!("{} (sslmode {mode})", s.display()),
                None => s.display(),
            }),
        can_manage: role >= Role::Admin,
        base: backup_encryption_of(ws),
        ssl_modes: SSL_MODES
            .iter()
            .map(|(v, l)| Choice {
                value: (*v).into(),
                label: (*l).into(),
                selected: *v == form.sslmode,
            })
            .collect(),
        form,
        notice,
        error,
    };
    Ok(render(status, &data))
}

/// The change a form asks for, given the current settings.
fn change_of(form: &EncryptionForm, view: &EncryptionView) -> Result<EncryptionChange, Error> {
    let managed = view.managed_recipient.is_some();
    // Another way to decrypt replaces a passphrase: age takes a passphrase only alone.
    let passphrase_off = view.passphrase.then_some(None);
    Ok(match form.action.as_str() {
        "generate" => EncryptionChange {
            generate_managed_key: true,
            passphrase: passphrase_off,
            ..EncryptionChange::default()
        },
        "drop-managed" => EncryptionChange {
            drop_managed_key: true,
            ..EncryptionChange::default()
        },
        "recipients" => {
            let keep = form.keep_managed.is_some();
            EncryptionChange {
                recipients: Some(
                    form.recipients
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_owned)
                        .collect(),
                ),
                generate_managed_key: keep && !managed,
                drop_managed_key: !keep && managed,
                passphrase: passphrase_off,
                ..EncryptionChange::default()
            }
        }
        "passphrase" if form.passphrase != form.confirm => {
            return Err(Error::BadRequest(
                "the two passphrases differ: type the same passphrase twice".into(),
            ));
        }
        "passphrase" => EncryptionChange {
            passphrase: Some(Some(form.passphrase.clone())),
            drop_managed_key: managed,
            recipients: (!view.recipients.is_empty()).then(Vec::new),
            ..EncryptionChange::default()
        },
        "verification" => EncryptionChange {
            verification_server: Some(Some(form.verification_server()?)),
            ..EncryptionChange::default()
        },
        "remove-verification" => EncryptionChange {
            verification_server: Some(None),
            ..EncryptionChange::default()
        },
        other => return Err(Error::BadRequest(format!("unknown action {other:?}"))),
    })
}

/// `POST /ui/workspaces/{ws}/backup-encryption`: one change (workspace admins), as `PATCH
/// …/backup-encryption`.
pub async fn change(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, form): UiForm<EncryptionForm>,
) -> Result<Response, UiError> {
    let view = app
        .backups
        .encryption(&viewer.who, &ws)
        .await
        .or_page(&viewer)?;
    let changed = match change_of(&form, &view) {
        Ok(change) => {
            app.backups
                .change_encryption(&viewer.who, &ws, change)
                .await
        }
        Err(e) => Err(e),
    };
    match changed {
        Ok(_) => {
            tracing::info!(
                workspace = ws,
                action = form.action,
                by = viewer.who.actor(),
                "backup encryption changed (UI)"
            );
            see_other(&format!(
                "{}?done={}",
                backup_encryption_of(&ws),
                query_escape(&form.action)
            ))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            render_page(&app, viewer, &uri, &ws, "", Some((refusal, form))).await
        }
    }
}

/// The exported managed key: `secret_once.html` with its own words on keeping it.
#[derive(Template)]
#[template(path = "key_export.html")]
struct ExportPage {
    chrome: Chrome,
    heading: String,
    facts: Vec<(String, String)>,
    secret: String,
    usage: &'static str,
    back: String,
    back_label: &'static str,
}

/// `POST /ui/workspaces/{ws}/backup-encryption/export`: the managed identity (workspace
/// admins; audited), for restores without statehouse. As `POST …/backup-encryption/export`.
pub async fn export(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(ws): Path<String>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    let key = app
        .backups
        .export_managed_key(&viewer.who, &ws)
        .await
        .or_page(&viewer)?;
    tracing::info!(
        workspace = ws,
        by = viewer.who.actor(),
        "managed backup key exported (UI)"
    );
    let data = ExportPage {
        chrome: Chrome::signed_in(&viewer, "Managed backup key", &uri, Section::Backups),
        heading: format!("The managed backup key of {ws}"),
        facts: vec![
            ("Workspace".into(), ws.clone()),
            ("Public key (recipient)".into(), key.recipient.clone()),
        ],
        secret: key.identity.clone(),
        usage: "Save it as key.txt (readable only by you: chmod 600 key.txt), then restore a \
                backup without statehouse: age -d -i key.txt shop.dump.zst.age | zstd -d | \
                pg_restore --no-owner -d shop_restored",
        back: backup_encryption_of(&ws),
        back_label: "Back to the backup encryption",
    };
    Ok(render(StatusCode::OK, &data))
}
