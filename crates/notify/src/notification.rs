use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use statehouse_core::clock::Timestamp;

/// How urgent a notification is; channels show it as colour, priority or a subject prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// `Info`, `Warning` or `Critical`, for people.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "Info",
            Severity::Warning => "Warning",
            Severity::Critical => "Critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing that happened, in the words every channel renders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// What happened, dotted: `backup.failed`, `database.down`, `lock.stale`.
    pub event: String,
    pub severity: Severity,
    /// One line, e.g. "Backup of billing failed".
    pub title: String,
    /// A few sentences: what happened and what to do.
    pub message: String,
    pub workspace: String,
    pub database: Option<String>,
    pub at: Timestamp,
    /// Where to look in statehouse's UI.
    pub link: Option<String>,
    /// Extra facts shown as a table, in order (e.g. "Duration" → "12 s").
    pub fields: Vec<(String, String)>,
}

impl Notification {
    /// The notification as JSON: the generic webhook's default body. `at` is RFC 3339 (UTC),
    /// `at_ms` Unix milliseconds; `fields` a list of `{name, value}` in order.
    pub fn to_json(&self) -> Value {
        json!({
            "event": self.event,
            "severity": self.severity.as_str(),
            "title": self.title,
            "message": self.message,
            "workspace": self.workspace,
            "database": self.database,
            "at": self.at.to_rfc3339(),
            "at_ms": self.at.millis(),
            "link": self.link,
            "fields": self
                .fields
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect::<Vec<_>>(),
        })
    }

    /// The facts every channel lists under the message: workspace, database, then `fields`.
    pub(crate) fn facts(&self) -> Vec<(&str, &str)> {
        let mut facts = vec![("Workspace", self.workspace.as_str())];
        if let Some(database) = &self.database {
            facts.push(("Database", database.as_str()));
        }
        facts.extend(
            self.fields
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        facts
    }

    /// "Critical · backup.failed · 2026-11-22T10:00:00Z": the small print under a message.
    pub(crate) fn context_line(&self) -> String {
        format!(
            "{} · {} · {}",
            self.severity.label(),
            self.event,
            self.at.to_rfc3339()
        )
    }

    /// The message as plain text: message, facts, event and time, link.
    pub(crate) fn plain_text(&self) -> String {
        let mut text = format!("{}\n\n", self.message);
        for (name, value) in self.facts() {
            text.push_str(&format!("{name}: {value}\n"));
        }
        text.push_str(&format!("Event: {}\n", self.event));
        text.push_str(&format!("Severity: {}\n", self.severity.as_str()));
        text.push_str(&format!("At: {}\n", self.at.to_rfc3339()));
        if let Some(link) = &self.link {
            text.push_str(&format!("\n{link}\n"));
        }
        text
    }
}

/// What the "test" action of a notifier sends: proves the channel works end to end.
pub fn test_notification(workspace: &str, at: Timestamp) -> Notification {
    Notification {
        event: "notifier.test".to_owned(),
        severity: Severity::Info,
        title: "Test notification from statehouse".to_owned(),
        message: "This channel is set up correctly: statehouse will send notifications here."
            .to_owned(),
        workspace: workspace.to_owned(),
        database: None,
        at,
        link: None,
        fields: Vec::new(),
    }
}

/// Cuts `text` to at most `max` characters (not bytes), ending with "…" when cut: receivers
/// reject over-long fields instead of truncating them.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo wörld", 6), "héllo…");
        assert_eq!(truncate("💾💾💾", 2), "💾…");
    }

    #[test]
    fn plain_text_lists_facts_in_order() {
        let mut n = test_notification("prod", Timestamp(0));
        n.database = Some("billing".to_owned());
        n.fields = vec![("Size".to_owned(), "3 MB".to_owned())];
        n.link = Some("https://statehouse.example.com/x".to_owned());
        assert_eq!(
            n.plain_text(),
            "This channel is set up correctly: statehouse will send notifications here.\n\n\
             Workspace: prod\nDatabase: billing\nSize: 3 MB\nEvent: notifier.test\n\
             Severity: info\nAt: 1970-01-01T00:00:00Z\n\nhttps://statehouse.example.com/x\n"
        );
    }
}
