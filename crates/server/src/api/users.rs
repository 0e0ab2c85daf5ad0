//! `/api/v1/users` (instance admins; a user may read itself and set its own password) and
//! `/api/v1/workspaces/{ws}/members` (workspace admins).

use std::str::FromStr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use statehouse_core::access::Role;
use statehouse_core::accounts::{Membership, User};
use statehouse_core::service::UserChange;
use utoipa::ToSchema;

use super::extract::Order;
use super::{ApiError, ApiJson, ApiQuery, Caller, ErrorBody, Page, PageParams};
use crate::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub name: String,
    /// Manages users and instance tokens, and is admin in every workspace.
    pub instance_admin: bool,
    /// False: the user cannot log in until a password is set.
    pub has_password: bool,
    /// A disabled user cannot log in; its tokens and sessions do not work.
    pub disabled: bool,
    pub disabled_at: Option<String>,
    pub created_at: String,
    /// The user's workspace roles (on single-user answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memberships: Option<Vec<MembershipView>>,
}

impl UserView {
    pub fn new(user: &User, memberships: Option<&[Membership]>) -> Self {
        UserView {
            id: user.id.clone(),
            name: user.name.clone(),
            instance_admin: user.instance_admin,
            has_password: user.has_password(),
            disabled: user.is_disabled(),
            disabled_at: user.disabled_at.map(|t| t.to_rfc3339()),
            created_at: user.created_at.to_rfc3339(),
            memberships: memberships.map(|m| m.iter().map(MembershipView::new).collect()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipView {
    pub user: String,
    pub workspace: String,
    /// `outputs`, `viewer`, `editor` or `admin`.
    pub role: String,
    pub granted_at: String,
}

impl MembershipView {
    fn new(m: &Membership) -> Self {
        MembershipView {
            user: m.user_name.clone(),
            workspace: m.workspace_name.clone(),
            role: m.role.to_string(),
            granted_at: m.granted_at.to_rfc3339(),
        }
    }
}

/// `outputs`, `viewer`, `editor` or `admin`; anything else is a 400 naming them.
pub fn parse_role(role: &str) -> Result<Role, ApiError> {
    Ok(Role::from_str(role)?)
}

/// All users, by name (instance admins).
#[utoipa::path(get, path = "/users", tag = "users", operation_id = "list_users",
    params(PageParams),
    responses((status = 200, body = Page<UserView>)))]
pub async fn list(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<UserView>>, ApiError> {
    let users = app.services.list_users(&who).await?;
    let views = users.iter().map(|u| UserView::new(u, None)).collect();
    Ok(Json(Page::select(views, &page, Order::Ascending, |u| {
        u.name.clone()
    })?))
}

/// A new user. (No `Debug`: the password must never reach a log.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// 1–64 characters: letters, digits, `.`, `_`, `-`, `@` (stored in lower case).
    pub name: String,
    /// At least 10 characters; without one the user cannot log in (but can own tokens).
    pub password: Option<String>,
    #[serde(default)]
    pub instance_admin: bool,
}

/// Creates a user (instance admins).
#[utoipa::path(post, path = "/users", tag = "users", operation_id = "create_user", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    ApiJson(body): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = app
        .services
        .create_user(
            &who,
            &body.name,
            body.password.as_deref(),
            body.instance_admin,
        )
        .await?;
    tracing::info!(user = user.name, by = who.actor(), "user created");
    Ok((StatusCode::CREATED, Json(UserView::new(&user, Some(&[])))))
}

/// One user with its workspace roles (instance admins, or the user itself).
#[utoipa::path(get, path = "/users/{user}", tag = "users", operation_id = "show_user",
    params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = UserView)))]
pub async fn show(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let user = app.services.user(&who, &name).await?;
    let memberships = app.services.user_memberships(&who, &name).await?;
    Ok(Json(UserView::new(&user, Some(&memberships))))
}

/// Fields to change; absent ones stay. (No `Debug`: the password must never reach a log.)
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new password (at least 10 characters); ends the user's sessions.
    pub password: Option<String>,
    pub instance_admin: Option<bool>,
    /// true disables the user (its tokens and sessions stop working), false enables it.
    pub disabled: Option<bool>,
}

/// Sets a password, the instance admin flag, or disables/enables a user (instance admins; a
/// user may set its own password through a session or an unrestricted token).
#[utoipa::path(patch, path = "/users/{user}", tag = "users", operation_id = "change_user", request_body = UserPatch,
    params(("user" = String, Path, description = "user name")),
    responses((status = 200, body = UserView),
        (status = 409, body = ErrorBody, description = "would leave no enabled instance admin")))]
pub async fn change(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<UserView>, ApiError> {
    let change = UserChange {
        password: patch.password,
        instance_admin: patch.instance_admin,
        disabled: patch.disabled,
    };
    let user = app.services.update_user(&who, &name, change).await?;
    tracing::info!(user = user.name, by = who.actor(), "user changed");
    let memberships = app.services.user_memberships(&who, &user.name).await?;
    Ok(Json(UserView::new(&user, Some(&memberships))))
}

/// Deletes a user with its memberships, tokens and sessions (instance admins).
#[utoipa::path(delete, path = "/users/{user}", tag = "users", operation_id = "delete_user",
    params(("user" = String, Path, description = "user name")),
    responses((status = 204),
        (status = 409, body = ErrorBody, description = "oneself, or the last enabled instance admin")))]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let user = app.services.delete_user(&who, &name).await?;
    tracing::info!(user = user.name, by = who.actor(), "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a workspace and their roles, by user name (workspace admins).
#[utoipa::path(get, path = "/workspaces/{ws}/members", tag = "members",
    params(("ws" = String, Path, description = "workspace name"), PageParams),
    responses((status = 200, body = Page<MembershipView>)))]
pub async fn members(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path(ws): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<MembershipView>>, ApiError> {
    let members = app.services.members(&who, &ws).await?;
    let views = members.iter().map(MembershipView::new).collect();
    Ok(Json(Page::select(views, &page, Order::Ascending, |m| {
        m.user.clone()
    })?))
}

/// One member's role (workspace admins).
#[utoipa::path(get, path = "/workspaces/{ws}/members/{user}", tag = "members",
    params(("ws" = String, Path, description = "workspace name"),
        ("user" = String, Path, description = "user name")),
    responses((status = 200, body = MembershipView)))]
pub async fn member(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, user)): Path<(String, String)>,
) -> Result<Json<MembershipView>, ApiError> {
    let members = app.services.members(&who, &ws).await?;
    let wanted = user.trim().to_lowercase();
    members
        .iter()
        .find(|m| m.user_name == wanted)
        .map(|m| Json(MembershipView::new(m)))
        .ok_or_else(|| {
            ApiError(statehouse_core::Error::NotFound(format!(
                "user {user:?} is not a member of workspace {ws:?}"
            )))
        })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRole {
    /// `outputs`, `viewer`, `editor` or `admin`.
    pub role: String,
}

/// Gives a user a role in the workspace, replacing the one it had (workspace admins).
#[utoipa::path(put, path = "/workspaces/{ws}/members/{user}", tag = "members",
    request_body = MemberRole,
    params(("ws" = String, Path, description = "workspace name"),
        ("user" = String, Path, description = "user name")),
    responses((status = 200, body = MembershipView)))]
pub async fn set_member(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<MemberRole>,
) -> Result<Json<MembershipView>, ApiError> {
    let role = parse_role(&body.role)?;
    let membership = app.services.set_member(&who, &ws, &user, role).await?;
    tracing::info!(workspace = ws, user = membership.user_name, %role, by = who.actor(), "member role set");
    Ok(Json(MembershipView::new(&membership)))
}

/// Takes a user's role in the workspace away (workspace admins).
#[utoipa::path(delete, path = "/workspaces/{ws}/members/{user}", tag = "members",
    params(("ws" = String, Path, description = "workspace name"),
        ("user" = String, Path, description = "user name")),
    responses((status = 204)))]
pub async fn remove_member(
    State(app): State<Arc<AppState>>,
    Caller(who): Caller,
    Path((ws, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app.services.remove_member(&who, &ws, &user).await?;
    tracing::info!(workspace = ws, user, by = who.actor(), "member removed");
    Ok(StatusCode::NO_CONTENT)
}
