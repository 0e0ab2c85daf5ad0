//! The Markdown report: tables with the figures, the targets and whether each is met.

use std::fmt::Write;
use std::path::PathBuf;

use crate::components::Costs;
use crate::http::{Figures, MB, Plan};
use crate::machine::Machine;
use crate::stats::secs;
use crate::terraform::Row;

/// `terraform state push`/`pull` through statehouse ÷ through the pg backend, at most.
const TF_RATIO: f64 = 1.0;

pub struct Report {
    pub command: String,
    pub statehouse: PathBuf,
    pub statehouse_age: Option<u64>,
    /// The baseline binary (`--baseline`) and its age.
    pub baseline: Option<(PathBuf, Option<u64>)>,
    pub commit: Option<String>,
    pub machine: Machine,
    pub load_before: String,
    pub load_after: String,
    pub postgres: Option<String>,
    /// Path and `terraform version` line.
    pub terraform: Option<(PathBuf, String)>,
    pub plan: Plan,
    pub server_env: Vec<(String, String)>,
    pub components: Vec<Costs>,
    pub server: Vec<Figures>,
    pub tf_reps: usize,
    pub tf_rows: Vec<Row>,
}

pub(crate) fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn ms3(d: std::time::Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

impl Report {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write(&mut out);
        out
    }

    fn write(&self, o: &mut String) -> std::fmt::Result {
        let m = &self.machine;
        writeln!(o, "# statehouse benchmark report\n")?;
        writeln!(o, "Command: `{}`\n", redact(&self.command))?;
        write!(o, "- statehouse binary: `{}`", self.statehouse.display())?;
        if let Some(age) = self.statehouse_age {
            write!(o, " (built {} min before the run", age / 60)?;
            if let Some(commit) = &self.commit {
                write!(o, "; checkout at run time: {commit}")?;
            }
            write!(o, ")")?;
        }
        writeln!(o)?;
        if let Some((path, age)) = &self.baseline {
            write!(o, "- baseline binary: `{}`", path.display())?;
            if let Some(age) = age {
                write!(o, " (built {} min before the run)", age / 60)?;
            }
            writeln!(o)?;
        }
        if let Some((path, version)) = &self.terraform {
            writeln!(o, "- Terraform: `{}` ({version})", path.display())?;
        }
        if let Some(pg) = &self.postgres {
            writeln!(o, "- {pg}")?;
        }
        writeln!(
            o,
            "- machine: {} CPUs ({}), {} RAM, Linux {}; temp dir {}",
            m.nproc, m.cpu, m.memory, m.kernel, m.temp_fs
        )?;
        writeln!(
            o,
            "- load average (1/5/15 min) at start: {}; at end: {}",
            self.load_before, self.load_after
        )?;
        writeln!(
            o,
            "- client and server share the machine; the client runs on one tokio worker thread"
        )?;
        writeln!(o, "- state payload: {}", self.plan.payload.describe())?;
        if !self.server_env.is_empty() {
            let env: Vec<String> = self
                .server_env
                .iter()
                .map(|(k, v)| format!("`{k}={v}`"))
                .collect();
            writeln!(o, "- extra server environment: {}", env.join(", "))?;
        }
        if !self.server.is_empty() {
            self.write_server(o)?;
        }
        if !self.tf_rows.is_empty() {
            self.write_terraform(o)?;
        }
        Ok(())
    }

    pub(crate) fn write_components(&self, o: &mut String) -> std::fmt::Result {
        if self.components.is_empty() {
            return Ok(());
        }
        writeln!(
            o,
            "\n### Where the time goes: CPU cost of each step on a 1 MiB body\n\n\
             statehouse's own code (`statehouse-core`) run in this process, median per call; \
             a request's latency is the floor above plus the steps it runs (and its database \
             round trips).\n"
        )?;
        let mut header = "| step |".to_owned();
        let mut rule = "|---|".to_owned();
        for c in &self.components {
            let _ = write!(
                header,
                " `{}` ms |",
                format!("{:?}", c.payload).to_lowercase()
            );
            rule.push_str("--:|");
        }
        writeln!(o, "{header}\n{rule}")?;
        if let Some(first) = self.components.first() {
            for (i, (step, _)) in first.steps.iter().enumerate() {
                write!(o, "| {step} |")?;
                for c in &self.components {
                    match c.steps.get(i) {
                        Some((_, d)) => write!(o, " {} |", ms3(*d))?,
                        None => write!(o, " — |")?,
                    }
                }
                writeln!(o)?;
            }
        }
        write!(o, "| sealed size ÷ body size |")?;
        for c in &self.components {
            write!(
                o,
                " {} ÷ {} bytes = 1/{:.1} |",
                c.sealed,
                c.body,
                c.body as f64 / c.sealed.max(1) as f64
            )?;
        }
        writeln!(o)?;
        Ok(())
    }

    fn write_terraform(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "\n## 2. Terraform 1.0.3 `state push` / `state pull`\n")?;
        writeln!(
            o,
            "Wall time of the whole `terraform` process (start-up included), {} repetitions (one \
             uncounted warm-up repetition before the 1 MiB ones); every push goes into an empty state (fresh state name on the http \
             backend, fresh workspace on the pg backend), every pull reads it back to a file. The \
             backends take turns within each repetition. Ratio = median ÷ median of the pg backend \
             (target ≤ {TF_RATIO:.1}×).\n",
            self.tf_reps
        )?;
        writeln!(
            o,
            "| state | command | backend | median s | min s | max s | ratio to pg | result |"
        )?;
        writeln!(o, "|---|---|---|--:|--:|--:|--:|---|")?;
        for (command, pick) in [
            ("push", (|r: &Row| &r.push) as fn(&Row) -> &Vec<_>),
            ("pull", |r: &Row| &r.pull),
        ] {
            for size in crate::terraform::SIZES {
                let rows: Vec<&Row> = self.tf_rows.iter().filter(|r| r.size == size).collect();
                let base = rows
                    .iter()
                    .find(|r| r.baseline)
                    .and_then(|r| crate::stats::median(pick(r)));
                for r in &rows {
                    let samples = pick(r);
                    let Some(median) = crate::stats::median(samples) else {
                        continue;
                    };
                    let min = samples.iter().min().copied().unwrap_or_default();
                    let max = samples.iter().max().copied().unwrap_or_default();
                    let (ratio, result) = match (r.baseline, base) {
                        (true, _) => ("1.000× (baseline)".to_owned(), "—"),
                        (false, Some(b)) => {
                            let ratio = median.as_secs_f64() / b.as_secs_f64();
                            (format!("{ratio:.3}×"), verdict(ratio <= TF_RATIO))
                        }
                        (false, None) => ("—".to_owned(), "no baseline"),
                    };
                    writeln!(
                        o,
                        "| {} MiB ({} bytes) | `state {command}` | {} | {} | {} | {} | {ratio} | {result} |",
                        r.size / MB,
                        r.file_bytes,
                        r.backend,
                        secs(median),
                        secs(min),
                        secs(max),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Hides a password in `scheme://user:password@host` URLs.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '\'' || c == '/')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            redact("x --pg-url postgres://u:secret@h:5432/db y"),
            "x --pg-url postgres://u:***@h:5432/db y"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:55432/postgres"),
            "postgres://postgres@127.0.0.1:55432/postgres"
        );
    }
}
