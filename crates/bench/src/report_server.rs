//! Section 1 of the report: the server alone, every binary side by side with the floors.

use std::fmt::Write;
use std::time::Duration;

use crate::dbfloor::DbRate;
use crate::http::{MB, PAIR_WORKERS};
use crate::latency::BinLatencies;
use crate::locks::{LockFigures, SLICE};
use crate::report::{Report, verdict};
use crate::stats::{Summary, ms, secs};
use crate::targets::{self, thousands};

/// Targets of the detail tables (earlier issues).
const GET_P99_MS: f64 = 3.0;
const POST_P99_MS: f64 = 15.0;
const MEMORY_FACTOR: f64 = 3.0;

/// One request's summary among a binary's latencies.
type Pick = fn(&BinLatencies) -> Summary;

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MB as f64)
}

/// `a ÷ b` of two p50s, or `—`.
fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => {
            format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
        }
        _ => "—".into(),
    }
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".into(), ms)
}

impl Report {
    pub(crate) fn write_server(&self, o: &mut String) -> std::fmt::Result {
        writeln!(
            o,
            "\n## 1. Server alone (Rust client, keep-alive connections)\n"
        )?;
        let who = if self.baseline.is_some() {
            "Two binaries, each on its own fresh store of the same kind (own data dir, own \
             PostgreSQL schema): **statehouse** (under test) and **baseline**. They take turns"
        } else {
            "No baseline binary in this run (`--baseline`): its columns are empty. The binary \
             under test takes turns"
        };
        writeln!(
            o,
            "{who} — request by request for latencies (with the static floor server), in {:?} \
             slices for LOCK+UNLOCK (with the database alone) — so that load changes on the \
             machine hit them alike.\n",
            SLICE
        )?;
        self.write_targets(o)?;
        self.write_latency_comparison(o)?;
        self.write_lock_comparison(o)?;
        self.write_latency_detail(o)?;
        self.write_components(o)?;
        self.write_lock_detail(o)?;
        self.write_memory(o)
    }

    fn write_targets(&self, o: &mut String) -> std::fmt::Result {
        writeln!(o, "### Issue 11 targets\n")?;
        let mut header = "| store |".to_owned();
        let mut rule = "|---|".to_owned();
        if let Some(first) = self.server.first() {
            for v in targets::issue11(first, self.plan.lock_workers) {
                let _ = write!(header, " {} |", v.target);
                rule.push_str("---|");
            }
        }
        writeln!(o, "{header}\n{rule}")?;
        for f in &self.server {
            write!(o, "| {} |", f.store)?;
            for v in targets::issue11(f, self.plan.lock_workers) {
                write!(o, " {} — {} |", v.figure, v.result())?;
            }
            writeln!(o)?;
        }
        Ok(())
    }

    fn write_latency_comparison(&self, o: &mut String) -> std::fmt::Result {
        writeln!(
            o,
            "\n### Latency p50 side by side\n\nOne request at a time on one connection per \
             server; the static floor is a bare axum server in the bench process serving the \
             same bytes from memory (GET) or reading and discarding them (POST).\n"
        )?;
        writeln!(
            o,
            "| store | request | static floor p50 ms | statehouse p50 ms | baseline p50 ms | statehouse ÷ floor | baseline ÷ floor | baseline ÷ statehouse |"
        )?;
        writeln!(o, "|---|---|--:|--:|--:|--:|--:|--:|")?;
        for f in &self.server {
            let pick = |i: usize, s: Pick| f.bins.get(i).map(|b| s(&b.latency).p50);
            let rows: [(String, Option<Duration>, Pick); 4] = [
                (
                    format!("`GET` state, {} bytes", f.get_bytes),
                    Some(f.floor_get.p50),
                    |l| l.get,
                ),
                (
                    format!("`POST` state, {} bytes", f.post_bytes),
                    Some(f.floor_post.p50),
                    |l| l.post,
                ),
                ("`LOCK` (one at a time)".into(), None, |l| l.lock_one),
                ("`UNLOCK` (one at a time)".into(), None, |l| l.unlock_one),
            ];
            for (what, floor, s) in rows {
                let (main, base) = (pick(0, s), pick(1, s));
                writeln!(
                    o,
                    "| {} | {what} | {} | {} | {} | {} | {} | {} |",
                    f.store,
                    opt_ms(floor),
                    opt_ms(main),
                    opt_ms(base),
                    ratio(main, floor),
                    ratio(base, floor),
                    ratio(base, main),
                )?;
            }
        }
        Ok(())
    }

    fn write_lock_comparison(&self, o: &mut String) -> std::fmt::Result {
        writeln!(
            o,
            "\n### LOCK + UNLOCK pairs per second side by side\n\nN concurrent workers, one state \
             each, {:?} per runner in {:?} turns after {:?} of warm-up; a pair is LOCK with a \
             Terraform LockInfo body then UNLOCK with the same body, both answering 200. The \
             database alone runs the same statements the store runs for a pair, with the same \
             number of clients (method below the table).\n",
            self.plan.lock_time, SLICE, self.plan.lock_warmup
        )?;
        writeln!(
            o,
            "| store | workers | statehouse pairs/s | baseline pairs/s | statehouse ÷ baseline | database alone pairs/s | statehouse ÷ database alone | server CPU statehouse / baseline | server context switches per request statehouse / baseline |"
        )?;
        writeln!(o, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")?;
        for f in &self.server {
            for run in &f.locks {
                let main = run.bins.first();
                let base = run.bins.get(1);
                let rate = |l: Option<&LockFigures>| l.map(LockFigures::per_second);
                let per = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
                    _ => "—".into(),
                };
                let db = run.db.as_ref().ok().map(DbRate::per_second);
                let cpu = |l: Option<&LockFigures>| {
                    l.map_or_else(
                        || "—".into(),
                        |l| {
                            format!(
                                "{:.0}%",
                                100.0 * l.server_cpu.as_secs_f64() / l.elapsed.as_secs_f64()
                            )
                        },
                    )
                };
                let switches = |l: Option<&LockFigures>| {
                    l.map_or_else(
                        || "—".into(),
                        |l| format!("{:.1}", l.switches_per_request()),
                    )
                };
                let workers = if run.workers == PAIR_WORKERS {
                    format!("{} (2 connections)", run.workers)
                } else {
                    run.workers.to_string()
                };
                writeln!(
                    o,
                    "| {} | {workers} | {} | {} | {} | {} | {} | {} / {} | {} / {} |",
                    f.store,
                    rate(main).map_or_else(|| "—".into(), thousands),
                    rate(base).map_or_else(|| "—".into(), thousands),
                    per(rate(main), rate(base)),
                    match &run.db {
                        Ok(db) => thousands(db.per_second()),
                        Err(e) => format!("— ({e})"),
                    },
                    per(rate(main), db),
                    cpu(main),
                    cpu(base),
                    switches(main),
                    switches(base),
                )?;
            }
        }
        writeln!(o)?;
        for f in &self.server {
            writeln!(o, "- database alone on {}: {}.", f.store, f.db_method)?;
        }
        Ok(())
    }

    fn write_latency_detail(&self, o: &mut String) -> std::fmt::Result {
        let p = &self.plan;
        writeln!(
            o,
            "\n### Latencies in detail\n\nSequential requests on one connection, {} warm-up \
             requests not counted; latency is from sending the request to the end of the \
             response body. Bodies are valid v4 states of the `{}` payload; POSTs carry \
             `Content-MD5` and increasing serials.\n",
            p.warmup,
            format!("{:?}", p.payload).to_lowercase()
        )?;
        writeln!(
            o,
            "| request | store | binary | n | mean ms | p50 ms | p95 ms | p99 ms | max ms | target | result |"
        )?;
        writeln!(o, "|---|---|---|--:|--:|--:|--:|--:|--:|---|---|")?;
        for f in &self.server {
            let main = f.bins.first().map(|b| b.binary.role).unwrap_or("—");
            let mut rows: Vec<(String, &str, Summary, Option<f64>)> = vec![
                ("`GET /healthz` (HTTP floor)".into(), main, f.healthz, None),
                (
                    format!(
                        "`GET` same {} bytes from memory (static floor)",
                        f.get_bytes
                    ),
                    "—",
                    f.floor_get,
                    None,
                ),
                (
                    "`POST` same size, body discarded (static floor)".into(),
                    "—",
                    f.floor_post,
                    None,
                ),
            ];
            let requests: [(String, Pick, Option<f64>); 4] = [
                (
                    format!("`GET` state, {} bytes", f.get_bytes),
                    |l| l.get,
                    Some(GET_P99_MS),
                ),
                (
                    format!("`POST` state, {} bytes", f.post_bytes),
                    |l| l.post,
                    Some(POST_P99_MS),
                ),
                ("`LOCK` (one at a time)".into(), |l| l.lock_one, None),
                ("`UNLOCK` (one at a time)".into(), |l| l.unlock_one, None),
            ];
            for (what, pick, target) in requests {
                for b in &f.bins {
                    rows.push((what.clone(), b.binary.role, pick(&b.latency), target));
                }
            }
            for (what, binary, s, target) in rows {
                let (t, r) = match target {
                    Some(limit) => (
                        format!("p99 ≤ {limit} ms"),
                        verdict(s.p99.as_secs_f64() * 1e3 <= limit),
                    ),
                    None => ("—".to_owned(), "—"),
                };
                writeln!(
                    o,
                    "| {what} | {} | {binary} | {} | {} | {} | {} | {} | {} | {t} | {r} |",
                    f.store,
                    s.n,
                    ms(s.mean),
                    ms(s.p50),
                    ms(s.p95),
                    ms(s.p99),
                    ms(s.max)
                )?;
            }
        }
        Ok(())
    }

    fn write_lock_detail(&self, o: &mut String) -> std::fmt::Result {
        writeln!(
            o,
            "\n### LOCK + UNLOCK in detail\n\nSummed over each runner's turns. The HTTP floor is \
             the binary under test's {} workers sending two `GET /healthz` per pair (no auth, no \
             database) for up to 2 s. CPU = CPU time used during the run ÷ wall time (100% = \
             one core of the {} on this machine); machine busy = all CPUs, any process \
             (PostgreSQL, other work on the machine).\n",
            self.plan.lock_workers, self.machine.nproc
        )?;
        writeln!(
            o,
            "| store | workers | runner | pairs | seconds | pairs/s | slowest / fastest worker | server CPU | client CPU | machine busy | server context switches per request |"
        )?;
        writeln!(o, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")?;
        for f in &self.server {
            for run in &f.locks {
                for (b, l) in f.bins.iter().zip(&run.bins) {
                    self.lock_row(o, f.store, b.binary.role, l)?;
                }
                if let Ok(db) = &run.db {
                    writeln!(
                        o,
                        "| {} | {} | database alone | {} | {:.2} | {} | — | — | — | {:.0}% of {} CPUs | — |",
                        f.store,
                        run.workers,
                        db.pairs,
                        db.elapsed.as_secs_f64(),
                        thousands(db.per_second()),
                        100.0 * db.machine_busy(),
                        self.machine.nproc,
                    )?;
                }
            }
            self.lock_row(o, f.store, "2 × `GET /healthz` (HTTP floor)", &f.lock_floor)?;
        }
        Ok(())
    }

    fn lock_row(
        &self,
        o: &mut String,
        store: &str,
        runner: &str,
        l: &LockFigures,
    ) -> std::fmt::Result {
        let secs = l.elapsed.as_secs_f64().max(1e-9);
        let (min, max) = l.min_max_worker();
        writeln!(
            o,
            "| {store} | {} | {runner} | {} | {:.2} | {} | {min} / {max} | {:.0}% | {:.0}% | {:.0}% of {} CPUs | {:.1} |",
            l.workers,
            l.pairs,
            secs,
            thousands(l.per_second()),
            100.0 * l.server_cpu.as_secs_f64() / secs,
            100.0 * l.client_cpu.as_secs_f64() / secs,
            100.0 * l.machine_busy(),
            self.machine.nproc,
            l.switches_per_request(),
        )
    }

    fn write_memory(&self, o: &mut String) -> std::fmt::Result {
        writeln!(
            o,
            "\n### Peak memory of one {} MB write\n\nA fresh server per binary and payload; \
             `VmRSS` read from `/proc/PID/status` before one POST of the state, `VmHWM` (peak \
             RSS) after it. Factor = (VmHWM after − VmRSS before) ÷ body size. Then a GET of \
             the same state (informational).\n",
            self.plan.big_write / MB
        )?;
        writeln!(
            o,
            "| store | payload | binary | body MiB | RSS before MiB | HWM before MiB | HWM after POST MiB | POST factor | target | result | POST s | HWM after GET MiB | GET factor | GET s |"
        )?;
        writeln!(
            o,
            "|---|---|---|--:|--:|--:|--:|--:|---|---|--:|--:|--:|--:|"
        )?;
        for f in &self.server {
            let payloads = f.bins.first().map_or(0, |b| b.memory.len());
            for i in 0..payloads {
                for b in &f.bins {
                    let Some(mm) = b.memory.get(i) else { continue };
                    let factor = mm.post_factor();
                    writeln!(
                        o,
                        "| {} | `{}` | {} | {} | {} | {} | {} | {:.2}× | ≤ {MEMORY_FACTOR}× | {} | {} | {} | {:.2}× | {} |",
                        f.store,
                        format!("{:?}", mm.payload).to_lowercase(),
                        b.binary.role,
                        mib(mm.body as u64),
                        mib(mm.before.rss),
                        mib(mm.before.hwm),
                        mib(mm.after_post.hwm),
                        factor,
                        verdict(factor <= MEMORY_FACTOR),
                        secs(mm.post_time),
                        mib(mm.after_get.hwm),
                        mm.get_factor(),
                        secs(mm.get_time),
                    )?;
                }
            }
        }
        Ok(())
    }
}
