//! A run's report: what it measured ([`ScenarioReport`] and its records),
//! and the human table and JSON file for one test's result.

mod scenario;

pub use scenario::{CgroupRecord, ScenarioReport, StepRecord, WorkerTelemetry};

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use ktstr_topology::format_cpu_list;
use serde::{Deserialize, Serialize};

use crate::verdict::{Verdict, spread_pct};

/// Writing the JSON result failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// File system error.
    #[error("writing {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Serialisation error.
    #[error("serialising result: {0}")]
    Json(#[from] serde_json::Error),
}

/// One row of the per-cgroup table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CgroupSummary {
    /// Cgroup the workers were created in.
    pub cgroup: String,
    /// Workers reported (lost ones included).
    pub workers: usize,
    /// Union of CPUs its workers ran on.
    pub cpus: Vec<u32>,
    /// CPU-time spread, percent of the mean (None with < 2 comparable workers).
    pub spread_pct: Option<f64>,
    /// Worst gap without progress, ms.
    pub worst_gap_ms: u64,
    /// Migrations, summed.
    pub migrations: u64,
    /// Work units, summed.
    pub work_units: u64,
}

/// Per-cgroup rows, in cgroup order.
pub fn summarize(report: &ScenarioReport) -> Vec<CgroupSummary> {
    let names: BTreeSet<&str> = report.workers.iter().map(|w| w.cgroup.as_str()).collect();
    names
        .into_iter()
        .map(|name| {
            let ws: Vec<_> = report.workers.iter().filter(|w| w.cgroup == name).collect();
            let comparable: Vec<u64> = ws
                .iter()
                .filter(|w| w.lost.is_none() && w.tracks_progress)
                .map(|w| w.cpu_time_ns)
                .collect();
            CgroupSummary {
                cgroup: name.to_string(),
                workers: ws.len(),
                cpus: ws
                    .iter()
                    .flat_map(|w| w.cpus_used.iter().copied())
                    .collect::<BTreeSet<u32>>()
                    .into_iter()
                    .collect(),
                spread_pct: spread_pct(&comparable),
                worst_gap_ms: ws.iter().map(|w| w.max_gap_ns).max().unwrap_or(0) / 1_000_000,
                migrations: ws.iter().map(|w| w.migrations).sum(),
                work_units: ws.iter().map(|w| w.work_units).sum(),
            }
        })
        .collect()
}

/// The per-cgroup table (workers, CPUs, spread, worst gap, migrations,
/// work units), one line per cgroup under a header.
pub fn table(report: &ScenarioReport) -> String {
    let rows = summarize(report);
    let name_w = rows
        .iter()
        .map(|r| r.cgroup.len())
        .chain(std::iter::once("cgroup".len()))
        .max()
        .unwrap_or(6);
    let mut s = format!(
        "{:<name_w$}  {:>7}  {:<12}  {:>7}  {:>10}  {:>10}  {:>12}\n",
        "cgroup", "workers", "cpus", "spread", "worst gap", "migrations", "work units"
    );
    for r in rows {
        let spread = r
            .spread_pct
            .map_or_else(|| "-".to_string(), |p| format!("{p:.0}%"));
        s.push_str(&format!(
            "{:<name_w$}  {:>7}  {:<12}  {:>7}  {:>7} ms  {:>10}  {:>12}\n",
            r.cgroup,
            r.workers,
            format_cpu_list(&r.cpus),
            spread,
            r.worst_gap_ms,
            r.migrations,
            r.work_units
        ));
    }
    for p in &report.payloads {
        s.push_str(&p.summary());
        s.push('\n');
    }
    s
}

/// What lands in `target/ktstr/<test>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestResult {
    /// Test name.
    pub test: String,
    /// Topology + scheduler label.
    pub context: String,
    /// The headline.
    pub summary: String,
    /// Verdict.
    pub verdict: Verdict,
    /// Per-cgroup rows.
    pub cgroups: Vec<CgroupSummary>,
    /// Full telemetry.
    pub report: ScenarioReport,
}

impl TestResult {
    /// Bundle a verdict with its report.
    pub fn new(test: &str, context: &str, verdict: Verdict, report: ScenarioReport) -> Self {
        Self {
            test: test.to_string(),
            context: context.to_string(),
            summary: verdict.headline(test, context),
            cgroups: summarize(&report),
            verdict,
            report,
        }
    }
}

/// Write `result` as pretty JSON to `path` (parents created; written to a
/// temporary sibling and renamed so readers never see half a file).
pub fn json(path: &Path, result: &TestResult) -> Result<(), ReportError> {
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| ReportError::Io { path: p, source }
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let text = serde_json::to_vec_pretty(result)?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}
