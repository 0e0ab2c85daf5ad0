//! What the machine is, for the report.

use std::path::Path;
use std::process::Command;

pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub memory: String,
    pub kernel: String,
    pub temp_fs: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = field(&meminfo, "MemTotal")
            .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or_else(
                || "unknown".into(),
                |kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)),
            );
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu,
            memory,
            kernel,
            temp_fs: fs_type(&std::env::temp_dir()),
        }
    }
}

/// The first `name : value` line's value.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_owned())
    })
}

/// `/tmp (ext4)`: where the SQLite files and Terraform dirs live.
fn fs_type(dir: &Path) -> String {
    let kind = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    format!("{} ({kind})", dir.display())
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Busy and total jiffies of all CPUs, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub struct CpuCounters {
    busy: u64,
    total: u64,
}

pub fn cpu_counters() -> anyhow::Result<CpuCounters> {
    use anyhow::Context;
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let line = text.lines().next().context("empty /proc/stat")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Ok(CpuCounters {
        busy: total.saturating_sub(idle),
        total,
    })
}

/// The share of all CPUs that was busy since `before` (0.0 to 1.0).
pub fn busy_since(before: CpuCounters) -> anyhow::Result<f64> {
    let now = cpu_counters()?;
    let total = now.total.saturating_sub(before.total);
    Ok(if total == 0 {
        0.0
    } else {
        now.busy.saturating_sub(before.busy) as f64 / total as f64
    })
}

/// `abc1234` (+ ", uncommitted changes" when the tree is dirty) of the checkout at `root`.
pub fn git_commit(root: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run(&["rev-parse", "--short", "HEAD"])?;
    let dirty = run(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "crates",
    ])
    .is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{commit}, with uncommitted changes under crates/")
    } else {
        commit
    })
}

/// When a file was last modified, as seconds before now.
pub fn age_secs(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    modified.elapsed().ok().map(|d| d.as_secs())
}
