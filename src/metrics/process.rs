//! The standard `process_*` metrics from `/proc/self` (Linux; elsewhere they are left out).

use super::text::{Kind, Writer};

/// Clock ticks per second of `/proc/PID/stat` times. 100 on every Linux architecture Ketang
/// builds for (USER_HZ is fixed in the kernel ABI), so no `sysconf` call is needed.
const TICKS_PER_SECOND: f64 = 100.0;

pub(super) fn write(w: &mut Writer) {
    if let Some(cpu) = cpu_seconds() {
        w.single(
            "process_cpu_seconds_total",
            Kind::Counter,
            "User and system CPU time of the process, seconds.",
            cpu,
        );
    }
    if let Some((rss, threads)) = status() {
        w.single(
            "process_resident_memory_bytes",
            Kind::Gauge,
            "Resident memory of the process, bytes.",
            rss,
        );
        w.single(
            "process_threads",
            Kind::Gauge,
            "Threads of the process.",
            threads,
        );
    }
}

fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu(&stat)
}

/// utime + stime from a `/proc/PID/stat` line. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted from the last `)`.
fn parse_cpu(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15 → indices 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

fn status() -> Option<(f64, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<(f64, f64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((field("VmRSS:")? * 1024.0, field("Threads:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_an_odd_command_name() {
        let stat = "42 (ke tang) (x) S 1 42 42 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 5 1 2";
        assert_eq!(parse_cpu(stat), Some(3.25));
        assert_eq!(parse_cpu("garbage"), None);
    }

    #[test]
    fn rss_and_threads_come_from_status() {
        let s = "Name:\tketang\nVmRSS:\t  2048 kB\nThreads:\t7\n";
        assert_eq!(parse_status(s), Some((2048.0 * 1024.0, 7.0)));
        assert_eq!(parse_status("Name: x\n"), None);
    }
}
