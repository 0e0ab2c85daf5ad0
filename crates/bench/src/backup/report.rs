//! The backup section of the report.

use crate::http::MB;

use super::{PEAK_RSS_BYTES, Results, Row, THROUGHPUT_RATIO};

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / MB as f64)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn runs_text(row: &Row) -> String {
    row.runs
        .iter()
        .map(|r| format!("{:.1}", r.wall.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn render(r: &Results) -> String {
    let mut o = String::new();
    let _ = write_report(&mut o, r);
    o
}

fn write_report(o: &mut String, r: &Results) -> std::fmt::Result {
    use std::fmt::Write;
    writeln!(o, "## 4. PostgreSQL backups\n")?;
    write!(
        o,
        "Database `{}`: {} MiB on disk, {} rows in its tables, a {} MiB pg_dump archive (`-Z0`)",
        r.database,
        mib(r.database_bytes),
        r.source_rows,
        mib(r.statehouse.dump_bytes()),
    )?;
    if let Some((scale, wall)) = r.init {
        write!(
            o,
            "; created by `pgbench -i -s {scale}` in {:.0} s",
            wall.as_secs_f64()
        )?;
    }
    writeln!(
        o,
        ". PostgreSQL {}; `{}` and `{}` (the ones statehouse picks for this server).\n",
        r.server_version,
        r.pg_dump.display(),
        r.pg_restore.display()
    )?;

    let a = r.baseline_a.throughput();
    let ratio = r.statehouse.throughput() / a;
    let rss = r
        .statehouse
        .peak_rss()
        .max(r.statehouse_counted.peak_rss())
        .unwrap_or(0);
    let size = r.statehouse.output_bytes() as f64 / r.baseline_b.output_bytes().max(1) as f64;
    let restore_ratio = r.restore_statehouse.throughput() / r.restore_baseline.throughput();
    writeln!(o, "| target | figure | |")?;
    writeln!(o, "|---|---|---|")?;
    writeln!(
        o,
        "| backup throughput ≥ {THROUGHPUT_RATIO}× baseline A | {ratio:.2}× ({:.0} vs {a:.0} MiB/s of pg_dump output) | {} |",
        r.statehouse.throughput(),
        verdict(ratio >= THROUGHPUT_RATIO)
    )?;
    let counted_ratio = r.statehouse_counted.throughput() / a;
    writeln!(
        o,
        "| the same while a verification server is set (rows counted in the dump's snapshot) | {counted_ratio:.2}× ({:.0} MiB/s) | {} |",
        r.statehouse_counted.throughput(),
        verdict(counted_ratio >= THROUGHPUT_RATIO)
    )?;
    writeln!(
        o,
        "| peak RSS of a backup ≤ {} MiB | {} MiB (`VmHWM` of the process running `run_backup`) | {} |",
        PEAK_RSS_BYTES / MB as u64,
        mib(rss),
        verdict(rss <= PEAK_RSS_BYTES)
    )?;
    writeln!(
        o,
        "| size vs pg_dump's own `-Z5` | {size:.2}× ({} vs {} MiB) | {} |",
        mib(r.statehouse.output_bytes()),
        mib(r.baseline_b.output_bytes()),
        if size <= 1.0 { "smaller" } else { "larger" }
    )?;
    writeln!(
        o,
        "| restore throughput vs `zstd -d \\| pg_restore` | {restore_ratio:.2}× ({:.0} vs {:.0} MiB/s) | |",
        r.restore_statehouse.throughput(),
        r.restore_baseline.throughput()
    )?;
    writeln!(o)?;

    writeln!(
        o,
        "Backups: median wall time of {} rounds (A, statehouse, statehouse counting rows take turns in each round); throughput = pg_dump archive bytes ÷ wall time; CPU = user + system seconds of every process of the run except the PostgreSQL server (pg_dump and the compressor: `zstd`, or the process running `run_backup`).\n",
        r.reps
    )?;
    writeln!(
        o,
        "| backup | wall s (median) | runs, s | pg_dump MiB/s | vs A | output MiB | CPU s | peak RSS MiB |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|---|")?;
    for row in [
        &r.baseline_a,
        &r.statehouse,
        &r.statehouse_counted,
        &r.baseline_b,
    ] {
        writeln!(
            o,
            "| {} | {:.2} | {} | {:.0} | {:.2}× | {} | {:.1} | {} |",
            row.label.replace('|', "\\|"),
            row.median_wall().as_secs_f64(),
            runs_text(row),
            row.throughput(),
            row.throughput() / a,
            mib(row.output_bytes()),
            row.median_cpu(),
            row.peak_rss().map_or_else(|| "–".to_owned(), mib)
        )?;
    }
    writeln!(o)?;
    writeln!(
        o,
        "Restores, each into a new empty database (created untimed, dropped afterwards), of the last round's archives:\n"
    )?;
    writeln!(
        o,
        "| restore | wall s | pg_dump MiB/s | vs baseline | rows restored | CPU s | peak RSS MiB |"
    )?;
    writeln!(o, "|---|---|---|---|---|---|---|")?;
    let b = r.restore_baseline.throughput();
    for (row, rows) in [
        (&r.restore_baseline, r.restored_rows.0),
        (&r.restore_statehouse, r.restored_rows.1),
    ] {
        writeln!(
            o,
            "| {} | {:.2} | {:.0} | {:.2}× | {rows}{} | {:.1} | {} |",
            row.label.replace('|', "\\|"),
            row.median_wall().as_secs_f64(),
            row.throughput(),
            row.throughput() / b,
            if rows == r.source_rows {
                " (all)"
            } else {
                " (**differs from the source**)"
            },
            row.median_cpu(),
            row.peak_rss().map_or_else(|| "–".to_owned(), mib)
        )?;
    }
    writeln!(o)?;
    Ok(())
}
