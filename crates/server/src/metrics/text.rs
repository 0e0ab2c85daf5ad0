//! Writing gauges in the Prometheus text format, for the figures read at scrape time (the
//! recorder's own figures are rendered by the exporter).

use std::fmt::Write as _;

pub struct Exposition {
    buf: Vec<u8>,
}

impl Exposition {
    /// Continues after `rendered` (the exporter's output).
    pub fn new(mut rendered: Vec<u8>) -> Self {
        if rendered.last().is_some_and(|b| *b != b'\n') {
            rendered.push(b'\n');
        }
        Exposition { buf: rendered }
    }

    /// Starts a gauge family: its `# HELP` and `# TYPE` lines.
    pub fn gauge(&mut self, name: &str, help: &str) {
        self.family(name, "gauge", help);
    }

    /// Starts a counter family.
    pub fn counter(&mut self, name: &str, help: &str) {
        self.family(name, "counter", help);
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let mut line = String::with_capacity(name.len() * 2 + help.len() + 24);
        let _ = writeln!(line, "# HELP {name} {help}");
        let _ = writeln!(line, "# TYPE {name} {kind}");
        self.buf.extend_from_slice(line.as_bytes());
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut line = String::with_capacity(64);
        line.push_str(name);
        if !labels.is_empty() {
            line.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                line.push_str(key);
                line.push_str("=\"");
                escape_into(&mut line, value);
                line.push('"');
            }
            line.push('}');
        }
        let _ = writeln!(line, " {value}");
        self.buf.extend_from_slice(line.as_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn families_samples_and_escaped_labels() {
        let mut out = Exposition::new(b"# from the exporter\nx_total 1".to_vec());
        out.gauge("statehouse_locks_held", "Locks held");
        out.sample("statehouse_locks_held", &[], 3.0);
        out.sample(
            "statehouse_backup_last_size_bytes",
            &[("workspace", "ops"), ("database", "a\"b\\c\nd")],
            1.5,
        );
        let text = String::from_utf8(out.into_bytes()).unwrap();
        assert_eq!(
            text,
            "# from the exporter\nx_total 1\n\
             # HELP statehouse_locks_held Locks held\n\
             # TYPE statehouse_locks_held gauge\n\
             statehouse_locks_held 3\n\
             statehouse_backup_last_size_bytes{workspace=\"ops\",database=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }
}
