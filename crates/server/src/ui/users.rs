//! `/ui/users`: the users (instance admins see everyone; others see themselves) and, for
//! instance admins, the form that creates one — as `GET`/`POST /api/v1/users`.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use statehouse_core::accounts::User;

use super::format::utc;
use super::links::user_page;
use super::listing::{Pager, select};
use super::page::{Chrome, OrPage, Refusal, Section, UiError, UiForm, Viewer, render, see_other};
use crate::AppState;
use crate::api::Order;

pub struct UserRow {
    pub name: String,
    pub href: String,
    pub instance_admin: bool,
    pub disabled: bool,
    pub has_password: bool,
    pub created: String,
}

impl UserRow {
    pub fn of(u: &User) -> UserRow {
        UserRow {
            name: u.name.clone(),
            href: user_page(&u.name),
            instance_admin: u.instance_admin,
            disabled: u.is_disabled(),
            has_password: u.has_password(),
            created: utc(u.created_at),
        }
    }
}

/// What the create form had in it when it comes back with an error.
#[derive(Default)]
pub struct Draft {
    pub name: String,
    pub instance_admin: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    chrome: Chrome,
    access_at: &'static str,
    can_create: bool,
    rows: Vec<UserRow>,
    pager: Pager,
    error: String,
    draft: Draft,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

/// `GET /ui/users`.
pub async fn list(
    State(app): State<Arc<AppState>>,
    viewer: Viewer,
    uri: Uri,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    show(
        &app,
        viewer,
        &uri,
        q.cursor.as_deref(),
        None,
        Draft::default(),
    )
    .await
}

async fn show(
    app: &AppState,
    viewer: Viewer,
    uri: &Uri,
    cursor: Option<&str>,
    refusal: Option<Refusal>,
    draft: Draft,
) -> Result<Response, UiError> {
    let can_create = viewer.who.is_instance_admin();
    let users = if can_create {
        app.services
            .list_users(&viewer.who)
            .await
            .or_page(&viewer)?
    } else {
        // Everyone may read themselves (a session always has its user).
        app.services
            .caller_user(&viewer.who)
            .await
            .or_page(&viewer)?
            .into_iter()
            .collect()
    };
    let page = select(users, cursor, Order::Ascending, |u| u.name.clone()).or_page(&viewer)?;
    let (status, error) = match refusal {
        Some(r) => (r.status, r.message),
        None => (StatusCode::OK, String::new()),
    };
    let data = UsersPage {
        chrome: Chrome::signed_in(&viewer, "Users", uri, Section::Access),
        access_at: "users",
        can_create,
        rows: page.items.iter().map(UserRow::of).collect(),
        pager: Pager::new("/ui/users", cursor, page.next_cursor.as_deref()),
        error,
        draft,
    };
    Ok(render(status, &data))
}

/// A new user. (No `Debug`: it carries a password.)
#[derive(Deserialize)]
pub struct NewUserForm {
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    confirm: String,
    instance_admin: Option<String>,
}

/// `POST /ui/users`: creates a user (instance admins), as `POST /api/v1/users`.
pub async fn create(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    UiForm(viewer, form): UiForm<NewUserForm>,
) -> Result<Response, UiError> {
    let draft = Draft {
        name: form.name.clone(),
        instance_admin: form.instance_admin.is_some(),
    };
    if form.password != form.confirm {
        let refusal = Refusal::bad_input("the two passwords differ: type the same password twice");
        return show(&app, viewer, &uri, None, Some(refusal), draft).await;
    }
    let password = Some(form.password.as_str()).filter(|p| !p.is_empty());
    match app
        .services
        .create_user(&viewer.who, &form.name, password, draft.instance_admin)
        .await
    {
        Ok(user) => {
            tracing::info!(
                user = user.name,
                by = viewer.who.actor(),
                "user created (UI)"
            );
            see_other(&format!("{}?done=created", user_page(&user.name)))
        }
        Err(e) => {
            let refusal = Refusal::of(e, &viewer)?;
            show(&app, viewer, &uri, None, Some(refusal), draft).await
        }
    }
}
