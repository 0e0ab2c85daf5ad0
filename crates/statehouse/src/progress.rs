//! Long operations (backups, restores, downloads) as people watch them: a progress bar on
//! stderr with bytes, rate and ETA — a spinner with bytes and rate while the total is unknown —
//! hidden when stderr is not a terminal, with `--json` or with `--quiet`.
//!
//! [`long_operation`] speaks the API's NDJSON progress protocol: asked with
//! `Accept: application/x-ndjson`, the server streams `{"progress":{"bytes":N,"total":T}}`
//! lines, then `{"result":…}` or `{"error":{"code","message","status"}}`.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiFailure, Client, Query};

const NDJSON: &str = "application/x-ndjson";

/// Whether a progress display would reach a person.
pub fn visible(json: bool, quiet: bool) -> bool {
    !json && !quiet && std::io::stderr().is_terminal()
}

/// A progress bar for bytes moved (or a spinner while the total is unknown).
pub struct Progress {
    bar: ProgressBar,
    /// Whether the bar currently shows a total (else the spinner style).
    bounded: bool,
}

impl Progress {
    /// A progress display labelled `what` (e.g. `backing up shop`); drawn only when `visible`.
    pub fn new(visible: bool, what: &str) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(spinner_style());
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress {
            bar,
            bounded: false,
        }
    }

    /// `bytes` moved so far of `total`, when known. A total that turns out too small (an
    /// estimate from the previous backup) gives way to the spinner.
    pub fn update(&mut self, bytes: u64, total: Option<u64>) {
        match total.filter(|t| *t > 0 && bytes <= *t) {
            Some(total) => {
                if !self.bounded {
                    self.bar.set_style(bar_style());
                    self.bounded = true;
                }
                self.bar.set_length(total);
            }
            None => {
                if self.bounded {
                    self.bar.set_style(spinner_style());
                    self.bar.unset_length();
                    self.bounded = false;
                }
            }
        }
        self.bar.set_position(bytes);
    }

    /// Adds `n` bytes (downloads count their chunks).
    pub fn advance(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the total up front (a download's Content-Length).
    pub fn set_total(&mut self, total: u64) {
        self.update(self.bar.position(), Some(total));
    }

    /// Removes the display (the result is printed after it).
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} {binary_bytes} {binary_bytes_per_sec} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

/// Runs a long operation with progress lines: `progress` follows them, and the operation's
/// result (the `result` line, or the JSON answer of a server that does not stream) comes back.
/// An `error` line becomes the same error a JSON answer with that status would.
pub async fn long_operation(
    client: &Client,
    method: Method,
    path: &str,
    query: &Query,
    body: Option<&Value>,
    progress: &mut Progress,
) -> Result<Value> {
    let mut response = client
        .send_accepting(method, path, query, body, Some(NDJSON))
        .await?;
    let streamed = response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(NDJSON));
    if !streamed {
        let bytes = response.bytes().await?;
        return serde_json::from_slice(&bytes)
            .with_context(|| format!("the server's answer to {path} is not JSON"));
    }
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = response.chunk().await?;
        let at_end = chunk.is_none();
        if let Some(chunk) = chunk {
            pending.extend_from_slice(&chunk);
        } else if !pending.is_empty() {
            // A last line without its newline.
            pending.push(b'\n');
        }
        while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            if let Some(result) = read_line(&line, progress)? {
                return Ok(result);
            }
        }
        if at_end {
            return Err(ApiFailure::Unavailable(
                "the server ended its answer before the operation finished (it may still be running \
                 or may have been stopped); see `statehouse backup list` for its outcome"
                    .into(),
            )
            .into());
        }
    }
}

/// One NDJSON line: progress (`None`), the result, or the error.
fn read_line(line: &[u8], progress: &mut Progress) -> Result<Option<Value>> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut value: Value = serde_json::from_str(text)
        .with_context(|| format!("the server sent a progress line that is not JSON: {text:?}"))?;
    if let Some(p) = value.get("progress") {
        let bytes = p["bytes"].as_u64().unwrap_or(0);
        progress.update(bytes, p["total"].as_u64());
        return Ok(None);
    }
    if let Some(result) = value.get_mut("result") {
        return Ok(Some(result.take()));
    }
    if let Some(error) = value.get("error") {
        let message = error["message"]
            .as_str()
            .unwrap_or("the operation failed without a message")
            .to_owned();
        let status = error["status"].as_u64().unwrap_or(500);
        return Err(if status >= 500 {
            ApiFailure::Unavailable(message)
        } else {
            ApiFailure::Refused(message)
        }
        .into());
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::client::exit_code;

    #[test]
    fn lines_carry_progress_results_and_errors() {
        let mut progress = Progress::new(false, "test");
        assert!(
            read_line(br#"{"progress":{"bytes":10,"total":null}}"#, &mut progress)
                .unwrap()
                .is_none()
        );
        assert!(
            read_line(br#"{"progress":{"bytes":10,"total":100}}"#, &mut progress)
                .unwrap()
                .is_none()
        );
        assert!(progress.bounded);
        // Past an estimated total: back to the spinner.
        read_line(br#"{"progress":{"bytes":150,"total":100}}"#, &mut progress).unwrap();
        assert!(!progress.bounded);
        let result = read_line(br#"{"result":[{"id":"b1"}]}"#, &mut progress).unwrap();
        assert_eq!(result.unwrap()[0]["id"], "b1");
        let refused = read_line(
            br#"{"error":{"code":"bad_request","message":"the restore failed: x","status":400}}"#,
            &mut progress,
        )
        .unwrap_err();
        assert_eq!(refused.to_string(), "the restore failed: x");
        assert_eq!(exit_code(&refused), 1);
        let failed = read_line(
            br#"{"error":{"code":"internal","message":"boom","status":500}}"#,
            &mut progress,
        )
        .unwrap_err();
        assert_eq!(exit_code(&failed), 3);
        assert!(read_line(b"not json", &mut progress).is_err());
    }
}
