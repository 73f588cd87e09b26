//! CPU time and memory of a process, from Linux `/proc`.
//!
//! `/proc/PID/stat` fields 14 and 15 (`utime`, `stime`) are the CPU time of all the
//! process's threads in clock ticks; the kernel exports them in `USER_HZ` units, which is 100
//! on every Linux architecture the generator runs on (it is part of the ABI, independent of the
//! kernel's internal `HZ`). `/proc/PID/status` gives `VmRSS` (resident memory now) and
//! `VmHWM` (its peak). CPU use over an interval is `Δ(utime + stime) / USER_HZ / Δt` cores;
//! the resolution is 10 ms of CPU, so intervals of a few seconds or more are meaningful.

use serde::Serialize;
use std::time::Instant;

/// Clock ticks per second of `/proc/*/stat` times.
const USER_HZ: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// When it was taken.
    pub at: Instant,
    /// `utime + stime`, in seconds.
    pub cpu_secs: f64,
    /// Threads.
    pub threads: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size, KiB.
    pub hwm_kib: u64,
}

/// CPU and memory over an interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ProcUsage {
    /// CPU seconds (user + system) used in the interval.
    pub cpu_secs: f64,
    /// Average cores busy: `cpu_secs / interval`.
    pub cpu_cores: f64,
    /// RSS at the start, MiB.
    pub rss_mib_start: f64,
    /// RSS at the end, MiB.
    pub rss_mib_end: f64,
    /// Peak RSS (VmHWM) at the end, MiB.
    pub rss_mib_peak: f64,
    /// Threads at the end.
    pub threads: u64,
}

/// Read process `pid` (`None`: this process).
pub fn sample(pid: Option<u32>) -> Result<ProcSample, String> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_owned(),
    };
    let at = Instant::now();
    let stat =
        std::fs::read_to_string(format!("{dir}/stat")).map_err(|e| format!("{dir}/stat: {e}"))?;
    let (ticks, threads) =
        parse_stat(&stat).ok_or_else(|| format!("{dir}/stat: unexpected format"))?;
    let status = std::fs::read_to_string(format!("{dir}/status"))
        .map_err(|e| format!("{dir}/status: {e}"))?;
    Ok(ProcSample {
        at,
        cpu_secs: ticks as f64 / USER_HZ,
        threads,
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        hwm_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
    })
}

/// `(utime + stime, num_threads)` from the text of `/proc/PID/stat`.
fn parse_stat(stat: &str) -> Option<(u64, u64)> {
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let threads: u64 = fields.get(20 - 3)?.parse().ok()?;
    Some((utime + stime, threads))
}

/// The 1-minute load average of the host.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The host's UDP `RcvbufErrors` counter (`/proc/net/snmp`): datagrams the kernel dropped
/// because a socket's receive buffer was full — on loopback, the only place packets get lost.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (names, values) = (udp.next()?, udp.next()?);
    let i = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(i)?.parse().ok()
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl ProcUsage {
    /// Usage between two samples of the same process.
    pub fn between(start: &ProcSample, end: &ProcSample) -> ProcUsage {
        let secs = end.at.saturating_duration_since(start.at).as_secs_f64();
        let cpu = (end.cpu_secs - start.cpu_secs).max(0.0);
        let mib = |kib: u64| kib as f64 / 1024.0;
        ProcUsage {
            cpu_secs: cpu,
            cpu_cores: if secs > 0.0 { cpu / secs } else { 0.0 },
            rss_mib_start: mib(start.rss_kib),
            rss_mib_end: mib(end.rss_kib),
            rss_mib_peak: mib(end.hwm_kib),
            threads: end.threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "1234 (ketang shard 0) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 \
                    100 1000 50 18446744073709551615";
        assert_eq!(parse_stat(stat), Some((325, 9)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let a = sample(None).expect("self");
        assert!(a.rss_kib > 0 && a.threads >= 1);
        let b = sample(None).expect("self");
        let u = ProcUsage::between(&a, &b);
        assert!(u.cpu_cores >= 0.0 && u.rss_mib_peak > 0.0);
    }
}
