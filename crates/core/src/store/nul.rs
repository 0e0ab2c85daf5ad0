//! Text with NUL characters in journal rows.
//!
//! PostgreSQL's `text` cannot hold U+0000 (SQLite's can), yet an audit entry must record what a
//! caller sent — a login name, a state name from a path — NULs included, and one such entry must
//! never make a whole batch fail. So both stores write journal rows (audit entries, events) the
//! same way: a row whose text fields are free of NUL is stored as it is; a row with a NUL in any
//! text field is stored with *every* text field escaped (`\` as `\\`, NUL as `\0`) and flagged
//! (`nul_escaped`). Reading undoes the escape, so listings, exports and the hash chain see the
//! original content. Rows written before the flag existed read as unescaped.

use std::borrow::Cow;

use crate::audit::AuditRecord;
use crate::events::Event;
use crate::{Error, Result};

/// Whether a row holding these fields must be stored escaped.
pub fn needs_escape<'a>(fields: impl IntoIterator<Item = Option<&'a str>>) -> bool {
    fields.into_iter().flatten().any(|f| f.contains('\0'))
}

/// Whether an audit entry's row must be stored escaped.
pub fn record_needs_escape(r: &AuditRecord) -> bool {
    needs_escape([
        Some(r.actor.as_str()),
        r.token_id.as_deref(),
        r.token_name.as_deref(),
        r.source_ip.as_deref(),
        Some(r.action.as_str()),
        r.workspace.as_deref(),
        r.target.as_deref(),
        r.reason.as_deref(),
        r.detail.as_deref(),
    ])
}

/// Whether an event's row must be stored escaped (its payload is JSON text, which escapes NUL
/// itself).
pub fn event_needs_escape(e: &Event) -> bool {
    needs_escape([
        Some(e.kind.as_str()),
        e.workspace_id.as_deref(),
        e.workspace.as_deref(),
        e.subject.as_deref(),
        Some(e.actor.as_str()),
    ])
}

/// `text` as stored in an escaped row: `\` doubled, NUL as `\0`.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.contains(['\\', '\0']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` as stored in a row flagged `escaped` (as it is otherwise).
pub fn stored(text: &str, escaped: bool) -> Cow<'_, str> {
    if escaped {
        escape(text)
    } else {
        Cow::Borrowed(text)
    }
}

/// The original of a field read from a row flagged `escaped` (as read otherwise).
pub fn original(text: String, escaped: bool) -> Result<String> {
    if !escaped || !text.contains('\\') {
        return Ok(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('0') => out.push('\0'),
            _ => {
                return Err(Error::Internal(
                    "a stored journal row has a broken escape sequence".into(),
                ));
            }
        }
    }
    Ok(out)
}

/// [`original`] of an optional field.
pub fn original_opt(text: Option<String>, escaped: bool) -> Result<Option<String>> {
    text.map(|t| original(t, escaped)).transpose()
}

/// How a query compares a stored text column with `value`: rows stored unescaped hold `value`
/// as it is, escaped rows hold [`escape`]`(value)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Both kinds of rows hold the same text: `column = value`.
    Same(String),
    /// Only escaped rows can match (the value has a NUL): `escaped AND column = value`.
    EscapedOnly(String),
    /// `column = CASE WHEN escaped THEN escaped_form ELSE plain END`.
    Either { plain: String, escaped: String },
}

/// How to find rows whose column equals `value` (see [`Match`]).
pub fn matching(value: &str) -> Match {
    let escaped = escape(value);
    if value.contains('\0') {
        Match::EscapedOnly(escaped.into_owned())
    } else if escaped == value {
        Match::Same(value.to_owned())
    } else {
        Match::Either {
            plain: value.to_owned(),
            escaped: escaped.into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_is_unambiguous() {
        for text in ["", "plain", "a\0b", "\\0", "\\", "\0\\\0", "ünï\0côde\\\\"] {
            let stored = escape(text);
            assert!(!stored.contains('\0'), "{text:?}");
            assert_eq!(
                original(stored.into_owned(), true).ok().as_deref(),
                Some(text)
            );
        }
        // A literal backslash-zero and a NUL are stored differently.
        assert_ne!(escape("\\0"), escape("\0"));
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            original("a\\0b".into(), false).ok().as_deref(),
            Some("a\\0b")
        );
        assert!(original("bad\\x".into(), true).is_err());
        assert!(original("trailing\\".into(), true).is_err());
    }

    #[test]
    fn rows_need_escaping_only_with_a_nul() {
        assert!(!needs_escape([Some("a\\b"), None]));
        assert!(needs_escape([Some("ok"), Some("x\0y")]));
    }

    #[test]
    fn matches_cover_both_kinds_of_rows() {
        assert_eq!(matching("ci"), Match::Same("ci".into()));
        assert_eq!(matching("a\0b"), Match::EscapedOnly("a\\0b".into()));
        assert_eq!(
            matching("a\\b"),
            Match::Either {
                plain: "a\\b".into(),
                escaped: "a\\\\b".into()
            }
        );
    }
}
