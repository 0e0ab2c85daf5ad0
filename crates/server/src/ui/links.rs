//! Addresses of UI pages, built in one place so that every link escapes what it carries.
//!
//! A state's name keeps its `/` in UI addresses (`/ui/state/default/prod/network`): names are
//! `[A-Za-z0-9._-]` segments, so nothing in them needs escaping, but every piece is escaped
//! anyway in case that rule ever widens.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but unreserved characters is escaped inside one path segment or query value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A query-string value (or one path segment), escaped.
pub fn query_escape(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// A state name as path segments, each escaped, the `/` between them kept.
fn name_path(name: &str) -> String {
    name.split('/')
        .map(query_escape)
        .collect::<Vec<_>>()
        .join("/")
}

/// The state's page.
pub fn state_page(ws: &str, name: &str) -> String {
    format!("/ui/state/{}/{}", query_escape(ws), name_path(name))
}

/// A registered database's page (backups, health, actions).
pub fn database_page(ws: &str, db: &str) -> String {
    format!("/ui/database/{}/{}", query_escape(ws), query_escape(db))
}

/// The form that adds a database to a workspace.
pub fn new_database_form(ws: &str) -> String {
    format!("/ui/databases/{}/new", query_escape(ws))
}

/// A page about the state under `/ui/<what>/<ws>/<name>` (diff, rollback, unlock, …).
pub fn state_action(what: &str, ws: &str, name: &str) -> String {
    format!("/ui/{what}/{}/{}", query_escape(ws), name_path(name))
}

/// The REST API's download of one version (the session cookie authenticates a GET).
pub fn version_download(ws: &str, name: &str, version: i64) -> String {
    format!(
        "/api/v1/workspaces/{}/states/{}/versions/{version}/body",
        query_escape(ws),
        query_escape(name)
    )
}

/// The states list of a workspace.
pub fn states_of(ws: &str) -> String {
    format!("/ui/states?ws={}", query_escape(ws))
}

/// Single sign-on's start, back to `next` once signed in.
pub fn oidc_start(next: &str) -> String {
    if next == "/" {
        "/ui/oidc/start".to_owned()
    } else {
        format!("/ui/oidc/start?next={}", query_escape(next))
    }
}

/// A user's page.
pub fn user_page(name: &str) -> String {
    format!("/ui/users/{}", query_escape(name))
}

/// A workspace's settings page.
pub fn workspace_page(ws: &str) -> String {
    format!("/ui/workspaces/{}", query_escape(ws))
}

/// A workspace's members.
pub fn members_of(ws: &str) -> String {
    format!("/ui/workspaces/{}/members", query_escape(ws))
}

/// A workspace's webhooks.
pub fn webhooks_of(ws: &str) -> String {
    format!("/ui/workspaces/{}/webhooks", query_escape(ws))
}

/// One webhook's page (settings and delivery log).
pub fn webhook_page(ws: &str, id: &str) -> String {
    format!("{}/{}", webhooks_of(ws), query_escape(id))
}

/// A workspace's storage targets.
pub fn targets_of(ws: &str) -> String {
    format!("/ui/workspaces/{}/targets", query_escape(ws))
}

/// One storage target's page.
pub fn target_page(ws: &str, name: &str) -> String {
    format!("{}/{}", targets_of(ws), query_escape(name))
}

/// A workspace's notifiers.
pub fn notifiers_of(ws: &str) -> String {
    format!("/ui/workspaces/{}/notifiers", query_escape(ws))
}

/// One notifier's page.
pub fn notifier_page(ws: &str, name: &str) -> String {
    format!("{}/{}", notifiers_of(ws), query_escape(name))
}

/// A workspace's backup encryption and verification server.
pub fn backup_encryption_of(ws: &str) -> String {
    format!("/ui/workspaces/{}/backup-encryption", query_escape(ws))
}

/// The confirmation page of a token's revocation.
pub fn token_revoke(id: &str) -> String {
    format!("/ui/tokens/{}/revoke", query_escape(id))
}

/// The S3 keys page, showing a workspace's keys (all the viewer's workspaces for `""`).
pub fn s3_keys_of(ws: &str) -> String {
    format!("/ui/s3-keys?workspace={}", query_escape(ws))
}

/// The confirmation page of an S3 key's revocation.
pub fn s3_key_revoke(ws: &str, access_key_id: &str) -> String {
    format!(
        "/ui/s3-keys/{}/{}/revoke",
        query_escape(ws),
        query_escape(access_key_id)
    )
}

/// `path` when it is a path on this site (`/…`, not `//host` or `/\host`, no control
/// characters): the only places a sign-in or a theme change may send the browser back to.
pub fn safe_local_path(path: &str) -> Option<&str> {
    let ok = path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control() || c == '\\');
    ok.then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_addresses_keep_slashes_and_escape_the_rest() {
        assert_eq!(
            state_page("default", "prod/network"),
            "/ui/state/default/prod/network"
        );
        assert_eq!(
            state_action("diff", "ops", "a b/c?d"),
            "/ui/diff/ops/a%20b/c%3Fd"
        );
        assert_eq!(
            version_download("default", "prod/network", 3),
            "/api/v1/workspaces/default/states/prod%2Fnetwork/versions/3/body"
        );
    }

    #[test]
    fn access_addresses_escape_what_they_carry() {
        assert_eq!(user_page("a b@c"), "/ui/users/a%20b%40c");
        assert_eq!(members_of("ops"), "/ui/workspaces/ops/members");
        assert_eq!(
            webhook_page("ops", "x/y"),
            "/ui/workspaces/ops/webhooks/x%2Fy"
        );
        assert_eq!(token_revoke("t?1"), "/ui/tokens/t%3F1/revoke");
        assert_eq!(
            s3_key_revoke("ops", "SHK/1"),
            "/ui/s3-keys/ops/SHK%2F1/revoke"
        );
    }

    #[test]
    fn only_local_paths_are_followed() {
        assert_eq!(safe_local_path("/ui/states?ws=a"), Some("/ui/states?ws=a"));
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "/ok\\..",
            "/a\nb",
            "",
            "ui/states",
        ] {
            assert_eq!(safe_local_path(bad), None, "{bad:?}");
        }
    }
}
