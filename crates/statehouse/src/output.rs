//! How commands print: aligned tables (or `key: value` details) for people, the API's JSON
//! with `--json` for scripts. Data goes to stdout; confirmations and hints go to stderr.
//!
//! Everything printed for people goes through [`outln!`] / [`errln!`] (or the table and
//! record printers), which make control characters visible (`\x1b`, `\u{9b}`): names, lock
//! holders, error messages and other text from a server or another user cannot move the
//! cursor, recolour the terminal or fake lines. `--json` prints the answer exactly. A closed
//! stdout (`| head`) ends the command quietly ([`is_closed_pipe`]).

use std::borrow::Cow;
use std::fmt;
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
            errln!("more {what} follow: add --all, or --cursor {cursor} for the next page");
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
        print_table(headers, items.iter().map(row).collect())
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
            outln!("{key:<width$} {}", visible(&value))?;
        }
        Ok(())
    }

    /// After a change: the answer as JSON with `--json` (when there is one); the
    /// confirmation always goes to stderr.
    pub fn done(self, answer: &serde_json::Value, confirmation: &str) -> Result<()> {
        errln!("{confirmation}");
        if self.json && !answer.is_null() {
            print_json(answer)?;
        }
        Ok(())
    }
}

pub fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = Stdout::lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Columns padded to their widest cell, two spaces apart; every cell's control characters
/// made visible (a newline in a name cannot break the table).
pub fn print_table(headers: &[&str], rows: Vec<Vec<String>>) -> Result<()> {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|row| row.iter().map(|c| visible(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| -> Result<()> {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        outln!("{}", padded.join("  ").trim_end())
    };
    line(&headers.iter().map(|h| h.to_string()).collect::<Vec<_>>())?;
    for row in &rows {
        line(row)?;
    }
    Ok(())
}

/// `text` with every control character (C0, DEL, C1) and bidirectional override shown as an
/// escape (`\x1b`, `\n`, `\u{9b}`, `\u{202e}`), so it prints as the characters it holds.
pub fn visible(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

fn escape(text: &str, keep_line_breaks: bool) -> Cow<'_, str> {
    let hidden = |c: char| {
        (c.is_control() && !(keep_line_breaks && (c == '\n' || c == '\t')))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !hidden(c) => out.push(c),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// One line for people on stdout, control characters visible (line breaks kept). An error
/// (a closed pipe) is returned so the command stops; see [`is_closed_pipe`].
pub fn stdout_line(args: fmt::Arguments<'_>) -> Result<()> {
    let text = args.to_string();
    let mut out = Stdout::lock();
    out.write_all(escape(&text, true).as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// Text for people on stdout without a line break added.
pub fn stdout_text(args: fmt::Arguments<'_>) -> Result<()> {
    let text = args.to_string();
    let mut out = Stdout::lock();
    out.write_all(escape(&text, true).as_bytes())?;
    out.flush()?;
    Ok(())
}

/// One line for people on stderr, control characters visible; a closed stderr is ignored.
pub fn stderr_line(args: fmt::Arguments<'_>) {
    let text = args.to_string();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(escape(&text, true).as_bytes());
    let _ = err.write_all(b"\n");
}

/// Text on stderr without a line break (prompts).
pub fn stderr_text(args: fmt::Arguments<'_>) {
    let text = args.to_string();
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(escape(&text, true).as_bytes());
    let _ = err.flush();
}

/// `warning: …` on stderr.
pub fn warn(message: &str) {
    stderr_line(format_args!("warning: {message}"));
}

/// A write to stdout found it closed (the reader went away).
#[derive(Debug)]
struct ClosedOutput;

impl fmt::Display for ClosedOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the output was closed")
    }
}

impl std::error::Error for ClosedOutput {}

/// stdout whose "broken pipe" errors say they are about stdout ([`ClosedOutput`]), so a
/// broken connection to a server is never mistaken for a reader that went away.
struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    fn lock() -> Stdout {
        Stdout(std::io::stdout().lock())
    }

    fn mark(e: std::io::Error) -> std::io::Error {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, ClosedOutput)
        } else {
            e
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).map_err(Stdout::mark)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().map_err(Stdout::mark)
    }
}

/// Whether a command failed because its stdout was closed (`statehouse … | head`): the reader
/// has what it wanted, so statehouse exits quietly with status 0.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<ClosedOutput>()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(|e| e.get_ref())
                .is_some_and(|inner| inner.is::<ClosedOutput>())
    })
}

/// Writes a download to stdout, or to `file` through `FILE.partial`, which replaces `file`
/// only once `write` succeeded: a broken download never replaces a good file (the partial
/// one is removed).
pub async fn write_out<T>(
    file: Option<&Path>,
    write: impl AsyncFnOnce(&mut dyn Write) -> Result<T>,
) -> Result<T> {
    let Some(file) = file else {
        return write(&mut std::io::BufWriter::new(Stdout::lock())).await;
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
    fn only_a_closed_stdout_counts_as_a_closed_pipe() {
        let closed = Stdout::mark(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_closed_pipe(
            &anyhow::Error::from(closed).context("writing")
        ));
        let network = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(!is_closed_pipe(&anyhow::Error::from(network)));
    }

    #[test]
    fn control_characters_are_made_visible() {
        assert_eq!(visible("plain név"), "plain név");
        assert_eq!(
            visible("\u{1b}]0;pwned\u{7}\u{1b}[2Jx"),
            "\\x1b]0;pwned\\x07\\x1b[2Jx"
        );
        assert_eq!(visible("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(visible("\u{9b}31m\u{7f}"), "\\u{9b}31m\\x7f");
        assert_eq!(visible("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape("two\nlines\u{1b}", true), "two\nlines\\x1b");
    }

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
