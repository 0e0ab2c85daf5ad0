//! JSON bodies whose strings hold U+0000 are refused with a 400 naming the field: PostgreSQL
//! text cannot store the character (SQLite can, and both stores must take the same input),
//! and no name, URL, secret or setting statehouse keeps needs one. Valid JSON can only carry
//! it as the escape `\u0000`, so the body is scanned for that first and parsed only to name
//! the field.

use axum::body::Body;
use axum::extract::Request;
use serde_json::Value;
use statehouse_core::Error;
use statehouse_core::printable::nul_refused;

use super::ApiError;

/// The largest JSON body read (axum's default limit for JSON bodies).
const MAX_JSON_BODY: usize = 2 * 1024 * 1024;

/// The request unchanged when its body has no `\u0000` escape, else the refusal.
pub async fn refuse_nul_strings(request: Request) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|_| {
            Error::TooLarge(format!(
                "the JSON body is larger than {} MiB",
                MAX_JSON_BODY / (1024 * 1024)
            ))
        })?;
    if has_nul_escape(&bytes) {
        // Malformed JSON is left to the body's own parser to describe.
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes) {
            let field = nul_field(&value).unwrap_or_default();
            return Err(nul_refused(&format!("field {field:?}")).into());
        }
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Whether the JSON text holds the escape `\u0000` (outside strings a backslash is not valid
/// JSON, so every backslash found starts an escape).
fn has_nul_escape(text: &[u8]) -> bool {
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'\\' {
            if text[i + 1..].starts_with(b"u0000") {
                return true;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    false
}

/// The path of the first key or string holding U+0000: `name`, `headers.X-Token`, `items[2]`.
fn nul_field(value: &Value) -> Option<String> {
    let mut pending = vec![(String::new(), value)];
    while let Some((path, value)) = pending.pop() {
        match value {
            Value::String(s) if s.contains('\0') => return Some(path),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate().rev() {
                    pending.push((format!("{path}[{i}]"), item));
                }
            }
            Value::Object(fields) => {
                for (key, item) in fields.iter().rev() {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if key.contains('\0') {
                        return Some(statehouse_core::printable::escaped(&path));
                    }
                    pending.push((path, item));
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_real_escapes_only() {
        assert!(has_nul_escape(br#"{"name":"x\u0000y"}"#));
        assert!(has_nul_escape(br#"{"a":"\\\u0000"}"#));
        assert!(
            !has_nul_escape(br#"{"name":"x\\u0000y"}"#),
            "an escaped backslash"
        );
        assert!(has_nul_escape(br#"{"name":"\u00001"}"#));
        assert!(!has_nul_escape(br#"{"name":"\u0001"}"#));
        assert!(!has_nul_escape(b"\\"));
    }

    #[test]
    fn names_the_field() -> Result<(), serde_json::Error> {
        let value: Value =
            serde_json::from_str(r#"{"a":"ok","cfg":{"headers":[{"k":"v"},{"k":"x\u0000"}]}}"#)?;
        assert_eq!(nul_field(&value).as_deref(), Some("cfg.headers[1].k"));
        let value: Value = serde_json::from_str(r#"{"name":"x\u0000y"}"#)?;
        assert_eq!(nul_field(&value).as_deref(), Some("name"));
        let value: Value = serde_json::from_str(r#"{"cfg":{"a\u0000":1}}"#)?;
        assert_eq!(nul_field(&value).as_deref(), Some("cfg.a\\u{0}"));
        Ok(())
    }
}
