//! libpq's key/value connection strings (`host=db1,db2 dbname=statehouse user='a b'`), read
//! into pairs.

/// libpq's key/value syntax: `key = value` pairs separated by white space; a value may be
/// single-quoted (`'a b'`), with `\'` and `\\` escapes.
pub(super) fn parse_key_values(text: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("{key:?} has no value (write key=value)"));
        }
        if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || key.is_empty() {
            return Err(format!("{key:?} is not a parameter name"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("the value of {key} has no closing quote")),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("the value of {key} ends in a backslash")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("the value of {key} ends in a backslash")),
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if value.contains('\0') {
            return Err(format!("the value of {key} contains a NUL byte"));
        }
        pairs.push((key, value));
    }
}
