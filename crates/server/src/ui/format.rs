//! Numbers and times as people read them on a page.

use statehouse_core::clock::Timestamp;

/// "42 s ago", "5 min ago", "3 h ago", "2 d ago".
pub fn ago(now: Timestamp, then: Timestamp) -> String {
    let secs = ((now.millis() - then.millis()) / 1_000).max(0);
    duration(secs) + " ago"
}

/// A duration in seconds, in its largest sensible unit.
pub fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3_600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3_600, s % 3_600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3_600),
    }
}

/// "812 B", "1.4 KiB", "50.0 MiB".
pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time as UTC, to the second (`2026-12-03 04:05:06 UTC`).
pub fn utc(at: Timestamp) -> String {
    let text = at.to_rfc3339();
    let trimmed = text
        .split('.')
        .next()
        .unwrap_or(&text)
        .trim_end_matches('Z');
    format!("{} UTC", trimmed.replacen('T', " ", 1))
}

/// A JSON value on one line, cut after `max` characters (the page links to the full body).
pub fn json_value(value: &serde_json::Value, max: usize) -> String {
    let text = match value {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if text.chars().count() > max {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_a_person_would_say_it() {
        assert_eq!(duration(5), "5 s");
        assert_eq!(duration(125), "2 min");
        assert_eq!(duration(3 * 3_600 + 60), "3 h 1 min");
        assert_eq!(duration(2 * 86_400 + 7_200), "2 d 2 h");
        assert_eq!(ago(Timestamp(10_000), Timestamp(4_000)), "6 s ago");
        assert_eq!(ago(Timestamp(0), Timestamp(4_000)), "0 s ago");
        assert_eq!(size(812), "812 B");
        assert_eq!(size(1_536), "1.5 KiB");
        assert_eq!(size(50 * 1024 * 1024), "50.0 MiB");
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(json_value(&serde_json::json!("a"), 10), "\"a\"");
        assert_eq!(json_value(&serde_json::json!([1, 2, 3]), 4), "[1,2…");
    }
}
