//! How commands print: aligned tables (or `key: value` details) for people, the API's JSON
//! with `--json` for scripts. Data goes to stdout; confirmations and hints go to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::typed;

#[derive(Args, Debug, Clone, Copy, Default)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl Output {
    /// A paged listing: the page as the API sent it with `--json`, else a table of its items
    /// with a hint on stderr when more follow.
    pub fn page<T: DeserializeOwned>(
        self,
        page: serde_json::Value,
        what: &str,
        headers: &[&str],
        row: impl Fn(&T) -> Vec<String>,
    ) -> Result<()> {
        if self.json {
            return print_json(&page);
        }
        self.list(page["items"].clone(), headers, row)?;
        if let Some(cursor) = page["next_cursor"].as_str() {
            eprintln!("more {what} follow: add --all, or --cursor {cursor} for the next page");
        }
        Ok(())
    }

    /// A JSON array answer: as is with `--json`, else a table.
    pub fn list<T: DeserializeOwned>(
        self,
        items: serde_json::Value,
        headers: &[&str],
        row: impl Fn(&T) -> Vec<String>,
    ) -> Result<()> {
        if self.json {
            return print_json(&items);
        }
        let items: Vec<T> = typed(items)?;
        print_table(headers, items.iter().map(row).collect());
        Ok(())
    }

    /// One record: as is with `--json`, else aligned `key: value` lines.
    pub fn record<T: DeserializeOwned>(
        self,
        value: serde_json::Value,
        fields: impl Fn(&T) -> Vec<(&'static str, String)>,
    ) -> Result<()> {
        if self.json {
            return print_json(&value);
        }
        let record: T = typed(value)?;
        let fields = fields(&record);
        let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
        for (key, value) in fields {
            let key = format!("{key}:");
            println!("{key:<width$} {value}");
        }
        Ok(())
    }

    /// After a change: the answer as JSON with `--json` (when there is one); the
    /// confirmation always goes to stderr.
    pub fn done(self, answer: &serde_json::Value, confirmation: &str) -> Result<()> {
        eprintln!("{confirmation}");
        if self.json && !answer.is_null() {
            print_json(answer)?;
        }
        Ok(())
    }
}

pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart.
pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    for row in rows {
        line(row);
    }
}

/// Writes a download to stdout, or to `file` through `FILE.partial`, which replaces `file`
/// only once `write` succeeded: a broken download never replaces a good file (the partial
/// one is removed).
pub async fn write_out<T>(
    file: Option<&Path>,
    write: impl AsyncFnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let Some(file) = file else {
        return write(&mut std::io::BufWriter::new(std::io::stdout().lock())).await;
    };
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut sink = std::io::BufWriter::new(
        std::fs::File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?,
    );
    let written = write(&mut sink).await;
    drop(sink);
    match written {
        Ok(value) => {
            std::fs::rename(&partial, file).with_context(|| {
                format!("cannot move {} to {}", partial.display(), file.display())
            })?;
            Ok(value)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e.context(format!("{} was left as it was", file.display())))
        }
    }
}

/// `90` → `1m30s`, `7200` → `2h`, `200000` → `2d7h`: the largest unit and the next one.
pub fn age(seconds: i64) -> String {
    const UNITS: [(&str, i64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    let seconds = seconds.max(0);
    let i = UNITS
        .iter()
        .position(|(_, size)| seconds >= *size)
        .unwrap_or(UNITS.len() - 1);
    let (name, size) = UNITS[i];
    let mut text = format!("{}{name}", seconds / size);
    if let Some((minor_name, minor_size)) = UNITS.get(i + 1) {
        let minor = seconds % size / minor_size;
        if minor > 0 {
            text.push_str(&format!("{minor}{minor_name}"));
        }
    }
    text
}

/// A policy duration in seconds as people write it (`none` when off).
pub fn policy_age(seconds: Option<i64>) -> String {
    seconds.map(age).unwrap_or_else(|| "none".into())
}

/// `1536` → `1.5 KiB`.
pub fn size(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

/// A JSON string as a table cell; `or` when it is absent or not a string.
pub fn str_or(value: &serde_json::Value, or: &str) -> String {
    value.as_str().unwrap_or(or).to_owned()
}

pub fn on_off(on: bool) -> String {
    if on { "on" } else { "off" }.into()
}

pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_two_units() {
        assert_eq!(age(0), "0s");
        assert_eq!(age(59), "59s");
        assert_eq!(age(90), "1m30s");
        assert_eq!(age(3_600), "1h");
        assert_eq!(age(7_260), "2h1m");
        assert_eq!(age(200_000), "2d7h");
        assert_eq!(age(30 * 86_400), "30d");
        assert_eq!(age(-5), "0s");
        assert_eq!(age(86_405), "1d");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
    }
}
