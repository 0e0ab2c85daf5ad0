//! The search section of the report.

use std::time::Duration;

use super::StoreResult;

fn ms(d: Duration) -> String {
    crate::stats::ms(d)
}

/// The search section of the report, in Markdown.
pub fn render(results: &[StoreResult]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "## 3. Resource search\n");
    for r in results {
        let target = if r.store == "SQLite" { 200.0 } else { 100.0 };
        let p95 = r.mix_all.p95.as_secs_f64() * 1e3;
        let _ = writeln!(
            o,
            "### {}: {} states, {} resource instances (seeded through the store in {:.0} s)\n",
            r.store,
            r.states,
            r.instances,
            r.seed_time.as_secs_f64()
        );
        let _ = writeln!(
            o,
            "Mix of all kinds below, every workspace readable: p50 {} / p95 {} / p99 {} ms — target p95 ≤ {target:.0} ms: **{}**. \
             One workspace (of {}) readable: p50 {} / p95 {} / p99 {} ms.{}\n",
            ms(r.mix_all.p50),
            ms(r.mix_all.p95),
            ms(r.mix_all.p99),
            if p95 <= target { "met" } else { "missed" },
            20,
            ms(r.mix_scoped.p50),
            ms(r.mix_scoped.p95),
            ms(r.mix_scoped.p99),
            r.baseline_mix
                .map(|b| format!(
                    " Baseline (same SQL on an unindexed copy of the table): p50 {} / p95 {} ms.",
                    ms(b.p50),
                    ms(b.p95)
                ))
                .unwrap_or_default()
        );
        let _ = writeln!(
            o,
            "Write path: a 5,000-instance state's first write {} ms (all rows inserted), the next write with 10 instances changed {} ms.\n",
            ms(r.big_first_write),
            ms(r.big_rewrite)
        );
        let _ = writeln!(
            o,
            "| query | hits (page ≤ 100) | p50 ms | p95 ms | p99 ms | one workspace p95 ms | baseline p50 ms |"
        );
        let _ = writeln!(o, "|---|--:|--:|--:|--:|--:|--:|");
        for k in &r.kinds {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} |",
                k.label,
                k.hits,
                ms(k.all.p50),
                ms(k.all.p95),
                ms(k.all.p99),
                ms(k.scoped.p95),
                k.baseline.map(|b| ms(b.p50)).unwrap_or_else(|| "–".into())
            );
        }
        let _ = writeln!(o);
        render_pages(&mut o, r);
    }
    o
}

/// The web UI pages on the same store: target p95 ≤ 50 ms each.
fn render_pages(o: &mut String, r: &StoreResult) {
    use std::fmt::Write;
    if r.pages.is_empty() {
        return;
    }
    let worst = r.pages.iter().map(|p| p.page.p95).max().unwrap_or_default();
    let _ = writeln!(
        o,
        "Web UI pages on this data, rendered through the server's router in-process with a browser \
         session (route → service → store → template; {} requests each): slowest p95 {} ms — target \
         p95 ≤ 50 ms for every page: **{}**. Baseline: the page's REST API twin (same services, \
         JSON instead of a template).\n",
        r.pages[0].page.n,
        ms(worst),
        if worst <= Duration::from_millis(50) {
            "met"
        } else {
            "missed"
        }
    );
    let _ = writeln!(
        o,
        "| page | address | HTML KiB | p50 ms | p95 ms | p99 ms | API twin p50 ms | API twin p95 ms |"
    );
    let _ = writeln!(o, "|---|---|--:|--:|--:|--:|--:|--:|");
    for p in &r.pages {
        let (api50, api95) = p.api.as_ref().map_or(("–".into(), "–".into()), |(_, s)| {
            (ms(s.p50), ms(s.p95))
        });
        let _ = writeln!(
            o,
            "| {} | `{}` | {:.1} | {} | {} | {} | {api50} | {api95} |",
            p.label,
            p.path,
            p.bytes as f64 / 1024.0,
            ms(p.page.p50),
            ms(p.page.p95),
            ms(p.page.p99),
        );
    }
    let _ = writeln!(o);
}
