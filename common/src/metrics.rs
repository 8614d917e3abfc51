//! The metrics registry behind `/metrics`: one registry per process, the agent's metrics under
//! its own prefix (`logship_...`), a `<agent>_build_info` metric, and the standard `process_*`
//! metrics read from `/proc` at each scrape.
//!
//! Names follow `<agent>_<thing>_<unit>`, base units, counters end in `_total` (added by the
//! encoder). Labels are bounded: never a file path or an address unless the user opts in.
use std::fmt::Write as _;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, info::Info},
    registry::{Registry, Unit},
};

/// The process-wide registry: the root (for `process_*`) and the agent's prefixed sub-registry.
#[derive(Debug)]
pub struct Metrics {
    root: Registry,
}

impl Metrics {
    /// A registry for `agent`, with build info and process metrics registered.
    pub fn new(agent: &str) -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let build = Info::new(vec![
            ("version", crate::VERSION.to_string()),
            ("commit", crate::GIT_COMMIT.to_string()),
        ]);
        let sub = root.sub_registry_with_prefix(agent);
        sub.register("build", "Version and git commit of this build", build);
        Metrics { root }
    }

    /// The agent's sub-registry: metrics registered here get the agent's prefix.
    pub fn agent_registry(&mut self, agent: &str) -> &mut Registry {
        self.root.sub_registry_with_prefix(agent)
    }

    /// Encodes everything as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        if prometheus_client::encoding::text::encode(&mut out, &self.root).is_err() {
            out.clear();
            let _ = writeln!(out, "# encoding failed");
        }
        out
    }
}

/// Reads the standard process metrics from `/proc/self` at each scrape.
#[derive(Debug)]
struct ProcessCollector;

/// Kernel clock ticks per second for /proc times (USER_HZ, fixed at 100 in the Linux ABI).
const USER_HZ: f64 = 100.0;

#[derive(Debug, Default, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    open_fds: u64,
    max_fds: Option<u64>,
    start_time_seconds: Option<f64>,
    threads: u64,
}

fn read_process_stats() -> ProcessStats {
    let mut st = ProcessStats::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may contain spaces.
        if let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            // rest starts at field 3 (state); utime is field 14, stime 15, threads 20, start 22.
            let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
            if let (Some(u), Some(s)) = (field(14), field(15)) {
                st.cpu_seconds = (u + s) as f64 / USER_HZ;
            }
            st.threads = field(20).unwrap_or(0);
            if let (Some(start), Some(btime)) = (field(22), boot_time()) {
                st.start_time_seconds = Some(btime as f64 + start as f64 / USER_HZ);
            }
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let kb = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|v| v * 1024)
            };
            if line.starts_with("VmRSS:") {
                st.resident_bytes = kb(line).unwrap_or(0);
            } else if line.starts_with("VmSize:") {
                st.virtual_bytes = kb(line).unwrap_or(0);
            }
        }
    }
    st.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        st.max_fds = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok());
    }
    st
}

fn boot_time() -> Option<u64> {
    std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse().ok()))
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let st = read_process_stats();
        let cpu = ConstCounter::new(st.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<Unit>, Option<f64>); 6] = [
            (
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(Unit::Bytes),
                Some(st.resident_bytes as f64),
            ),
            (
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(Unit::Bytes),
                Some(st.virtual_bytes as f64),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                None,
                Some(st.open_fds as f64),
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                st.max_fds.map(|v| v as f64),
            ),
            (
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(Unit::Seconds),
                st.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                None,
                Some(st.threads as f64),
            ),
        ];
        for (name, help, unit, value) in gauges {
            if let Some(v) = value {
                let g = ConstGauge::new(v);
                g.encode(encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn encodes_agent_build_and_process_metrics() {
        let mut m = Metrics::new("demo");
        let c: Counter = Counter::default();
        m.agent_registry("demo")
            .register("widgets", "Widgets made", c.clone());
        c.inc();
        let text = m.encode();
        assert!(text.contains("demo_widgets_total 1"), "{text}");
        assert!(text.contains("demo_build_info{version=\""), "{text}");
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
        assert!(text.contains("process_open_fds "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn reads_proc() {
        let st = read_process_stats();
        assert!(st.resident_bytes > 0);
        assert!(st.open_fds > 0);
        assert!(st.start_time_seconds.unwrap() > 1.0e9);
    }
}
