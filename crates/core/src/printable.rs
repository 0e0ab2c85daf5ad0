//! What text statehouse accepts where it comes in from outside (names, ids, lock info, values
//! read from state bodies) and is stored or shown again. PostgreSQL text cannot hold U+0000
//! (SQLite can: both stores must take the same input), and control characters — terminal
//! escape sequences among them — do not belong in names and ids. One place says what is
//! refused and how the refusal reads: a 400 naming the field and the character.

use crate::{Error, Result};

/// The first control character in `text` (U+0000 and the other C0 codes, DEL, C1 codes).
pub fn first_control(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// Refuses `text` when it holds a control character; `field` says where it came from, e.g.
/// `field "name"` or `query parameter "actor"`.
pub fn refuse_control(field: &str, text: &str) -> Result<()> {
    match first_control(text) {
        Some(c) => Err(Error::BadRequest(format!(
            "{field} contains the control character {}, which statehouse does not accept there",
            code_point(c)
        ))),
        None => Ok(()),
    }
}

/// The refusal of a U+0000 in `field`, where other characters are free (JSON bodies).
pub fn nul_refused(field: &str) -> Error {
    Error::BadRequest(format!(
        "{field} contains a NUL character (U+0000), which statehouse cannot store"
    ))
}

/// `text` with its control characters escaped (`x\u{0}y`), for log lines, audit entries and
/// messages about refused input.
pub fn escaped(text: &str) -> String {
    if first_control(text).is_none() {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_named_with_their_field() {
        assert!(refuse_control("field \"name\"", "plain-name_1.x@y").is_ok());
        for (text, code) in [
            ("x\0y", "U+0000"),
            ("\u{1b}[31mred", "U+001B"),
            ("tab\there", "U+0009"),
            ("del\u{7f}", "U+007F"),
            ("c1\u{9b}", "U+009B"),
        ] {
            let message = refuse_control("field \"name\"", text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert_eq!(
                message,
                format!(
                    "field \"name\" contains the control character {code}, which statehouse does not accept there"
                )
            );
        }
    }

    #[test]
    fn nul_refusals_name_the_field() {
        assert_eq!(
            nul_refused("field \"url\"").to_string(),
            "field \"url\" contains a NUL character (U+0000), which statehouse cannot store"
        );
    }

    #[test]
    fn escaping_keeps_printable_text() {
        assert_eq!(escaped("alice"), "alice");
        assert_eq!(escaped("x\0y\u{1b}"), "x\\u{0}y\\u{1b}");
        assert_eq!(escaped("é✓"), "é✓");
    }
}
