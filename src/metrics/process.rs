//! The exporter convention's `process_*` series (CPU, memory, file
//! descriptors, threads, start time), read from `/proc/self` at each scrape,
//! as Prometheus' client libraries export them. Read here rather than through
//! the `prometheus` crate's `process` feature, which pulls a second `rustix`
//! into the build for six numbers.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, Opts};

/// Collects at each scrape; on a system without `/proc` it yields nothing.
pub struct ProcessCollector {
    cpu: Counter,
    resident: Gauge,
    virtual_memory: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    threads: Gauge,
    start_time: Gauge,
    descs: Vec<Desc>,
}

/// What one reading of `/proc/self` gives.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    pub cpu_seconds: f64,
    pub resident_bytes: f64,
    pub virtual_bytes: f64,
    pub threads: f64,
    /// Since boot, in seconds.
    pub started_after_boot_s: f64,
}

impl ProcessCollector {
    pub fn new() -> Self {
        let gauge =
            |name: &str, help: &str| Gauge::with_opts(Opts::new(name, help)).expect("valid");
        let cpu = Counter::with_opts(Opts::new(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
        ))
        .expect("valid");
        let c = ProcessCollector {
            cpu,
            resident: gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
            ),
            virtual_memory: gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
            ),
            open_fds: gauge("process_open_fds", "Number of open file descriptors."),
            max_fds: gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
            ),
            threads: gauge("process_threads", "Number of OS threads in the process."),
            start_time: gauge(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
            ),
            descs: Vec::new(),
        };
        let descs = c.parts().iter().flat_map(|m| m.desc()).cloned().collect();
        ProcessCollector { descs, ..c }
    }

    fn parts(&self) -> [&dyn Collector; 7] {
        [
            &self.cpu,
            &self.resident,
            &self.virtual_memory,
            &self.open_fds,
            &self.max_fds,
            &self.threads,
            &self.start_time,
        ]
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(r) = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| parse_stat(&s, ticks(), page_size()))
        else {
            return Vec::new();
        };
        // A counter only goes up: add what was used since the last scrape.
        let used = r.cpu_seconds - self.cpu.get();
        if used > 0.0 {
            self.cpu.inc_by(used);
        }
        self.resident.set(r.resident_bytes);
        self.virtual_memory.set(r.virtual_bytes);
        self.threads.set(r.threads);
        if let Some(boot) = boot_time() {
            self.start_time.set(boot + r.started_after_boot_s);
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as f64);
        }
        if let Some(max) = max_fds() {
            self.max_fds.set(max);
        }
        self.parts().iter().flat_map(|m| m.collect()).collect()
    }
}

/// `/proc/self/stat`: fields after the command name, which is in
/// parentheses and may hold spaces (see proc(5)).
pub fn parse_stat(stat: &str, ticks_per_s: f64, page: f64) -> Option<Reading> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Numbered as in proc(5) minus 3: state is field 3.
    let num = |field: usize| f.get(field - 3)?.parse::<f64>().ok();
    Some(Reading {
        cpu_seconds: (num(14)? + num(15)?) / ticks_per_s,
        threads: num(20)?,
        started_after_boot_s: num(22)? / ticks_per_s,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
    })
}

/// A system constant from `sysconf`, or `default` where it cannot be had.
fn sysconf_or(name: libc::c_int, default: f64) -> f64 {
    // SAFETY: sysconf only reads a constant of the system.
    let v = unsafe { libc::sysconf(name) };
    if v > 0 {
        v as f64
    } else {
        default
    }
}

fn ticks() -> f64 {
    sysconf_or(libc::_SC_CLK_TCK, 100.0)
}

fn page_size() -> f64 {
    sysconf_or(libc::_SC_PAGESIZE, 4096.0)
}

/// The boot time, Unix seconds (`btime` in `/proc/stat`).
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("btime "))?;
    line[6..].trim().parse().ok()
}

/// The soft limit on open files.
fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_in_the_name_is_read_by_field() {
        let stat = "4242 (crowd park) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 20 0 \
                    7 0 12345 104857600 2560 18446744073709551615";
        let r = parse_stat(stat, 100.0, 4096.0).unwrap();
        assert_eq!(
            r,
            Reading {
                cpu_seconds: 3.0,
                resident_bytes: 2560.0 * 4096.0,
                virtual_bytes: 104_857_600.0,
                threads: 7.0,
                started_after_boot_s: 123.45,
            }
        );
    }

    #[test]
    fn this_process_is_seen() {
        let c = ProcessCollector::new();
        let families = c.collect();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_threads",
            "process_start_time_seconds",
        ] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        assert!(c.resident.get() > 0.0 && c.threads.get() >= 1.0);
        assert!(c.start_time.get() > 1.7e9, "{}", c.start_time.get());
    }
}
