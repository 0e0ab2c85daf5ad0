//! Issue 11's targets for one store, decided from the figures of one run: LOCK+UNLOCK
//! throughput, the 2-connection figure against the baseline binary, POST against the baseline,
//! GET against the static floor.

use crate::http::{Figures, PAIR_WORKERS};
use crate::stats::ms;

/// LOCK+UNLOCK pairs per second on SQLite with the main worker count.
pub const LOCK_PAIRS_SQLITE: f64 = 5_000.0;
/// PostgreSQL may be this many times slower than the SQLite target (3,333/s).
pub const LOCK_PG_FACTOR: f64 = 1.5;
/// The 2-connection figure against the baseline binary's.
pub const PAIR_SPEEDUP: f64 = 2.0;
/// POST 1 MiB p50: baseline ÷ statehouse at least this.
pub const POST_SPEEDUP: f64 = 1.5;
/// GET 1 MiB p50: statehouse ÷ static floor at most this.
pub const GET_OVER_FLOOR: f64 = 1.5;

/// A target's figure and whether it is met (`None`: not measured in this run).
pub struct Verdict {
    pub target: String,
    pub figure: String,
    pub met: Option<bool>,
}

impl Verdict {
    pub fn result(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "not measured",
        }
    }
}

/// Thousands separated by commas: `12,345`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        format!("-{out}")
    } else {
        out
    }
}

/// The LOCK+UNLOCK pairs-per-second target of a store.
pub fn lock_target(store: &str) -> f64 {
    if store == "SQLite" {
        LOCK_PAIRS_SQLITE
    } else {
        LOCK_PAIRS_SQLITE / LOCK_PG_FACTOR
    }
}

/// The four verdicts of one store, in the order of the report's columns.
pub fn issue11(f: &Figures, lock_workers: usize) -> Vec<Verdict> {
    let main = f.bins.first();
    let base = f.bins.get(1);
    let mut out = Vec::with_capacity(4);

    let limit = lock_target(f.store);
    let target = format!(
        "LOCK+UNLOCK, {lock_workers} workers, ≥ {}/s SQLite, ≥ {}/s PostgreSQL",
        thousands(LOCK_PAIRS_SQLITE),
        thousands(LOCK_PAIRS_SQLITE / LOCK_PG_FACTOR)
    );
    out.push(match f.locks.iter().find(|r| r.workers == lock_workers) {
        Some(run) => match run.bins.first() {
            Some(l) => {
                let rate = l.per_second();
                let mut figure = format!("{}/s", thousands(rate));
                if let Ok(db) = &run.db {
                    figure.push_str(&format!(
                        " (database alone {}/s)",
                        thousands(db.per_second())
                    ));
                }
                Verdict {
                    target,
                    figure,
                    met: Some(rate >= limit),
                }
            }
            None => missing(target),
        },
        None => missing(target),
    });

    let target = format!("{PAIR_WORKERS} connections ≥ {PAIR_SPEEDUP}× the baseline's");
    out.push(match f.locks.iter().find(|r| r.workers == PAIR_WORKERS) {
        Some(run) => match (run.bins.first(), run.bins.get(1)) {
            (Some(l), Some(b)) => {
                let ratio = l.per_second() / b.per_second().max(1e-9);
                Verdict {
                    target,
                    figure: format!(
                        "{} vs {}/s = {ratio:.2}×",
                        thousands(l.per_second()),
                        thousands(b.per_second())
                    ),
                    met: Some(ratio >= PAIR_SPEEDUP),
                }
            }
            (Some(l), None) => Verdict {
                target,
                figure: format!("{}/s, no baseline", thousands(l.per_second())),
                met: None,
            },
            _ => missing(target),
        },
        None => missing(target),
    });

    let target = format!("`POST` 1 MiB p50 ≥ {POST_SPEEDUP}× faster than the baseline");
    out.push(match (main, base) {
        (Some(m), Some(b)) => {
            let (m, b) = (m.latency.post.p50, b.latency.post.p50);
            let ratio = b.as_secs_f64() / m.as_secs_f64().max(1e-9);
            Verdict {
                target,
                figure: format!("{} vs {} ms = {ratio:.2}× faster", ms(m), ms(b)),
                met: Some(ratio >= POST_SPEEDUP),
            }
        }
        (Some(m), None) => Verdict {
            target,
            figure: format!("{} ms, no baseline", ms(m.latency.post.p50)),
            met: None,
        },
        _ => missing(target),
    });

    let target = format!("`GET` 1 MiB p50 ≤ {GET_OVER_FLOOR}× the static floor");
    out.push(match main {
        Some(m) => {
            let (m, floor) = (m.latency.get.p50, f.floor_get.p50);
            let ratio = m.as_secs_f64() / floor.as_secs_f64().max(1e-9);
            Verdict {
                target,
                figure: format!("{} vs {} ms = {ratio:.2}×", ms(m), ms(floor)),
                met: Some(ratio <= GET_OVER_FLOOR),
            }
        }
        None => missing(target),
    });
    out
}

fn missing(target: String) -> Verdict {
    Verdict {
        target,
        figure: "—".into(),
        met: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(3_333.3), "3,333");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn postgres_may_be_slower() {
        assert_eq!(thousands(lock_target("PostgreSQL")), "3,333");
        assert_eq!(lock_target("SQLite"), 5_000.0);
    }
}
