//! Rewriting a state's `serial` and nothing else, for rollback: an old version is written
//! back with a serial above the current one so that the next `terraform plan` accepts it.

use crate::{Error, statefile};

/// The same state body with its top-level `serial` replaced; every other byte is kept.
pub fn with_serial(body: &[u8], serial: i64) -> Result<Vec<u8>, Error> {
    if serial < 0 {
        return Err(Error::BadRequest(
            "a state serial must not be negative".into(),
        ));
    }
    let meta = statefile::inspect(body)?;
    if meta.client_encrypted {
        return Err(Error::BadRequest(
            "this state is client-side encrypted (OpenTofu): its real serial is inside the encrypted data, which statehouse cannot rewrite; push the old state with `tofu state push -force` instead".into(),
        ));
    }
    let span = top_level_value_span(body, "serial").ok_or_else(|| {
        Error::Internal("state has a serial but its position was not found".into())
    })?;
    let replacement = serial.to_string();
    let mut out = Vec::with_capacity(body.len() + replacement.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(replacement.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    Ok(out)
}

/// Where the value of `key` in the top-level object lies. `body` is valid JSON (checked by
/// the caller); the scanner only needs to skip strings and nesting correctly.
fn top_level_value_span(body: &[u8], key: &str) -> Option<std::ops::Range<usize>> {
    let mut pos = skip_whitespace(body, 0);
    if body.get(pos) != Some(&b'{') {
        return None;
    }
    pos += 1;
    let mut found = None;
    loop {
        pos = skip_whitespace(body, pos);
        match body.get(pos)? {
            b'}' => return found,
            b',' => {
                pos += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(body, pos)?;
        let name: String = serde_json::from_slice(&body[pos..key_end]).ok()?;
        pos = skip_whitespace(body, key_end);
        if body.get(pos) != Some(&b':') {
            return None;
        }
        let value_start = skip_whitespace(body, pos + 1);
        let value_end = skip_value(body, value_start)?;
        if name == key {
            // The last occurrence wins, as in most JSON readers (Terraform's included).
            found = Some(value_start..value_end);
        }
        pos = value_end;
    }
}

fn skip_whitespace(body: &[u8], mut pos: usize) -> usize {
    while matches!(body.get(pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        pos += 1;
    }
    pos
}

/// `pos` is at an opening quote; returns the position after the closing quote.
fn skip_string(body: &[u8], mut pos: usize) -> Option<usize> {
    pos += 1;
    loop {
        match body.get(pos)? {
            b'\\' => pos += 2,
            b'"' => return Some(pos + 1),
            _ => pos += 1,
        }
    }
}

fn skip_value(body: &[u8], pos: usize) -> Option<usize> {
    match body.get(pos)? {
        b'"' => skip_string(body, pos),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut pos = pos;
            loop {
                match body.get(pos)? {
                    b'"' => {
                        pos = skip_string(body, pos)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(pos + 1);
                        }
                    }
                    _ => {}
                }
                pos += 1;
            }
        }
        _ => {
            let mut pos = pos;
            while let Some(b) = body.get(pos) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                pos += 1;
            }
            Some(pos)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn replaces_only_the_top_level_serial() {
        let body = br#"{
  "version": 4,
  "outputs": {"serial": {"value": 1, "type": "number"}, "s": {"value": "\"serial\": 9 }", "type": "string"}},
  "serial": 7,
  "lineage": "l",
  "resources": [{"x": [1, {"serial": 3}]}]
}"#;
        let out = with_serial(body, 42).unwrap();
        let expected = String::from_utf8_lossy(body).replace("\"serial\": 7,", "\"serial\": 42,");
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        assert_eq!(statefile::inspect(&out).unwrap().serial, 42);
    }

    #[test]
    fn compact_and_last_field() {
        let out = with_serial(br#"{"version":4,"lineage":"l","serial":1}"#, 1000).unwrap();
        assert_eq!(out, br#"{"version":4,"lineage":"l","serial":1000}"#);
    }

    #[test]
    fn refuses_encrypted_negative_and_non_states() {
        let encrypted = br#"{"serial":3,"lineage":"l","meta":{},"encrypted_data":"AA","encryption_version":"v0"}"#;
        assert!(
            matches!(with_serial(encrypted, 9), Err(Error::BadRequest(m)) if m.contains("client-side encrypted"))
        );
        assert!(matches!(
            with_serial(br#"{"version":4,"serial":1,"lineage":"l"}"#, -1),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(with_serial(b"[]", 1), Err(Error::BadRequest(_))));
    }
}
