//! Generic webhooks: the notification as JSON, or a body template of the user's own.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use statehouse_core::clock::Timestamp;

use statehouse_outbound::HttpClient;

use crate::error::NotifyError;
use crate::http::{exchange, expect_success};
use crate::notification::{Notification, Severity};
use crate::spec::{WEBHOOK_URL_HINT, WebhookSpec, check_url};

/// The placeholders a body template may use, each written `{{name}}`.
pub const PLACEHOLDERS: &[&str] = &[
    "event",
    "title",
    "message",
    "severity",
    "workspace",
    "database",
    "at",
    "link",
];

pub(crate) async fn send(
    spec: &WebhookSpec,
    n: &Notification,
    client: &HttpClient,
    timeout: Duration,
) -> Result<(), NotifyError> {
    let url = check_url("url", spec.url.expose(), WEBHOOK_URL_HINT)?;
    let headers = header_map(spec)?;
    let answer = exchange(
        client,
        spec.method.as_reqwest(),
        &url,
        |request| {
            let request = request.headers(headers).body(body(spec, n));
            if has_content_type(spec) {
                request
            } else {
                request.header(CONTENT_TYPE, default_content_type(spec))
            }
        },
        timeout,
    )
    .await?;
    expect_success("the webhook receiver", &answer)
}

fn has_content_type(spec: &WebhookSpec) -> bool {
    spec.headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("content-type"))
}

/// Without a `Content-Type` header: JSON for the default body and for templates that look like
/// JSON (start with `{` or `[`; `{{` opens a placeholder), plain text otherwise.
fn default_content_type(spec: &WebhookSpec) -> &'static str {
    let Some(template) = &spec.body_template else {
        return "application/json";
    };
    let template = template.trim_start();
    let looks_like_json =
        template.starts_with('[') || (template.starts_with('{') && !template.starts_with("{{"));
    if looks_like_json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// Whether the body is JSON, so placeholders must be filled JSON-escaped.
pub(crate) fn is_json(spec: &WebhookSpec) -> bool {
    let content_type = spec
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.expose().to_ascii_lowercase())
        .unwrap_or_else(|| default_content_type(spec).to_owned());
    content_type.contains("json")
}

fn header_map(spec: &WebhookSpec) -> Result<reqwest::header::HeaderMap, NotifyError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (name, value) in &spec.headers {
        let header_name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
            NotifyError::Invalid(format!(
                "header name {name:?} is not valid: use letters, digits and -, e.g. Authorization"
            ))
        })?;
        let mut header_value = HeaderValue::from_str(value.expose()).map_err(|_| {
            NotifyError::Invalid(format!(
                "the value of header {name:?} is not valid: it must be one line of visible \
                 ASCII characters"
            ))
        })?;
        header_value.set_sensitive(true);
        map.append(header_name, header_value);
    }
    Ok(map)
}

pub(crate) fn body(spec: &WebhookSpec, n: &Notification) -> String {
    match &spec.body_template {
        None => n.to_json().to_string(),
        Some(template) => render(template, n, is_json(spec)),
    }
}

fn placeholder_value(name: &str, n: &Notification) -> Option<String> {
    Some(match name {
        "event" => n.event.clone(),
        "title" => n.title.clone(),
        "message" => n.message.clone(),
        "severity" => n.severity.as_str().to_owned(),
        "workspace" => n.workspace.clone(),
        "database" => n.database.clone().unwrap_or_default(),
        "at" => n.at.to_rfc3339(),
        "link" => n.link.clone().unwrap_or_default(),
        _ => return None,
    })
}

/// Fills `{{name}}` placeholders (spaces inside the braces allowed). In a JSON body values are
/// escaped as the inside of a JSON string, so a template writes `"title": "{{title}}"`. An
/// unknown placeholder stays as written ([`validate`] refuses it up front).
pub(crate) fn render(template: &str, n: &Notification, json: bool) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        match placeholder_value(name, n) {
            Some(value) if json => out.push_str(&json_string_inside(&value)),
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `a "b"` → `a \"b\"`: a JSON string literal without its quotes.
fn json_string_inside(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_owned()).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

fn placeholders_in(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        names.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    names
}

pub(crate) fn validate(spec: &WebhookSpec) -> Result<(), NotifyError> {
    check_url("url", spec.url.expose(), WEBHOOK_URL_HINT)?;
    header_map(spec)?;
    let Some(template) = &spec.body_template else {
        return Ok(());
    };
    if template.trim().is_empty() {
        return Err(NotifyError::Invalid(
            "body_template is empty: leave it out to send the notification as JSON".to_owned(),
        ));
    }
    for name in placeholders_in(template) {
        if !PLACEHOLDERS.contains(&name) {
            return Err(NotifyError::Invalid(format!(
                "body_template uses an unknown placeholder {{{{{name}}}}}; known ones are {}",
                PLACEHOLDERS
                    .iter()
                    .map(|p| format!("{{{{{p}}}}}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
    }
    if is_json(spec) {
        // Filled with awkward values (quotes, backslashes, line breaks) the body must still be
        // JSON: catches templates that put a placeholder outside a string.
        let sample = Notification {
            event: "backup.failed".to_owned(),
            severity: Severity::Critical,
            title: "Backup \"nightly\" failed".to_owned(),
            message: "pg_dump said:\n  C:\\ no such file".to_owned(),
            workspace: "prod".to_owned(),
            database: Some("billing".to_owned()),
            at: Timestamp(1_700_000_000_000),
            link: Some("https://statehouse.example.com/backups?id=1&x=\"y\"".to_owned()),
            fields: Vec::new(),
        };
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&render(template, &sample, true))
        {
            return Err(NotifyError::Invalid(format!(
                "body_template is not valid JSON once filled in ({e}): put placeholders inside \
                 strings, e.g. {{\"text\": \"{{{{title}}}}\"}}, or set a Content-Type header \
                 that is not JSON"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_notification;

    #[test]
    fn render_fills_known_placeholders_and_leaves_the_rest() {
        let n = test_notification("prod \"eu\"", Timestamp(0));
        assert_eq!(
            render("{{workspace}}/{{ database }}/{{nope}}/{{at", &n, false),
            "prod \"eu\"//{{nope}}/{{at"
        );
        assert_eq!(
            render("{\"w\": \"{{workspace}}\", \"at\": \"{{at}}\"}", &n, true),
            "{\"w\": \"prod \\\"eu\\\"\", \"at\": \"1970-01-01T00:00:00Z\"}"
        );
        assert_eq!(render("no placeholders", &n, true), "no placeholders");
    }
}
