//! The LockInfo body Terraform and OpenTofu send with LOCK and UNLOCK: read once, its `ID`
//! taken out, and its text checked before it is stored and shown to other clients.

use serde_json::Value;

use crate::printable::{first_control, refuse_control};
use crate::{Error, Result};

/// Longest LockInfo body accepted.
pub(crate) const MAX_LOCK_INFO: usize = 64 * 1024;

/// Fields Terraform fills with one-line text (names, ids, times); `Info` is free text.
const ONE_LINE_FIELDS: [&str; 6] = ["ID", "Operation", "Who", "Version", "Created", "Path"];

/// A LockInfo body as read once: its `ID`, the text as sent, and the parsed JSON (for the
/// `lock.acquired` event, so the body is not parsed twice).
pub(crate) struct LockInfo {
    pub id: Option<String>,
    pub text: String,
    pub value: Value,
}

/// Reads the `ID` out of a LockInfo body, returning it with the body as text.
pub(crate) fn parse_lock_info(body: &[u8]) -> Result<(Option<String>, String)> {
    read_lock_info(body).map(|info| (info.id, info.text))
}

pub(crate) fn read_lock_info(body: &[u8]) -> Result<LockInfo> {
    if body.len() > MAX_LOCK_INFO {
        return Err(Error::TooLarge(format!(
            "lock info is larger than {MAX_LOCK_INFO} bytes"
        )));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| Error::BadRequest("lock info is not UTF-8".into()))?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::BadRequest(format!("lock info is not valid JSON: {e}")))?;
    let object = value
        .as_object()
        .ok_or_else(|| Error::BadRequest("lock info is not a JSON object".into()))?;
    for (key, field) in object {
        check_text(key, field)?;
    }
    let id = match object.get("ID") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Some(_) => {
            return Err(Error::BadRequest(
                "lock info \"ID\" must be a non-empty string of at most 256 characters".into(),
            ));
        }
    };
    Ok(LockInfo {
        id,
        text: text.to_owned(),
        value,
    })
}

/// The lock's text is stored, shown to other clients in 423 answers and printed by CLIs:
/// no control characters in the one-line fields, and elsewhere none but tab and line breaks.
fn check_text(key: &str, field: &Value) -> Result<()> {
    let name = format!("lock info {key:?}");
    let one_line = ONE_LINE_FIELDS.contains(&key);
    let mut pending = vec![field];
    refuse_control("a lock info field name", key)?;
    while let Some(value) = pending.pop() {
        match value {
            Value::String(s) if one_line => refuse_control(&name, s)?,
            Value::String(s) => refuse_control(&name, &s.replace(['\t', '\n', '\r'], " "))?,
            Value::Array(items) => pending.extend(items),
            Value::Object(fields) => {
                if let Some(inner) = fields.keys().find(|k| first_control(k).is_some()) {
                    refuse_control(&name, inner)?;
                }
                pending.extend(fields.values());
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_info_parsing() {
        let ok = parse_lock_info(br#"{"ID":"abc","Operation":"OperationTypeApply"}"#).ok();
        assert_eq!(ok.map(|(id, _)| id), Some(Some("abc".into())));
        assert_eq!(
            parse_lock_info(br#"{"Who":"x"}"#).ok().map(|(id, _)| id),
            Some(None)
        );
        for bad in [
            &b"nope"[..],
            b"[1]",
            b"{\"ID\":5}",
            b"{\"ID\":\"\"}",
            b"\xff",
        ] {
            assert!(
                matches!(parse_lock_info(bad), Err(Error::BadRequest(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_lock_info(&vec![b' '; MAX_LOCK_INFO + 1]),
            Err(Error::TooLarge(_))
        ));
    }

    #[test]
    fn control_characters_are_refused_naming_the_field() {
        let refusal = |body: &str| {
            parse_lock_info(body.as_bytes())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert_eq!(
            refusal(r#"{"ID":"a\u0000b"}"#),
            "lock info \"ID\" contains the control character U+0000, which statehouse does not accept there"
        );
        assert!(refusal(r#"{"ID":"x","Who":"\u001b[2Jevil"}"#).contains("lock info \"Who\""));
        assert!(refusal(r#"{"ID":"x","Path":"a\nb"}"#).contains("U+000A"));
        assert!(refusal(r#"{"ID":"x","Info":"a\u0000"}"#).contains("lock info \"Info\""));
        assert!(refusal(r#"{"ID":"x","Extra":{"k":["\u0000"]}}"#).contains("\"Extra\""));
        assert!(refusal(r#"{"ID":"x","Extra":{"\u0000":1}}"#).contains("\"Extra\""));
        assert!(refusal("{\"I\\u0000D\":\"x\"}").contains("field name"));
        // Free text keeps its line breaks and tabs.
        let info = r#"{"ID":"x","Info":"line one\nline\ttwo","Who":"me@host"}"#;
        assert_eq!(
            parse_lock_info(info.as_bytes()).ok().map(|(id, _)| id),
            Some(Some("x".into()))
        );
    }
}
