//! `POST /ui/database/{ws}/{db}/check`: a database checked now — reachable, version, the
//! pg_dump to use, the databases a whole-server run would dump, privilege warnings — and
//! `POST /ui/database/{ws}/{db}/readonly-role`: the read-only role helper, offered first when
//! the configured role can write. As `POST …/check` and `POST …/readonly-role`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::Response;
use serde::Deserialize;
use statehouse_backup::service::ReadonlyRoleRequest;

use super::database_form::ReportView;
use super::links::database_page;
use super::page::{Chrome, NoFields, OrPage, Section, UiError, UiForm, page};
use super::tokens::{KEPT_SEALED, SecretPage};
use crate::AppState;

/// The role name the helper suggests.
pub const DEFAULT_BACKUP_ROLE: &str = "statehouse_backup";

#[derive(Template)]
#[template(path = "database_check.html")]
struct CheckPage {
    chrome: Chrome,
    database: String,
    back: String,
    r: ReportView,
    role_helper: String,
}

/// `POST /ui/database/{ws}/{db}/check` (workspace viewers and up, as the API).
pub async fn check(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, db)): Path<(String, String)>,
    UiForm(viewer, NoFields {}): UiForm<NoFields>,
) -> Result<Response, UiError> {
    let report = app
        .backups
        .check_database(&viewer.who, &ws, &db)
        .await
        .or_page(&viewer)?;
    let back = database_page(&ws, &report.database);
    page(&CheckPage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("Check of {}", report.database),
            &uri,
            Section::Backups,
        ),
        database: report.database.clone(),
        role_helper: format!("{back}#readonly-role"),
        back,
        r: ReportView::of(&report),
    })
}

#[derive(Deserialize)]
pub struct RoleForm {
    admin_url: String,
    role: String,
    #[serde(default)]
    password: String,
    use_for_backups: Option<String>,
}

/// `POST /ui/database/{ws}/{db}/readonly-role` (workspace admins): creates the role through an
/// admin connection given for this call only; its password is shown once.
pub async fn create_role(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path((ws, db)): Path<(String, String)>,
    UiForm(viewer, form): UiForm<RoleForm>,
) -> Result<Response, UiError> {
    let request = ReadonlyRoleRequest {
        admin_url: form.admin_url.trim().to_owned(),
        role: form.role.trim().to_owned(),
        password: Some(form.password).filter(|p| !p.is_empty()),
        use_for_backups: form.use_for_backups.is_some(),
    };
    let created = app
        .backups
        .create_readonly_role(&viewer.who, &ws, &db, request)
        .await
        .or_page(&viewer)?;
    page(&SecretPage {
        chrome: Chrome::signed_in(
            &viewer,
            format!("Role {}", created.role),
            &uri,
            Section::Backups,
        ),
        heading: format!("Read-only role {} created", created.role),
        facts: vec![
            ("Role".into(), created.role.clone()),
            (
                "Used for backups".into(),
                if created.used_for_backups {
                    "yes: the database now connects as this role".into()
                } else {
                    "no: the database's connection is unchanged".into()
                },
            ),
        ],
        secret: created.password.clone(),
        usage: "The role may connect and read (SELECT on tables and sequences, USAGE on schemas, \
                and default privileges for new tables); it cannot write.",
        kept: if created.used_for_backups {
            KEPT_SEALED
        } else {
            "statehouse did not keep it."
        },
        back: database_page(&ws, &db),
        back_label: "Back to the database",
    })
}
