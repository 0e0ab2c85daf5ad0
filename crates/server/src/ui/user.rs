//! `/ui/users/{name}`: one user — its facts and workspace roles — and what may be done to it:
//! instance admins disable/enable it, make or unmake it an instance admin, give it a role in a
//! workspace and set its password; a user sets its own password. As `GET`/`PATCH
//! /api/v1/users/{user}` and `PUT /api/v1/workspaces/{ws}/members/{user}`.

use std::str::FromStr;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::access::Role;
use statehouse_core::service::UserChange;

use super::format::utc;
use super::links::{user_page, workspace_page};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use super::states::Choice;
use super::users::UserRow;
use crate::AppState;

pub struct MembershipRow {
    pub workspace: String,
    pub href: String,
    pub role: String,
    pub granted: String,
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    access_at: &'static str,
    user: UserRow,
    disabled_since: String,
    memberships: Vec<MembershipRow>,
    /// The viewer is an instance admin: every action.
    is_admin: bool,
    /// The viewer looks at itself: it may set its own password.
    is_self: bool,
    action: String,
    workspaces: Vec<Choice>,
    roles: Vec<Choice>,
    notice: &'static str,
    error: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct UserQuery {
    done: Option<String>,
}

/// `GET /ui/users/{name}`.
pub async fn show(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Path(name): Path<String>,
    Query(q): Query<UserQuery>,
) -> Result<Response, UiError> {
    let notice = notice(q.done.as_deref());
    render_page(&app, viewer, &uri, &name, notice, None).await
}

async fn render_page(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    name: &str,
    notice: &'static str,
    refusal: Option<Refusal>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let user = services.user(&viewer.who, name).await.or_page(&viewer)?;
    let memberships = services
        .user_memberships(&viewer.who, &user.name)
        .await
        .or_page(&viewer)?;
    let is_admin = viewer.who.is_instance_admin();
    let workspaces = if is_admin {
        services
            .list_workspaces(&viewer.who)
            .await
            .or_page(&viewer)?
            .into_iter()
            .map(|(w, _)| Choice {
                value: w.name.clone(),
                label: w.name,
                selected: false,
            })
            .collect()
    } else {
        Vec::new()
    };
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let data = UserPage {
        chrome: Chrome::signed_in(&viewer, format!("User {}", user.name), uri, Section::Access),
        access_at: "users",
        disabled_since: user.disabled_at.map_or(String::new(), utc),
        memberships: memberships
            .iter()
            .map(|m| MembershipRow {
                workspace: m.workspace_name.clone(),
                href: workspace_page(&m.workspace_name),
                role: m.role.to_string(),
                granted: utc(m.granted_at),
            })
            .collect(),
        is_admin,
        is_self: viewer.who.user_id() == Some(user.id.as_str()),
        action: user_page(&user.name),
        workspaces,
        roles: role_choices(Role::Viewer),
        notice,
        error,
        user: UserRow::of(&user),
    };
    Ok(render(status, &data))
}

/// The four roles, `selected` chosen.
pub fn role_choices(selected: Role) -> Vec<Choice> {
    Role::ALL
        .iter()
        .map(|r| Choice {
            value: r.as_str().into(),
            label: r.as_str().into(),
            selected: *r == selected,
        })
        .collect()
}

fn notice(done: Option<&str>) -> &'static str {
    match done {
        Some("created") => "The user was created.",
        Some("disabled") => "The user is disabled: it cannot sign in and its tokens do not work.",
        Some("enabled") => "The user is enabled again.",
        Some("password") => "The password was set; the user's sessions were ended.",
        Some("admin") => "The user is now an instance admin.",
        Some("not-admin") => "The user is no longer an instance admin.",
        Some("granted") => "The role was given.",
        _ => "",
    }
}

/// One action on a user. (No `Debug`: it may carry a password.)
#[derive(Deserialize)]
pub struct UserActionForm {
    /// `disable`, `enable`, `make-admin`, `drop-admin`, `password` or `grant`.
    action: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    role: String,
}

/// `POST /ui/users/{name}`: one change, through the same services as the API.
pub async fn act(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    Path(name): Path<String>,
    UiForm(viewer, form): UiForm<UserActionForm>,
) -> Result<Response, UiError> {
    let services = &app.services;
    let change = |disabled, instance_admin| UserChange {
        password: None,
        instance_admin,
        disabled,
    };
    let result = match form.action.as_str() {
        "disable" => services
            .update_user(&viewer.who, &name, change(Some(true), None))
            .await
            .map(|_| "disabled"),
        "enable" => services
            .update_user(&viewer.who, &name, change(Some(false), None))
            .await
            .map(|_| "enabled"),
        "make-admin" => services
            .update_user(&viewer.who, &name, change(None, Some(true)))
            .await
            .map(|_| "admin"),
        "drop-admin" => services
            .update_user(&viewer.who, &name, change(None, Some(false)))
            .await
            .map(|_| "not-admin"),
        "password" if form.password != form.confirm => {
            let refusal =
                Refusal::bad_input("the two passwords differ: type the same password twice");
            return render_page(&app, viewer, &uri, &name, "", Some(refusal)).await;
        }
        "password" => {
            let change = UserChange {
                password: Some(form.password.clone()),
                ..UserChange::default()
            };
            services
                .update_user(&viewer.who, &name, change)
                .await
                .map(|_| "password")
        }
        "grant" => match Role::from_str(&form.role) {
            Ok(role) => services
                .set_member(&viewer.who, &form.workspace, &name, role)
                .await
                .map(|_| "granted"),
            Err(e) => Err(e),
        },
        other => Err(statehouse_core::Error::BadRequest(format!(
            "unknown action {other:?}"
        ))),
    };
    match result {
        Ok(done) => {
            tracing::info!(
                user = name,
                action = form.action,
                by = viewer.who.actor(),
                "user changed (UI)"
            );
            see_other(&format!("{}?done={done}", user_page(&name)))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            render_page(&app, viewer, &uri, &name, "", Some(refusal)).await
        }
    }
}
