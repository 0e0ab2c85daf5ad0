//! Diffs two state files and prints a summary with the time taken: a way to measure
//! `tfstate::diff` on large states (`/usr/bin/time -v` adds the peak memory).
//!
//! `cargo run --release -p statehouse-core --example tfstate_diff -- OLD.tfstate NEW.tfstate`

use std::time::Instant;

use statehouse_core::tfstate;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [old, new] = args.as_slice() else {
        return Err("usage: tfstate_diff OLD.tfstate NEW.tfstate".into());
    };
    let old = std::fs::read(old)?;
    let new = std::fs::read(new)?;
    let started = Instant::now();
    let diff = tfstate::diff(&old, &new, false)?;
    let diffed = started.elapsed();
    let started = Instant::now();
    let entries = tfstate::index_entries(&new)?.unwrap_or_default();
    let indexed = started.elapsed();
    println!(
        "{} + {} bytes: diff in {:.0} ms (added {}, removed {}, changed {}, unchanged {}); \
         {} index entries in {:.0} ms",
        old.len(),
        new.len(),
        diffed.as_secs_f64() * 1000.0,
        diff.added.len(),
        diff.removed.len(),
        diff.changed.len(),
        diff.unchanged,
        entries.len(),
        indexed.as_secs_f64() * 1000.0
    );
    Ok(())
}
