//! This process's CPU time, memory and open files, read from `/proc/self` on Linux (the
//! standard `process_*` names, so common dashboards work). Elsewhere nothing is written.

use super::text::Exposition;

/// What `/proc/self` says.
#[derive(Debug, Default, PartialEq)]
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
}

pub fn write(out: &mut Exposition) {
    let Some(p) = read() else {
        return;
    };
    out.counter(
        "process_cpu_seconds_total",
        "User and system CPU time spent, in seconds",
    );
    out.sample("process_cpu_seconds_total", &[], p.cpu_seconds);
    out.gauge("process_resident_memory_bytes", "Resident memory size");
    out.sample("process_resident_memory_bytes", &[], p.resident_bytes);
    out.gauge("process_virtual_memory_bytes", "Virtual memory size");
    out.sample("process_virtual_memory_bytes", &[], p.virtual_bytes);
    if let Some(start) = p.start_time_seconds {
        out.gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
        );
        out.sample("process_start_time_seconds", &[], start);
    }
    if let Some(open) = p.open_fds {
        out.gauge("process_open_fds", "Open file descriptors");
        out.sample("process_open_fds", &[], open);
    }
    if let Some(max) = p.max_fds {
        out.gauge("process_max_fds", "The open-files limit (soft)");
        out.sample("process_max_fds", &[], max);
    }
}

#[cfg(target_os = "linux")]
fn read() -> Option<ProcessFigures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| boot_time(&s));
    let mut figures = parse_stat(&stat, ticks, page, boot)?;
    figures.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as f64);
    figures.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| max_open_files(&s));
    Some(figures)
}

#[cfg(not(target_os = "linux"))]
fn read() -> Option<ProcessFigures> {
    None
}

/// `/proc/self/stat`: fields after the command name (which may hold spaces and parentheses,
/// so the text after its last `)` is split). utime and stime are fields 14 and 15, starttime
/// 22, vsize 23, rss (pages) 24.
fn parse_stat(stat: &str, ticks: f64, page: f64, boot: Option<f64>) -> Option<ProcessFigures> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse::<f64>().ok() };
    let start_ticks = field(22)?;
    Some(ProcessFigures {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * page,
        start_time_seconds: boot.map(|b| b + start_ticks / ticks),
        open_fds: None,
        max_fds: None,
    })
}

/// `btime` of `/proc/stat`: when the system booted, in seconds since the epoch.
fn boot_time(stat: &str) -> Option<f64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit on the `Max open files` line of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        let stat = "4242 (state (house) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    12 0 1000 2000000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0";
        let p = parse_stat(stat, 100.0, 4096.0, Some(1_700_000_000.0)).unwrap();
        assert_eq!(p.cpu_seconds, 3.0);
        assert_eq!(p.virtual_bytes, 2_000_000.0);
        assert_eq!(p.resident_bytes, 300.0 * 4096.0);
        assert_eq!(p.start_time_seconds, Some(1_700_000_010.0));
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(max_open_files(limits), Some(1024.0));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_reads() {
        let p = read().unwrap();
        assert!(p.resident_bytes > 0.0);
        assert!(p.open_fds.unwrap() >= 1.0);
        assert!(p.max_fds.unwrap() >= p.open_fds.unwrap());
        assert!(p.start_time_seconds.unwrap() > 1_500_000_000.0);
    }
}
