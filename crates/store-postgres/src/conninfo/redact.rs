//! Connection strings as they may be shown: every password replaced by `***`.

use super::key_value::parse_key_values;

/// The connection string with any password replaced by `***` (URL user info, a `password`
/// parameter or pair). A key/value string that cannot be read is not shown at all.
pub fn redact(text: &str) -> String {
    if text.contains("://") || text.trim().is_empty() {
        return redact_url(text);
    }
    match parse_key_values(text) {
        Ok(pairs) => pairs
            .iter()
            .map(|(k, v)| {
                if k == "password" {
                    format!("{k}=***")
                } else if v.is_empty() || v.contains([' ', '\'', '\\']) {
                    format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "(an unreadable connection string)".to_owned(),
    }
}

/// The URL with any password (in the user info or a `password=` parameter) replaced by `***`.
fn redact_url(url: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (url, None),
    };
    let main = match (main.find("://"), main.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &main[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &main[..scheme_end + 3], &main[at..]),
                None => main.to_owned(),
            }
        }
        _ => main.to_owned(),
    };
    match query {
        None => main,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{main}?{}", params.join("&"))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::conninfo::parse;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("host=a password=topsecret user=u"),
            "host=a password=*** user=u"
        );
        assert_eq!(
            redact("host=a password='top secret'"),
            "host=a password=***"
        );
        assert_eq!(redact("host='a"), "(an unreadable connection string)");
        assert_eq!(
            redact("postgres://u:topsecret@h1,h2/db?password=x"),
            "postgres://u:***@h1,h2/db?password=***"
        );
        let err = parse("host=a,b port=1,2,3 password=topsecret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("topsecret"), "{err}");
    }
}
