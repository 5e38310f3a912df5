//! A run's results, as text for people and as one JSON object for scripts.

use super::{Params, Plan, Tally, Workload};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Latency percentiles of the counted operations, in microseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Failures of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorTally {
    pub count: u64,
    /// The first message of this kind.
    pub example: String,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Report {
    pub system: String,
    /// The parameters, as JSON (null where one does not apply).
    pub parameters: Value,
    /// The run's parent node.
    pub root: String,
    /// Operations completed inside the measured window.
    pub ops: u64,
    /// The window, in seconds.
    pub seconds: f64,
    /// `None` when no operation completed.
    pub latency: Option<Latency>,
    pub errors: BTreeMap<String, ErrorTally>,
    pub server_pids: Option<Vec<u32>>,
    /// CPU seconds the server processes used in the window.
    pub server_cpu_seconds: Option<f64>,
    /// CPU seconds this process used in the window.
    pub client_cpu_seconds: Option<f64>,
    /// Things to know about the run (adjusted parameters, clean-up
    /// failures, slots that stopped).
    pub notes: Vec<String>,
    summary: String,
}

impl Report {
    pub(super) fn new(
        system: &str,
        params: &Params,
        plan: &Plan,
        tally: Tally,
        server_cpu_seconds: Option<f64>,
        client_cpu_seconds: Option<f64>,
        notes: Vec<String>,
    ) -> Report {
        let h = &tally.latency;
        let latency = (!h.is_empty()).then(|| Latency {
            min: h.min(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        });
        let (writers, in_flight) = params.writers();
        let w = &params.workload;
        let keys = w.uses_keys().then_some(params.keys);
        let read = match w {
            Workload::Get { read } => Some(read.name()),
            _ => None,
        };
        let read_ratio = match w {
            Workload::Mixed { read_ratio } => Some(*read_ratio),
            _ => None,
        };
        let sequential = match w {
            Workload::Create { sequential } => Some(*sequential),
            _ => None,
        };
        let watchers = match w {
            Workload::Watch { watchers } => Some(*watchers),
            _ => None,
        };
        let (plugin, component) = match w {
            Workload::Plugin { kind, file, .. } => {
                (Some(kind.name()), Some(file.display().to_string()))
            }
            _ => (None, None),
        };
        let value_size = match w {
            Workload::Plugin { .. } => plan.value.len(),
            _ => params.value_size,
        };
        // The threads of the runtime the clients ran on (`--threads`).
        let threads = tokio::runtime::Handle::try_current().ok().map(|h| h.metrics().num_workers());
        let parameters = json!({
            "workload": w.name(), "clients": writers, "in_flight": in_flight, "keys": keys,
            "client_threads": threads,
            "value_size": value_size, "warmup_s": params.warmup.as_secs_f64(),
            "duration_s": params.duration.as_secs_f64(), "read": read, "read_ratio": read_ratio,
            "sequential": sequential, "watchers": watchers, "plugin": plugin,
            "component": component,
        });
        // One line naming the workload, for the text report.
        let mut summary = w.name().to_owned();
        match w {
            Workload::Create { sequential: true } => summary.push_str(" (sequential)"),
            Workload::Get { read } => {
                let _ = write!(summary, " ({} reads)", read.name());
            }
            Workload::Mixed { read_ratio } => {
                let _ = write!(summary, " ({:.0}% local reads, the rest sets)", read_ratio * 100.0);
            }
            Workload::Watch { watchers } => {
                let _ = write!(summary, " (1 writer, {watchers} watchers on one node)");
            }
            Workload::Plugin { kind, .. } => {
                let _ = write!(summary, " ({})", kind.name());
            }
            _ => {}
        }
        let _ = write!(summary, ", {writers} client{}", if writers == 1 { "" } else { "s" });
        if in_flight > 1 {
            let _ = write!(summary, " x {in_flight} in flight");
        }
        if let Some(threads) = threads {
            let _ = write!(summary, " on {threads} thread{}", if threads == 1 { "" } else { "s" });
        }
        if let Some(keys) = keys {
            let _ = write!(summary, ", {keys} keys");
        }
        if !matches!(w, Workload::Plugin { kind: super::PluginKind::Counter, .. }) {
            let _ = write!(summary, ", {value_size}-byte values");
        }
        Report {
            system: system.to_owned(),
            parameters,
            root: plan.root.clone(),
            ops: tally.latency.len(),
            seconds: params.duration.as_secs_f64(),
            latency,
            errors: tally.errors,
            server_pids: params.server_pids.clone(),
            server_cpu_seconds,
            client_cpu_seconds,
            notes,
            summary,
        }
    }

    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.seconds
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }

    /// Server CPU seconds per counted operation; `None` when unknown.
    pub fn cpu_seconds_per_op(&self) -> Option<f64> {
        let cpu = self.server_cpu_seconds?;
        (self.ops > 0).then(|| cpu / self.ops as f64)
    }

    /// The report as one JSON object.
    pub fn json(&self) -> Value {
        let latency = self.latency.map(|l| {
            json!({ "min": l.min, "mean": l.mean, "p50": l.p50, "p99": l.p99,
                    "p999": l.p999, "max": l.max })
        });
        let errors: serde_json::Map<String, Value> = self
            .errors
            .iter()
            .map(|(kind, e)| (kind.clone(), json!({ "count": e.count, "example": e.example })))
            .collect();
        json!({
            "system": self.system,
            "parameters": self.parameters,
            "root": self.root,
            "ops": self.ops,
            "seconds": self.seconds,
            "ops_per_s": self.ops_per_second(),
            "latency_us": latency,
            "errors_total": self.errors_total(),
            "errors": errors,
            "server_pids": self.server_pids,
            "server_cpu_seconds": self.server_cpu_seconds,
            "cpu_seconds_per_op": self.cpu_seconds_per_op(),
            "client_cpu_seconds": self.client_cpu_seconds,
            "notes": self.notes,
        })
    }

    /// The report for people.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let p = &self.parameters;
        let _ = writeln!(out, "{} bench: {}", self.system, self.summary);
        let _ = writeln!(
            out,
            "  window      {} s measured after {} s of warm-up",
            p["duration_s"], p["warmup_s"]
        );
        let _ =
            writeln!(out, "  throughput  {:.0} ops/s ({} ops)", self.ops_per_second(), self.ops);
        match self.latency {
            Some(l) => {
                let _ = writeln!(
                    out,
                    "  latency     p50 {}  p99 {}  p99.9 {}  max {}  (mean {})",
                    micros(l.p50 as f64),
                    micros(l.p99 as f64),
                    micros(l.p999 as f64),
                    micros(l.max as f64),
                    micros(l.mean)
                );
            }
            None => {
                let _ = writeln!(out, "  latency     none: no operation completed in the window");
            }
        }
        if self.errors.is_empty() {
            let _ = writeln!(out, "  errors      none");
        } else {
            let _ = writeln!(out, "  errors      {}", self.errors_total());
            for (kind, e) in &self.errors {
                let _ = writeln!(out, "    {:>8} {kind} (e.g. {})", e.count, e.example);
            }
        }
        match (&self.server_pids, self.server_cpu_seconds) {
            (Some(pids), Some(cpu)) => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                let per_op = match self.cpu_seconds_per_op() {
                    Some(s) => format!("{} per op", micros(s * 1e6)),
                    None => "no ops to divide by".into(),
                };
                let _ = writeln!(
                    out,
                    "  server CPU  {cpu:.2} s in {} processes (pids {}): {per_op}",
                    pids.len(),
                    pids.join(",")
                );
            }
            _ => {
                let _ = writeln!(
                    out,
                    "  server CPU  unknown (give --server-pids or --dev-dir to measure it)"
                );
            }
        }
        if let Some(cpu) = self.client_cpu_seconds {
            let _ = writeln!(out, "  client CPU  {cpu:.2} s in this process");
        }
        for note in &self.notes {
            let _ = writeln!(out, "  note: {note}");
        }
        out
    }
}

/// A duration in microseconds, for people: µs below a millisecond, ms up
/// to a second, s above.
pub(super) fn micros(us: f64) -> String {
    if us < 100.0 {
        format!("{us:.1} µs")
    } else if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(micros(65.84), "65.8 µs");
        assert_eq!(micros(850.0), "850 µs");
        assert_eq!(micros(1_234.0), "1.23 ms");
        assert_eq!(micros(2_500_000.0), "2.50 s");
    }
}
