//! How a scenario and its report travel in ktstr-wire frames: the host puts
//! the [`Scenario`] as JSON in `RunStep.spec`, the guest answers with the
//! [`ScenarioReport`] as JSON in `ScenarioResult.text` (per-worker
//! [`ktstr_wire::WorkerReport`]s via [`WorkerTelemetry::to_wire`](crate::WorkerTelemetry::to_wire)
//! are optional extras).

use std::path::Path;

use ktstr_topology::{GuestTopology, TopologyError};

use crate::report::ScenarioReport;
use crate::runner::{RunError, RunOptions, run_scenario};
use crate::spec::{Scenario, total_workers};

/// Encoding, decoding or running a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// JSON did not (de)serialise.
    #[error("{what}: {source}")]
    Json {
        /// What was being handled.
        what: &'static str,
        /// Cause.
        source: serde_json::Error,
    },
    /// Encoded form does not fit a frame.
    #[error("{what} is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The guest topology could not be read.
    #[error("topology: {0}")]
    Topology(#[from] TopologyError),
    /// The run failed.
    #[error("run: {0}")]
    Run(#[from] RunError),
}

fn encode<T: serde::Serialize>(
    what: &'static str,
    v: &T,
    max: usize,
) -> Result<Vec<u8>, ProtoError> {
    let bytes = serde_json::to_vec(v).map_err(|source| ProtoError::Json { what, source })?;
    if bytes.len() > max {
        return Err(ProtoError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    Ok(bytes)
}

/// `RunStep.spec` for `scenario`, refused if longer than `max` bytes.
pub fn request_bytes(scenario: &Scenario, max: usize) -> Result<Vec<u8>, ProtoError> {
    encode("scenario", scenario, max)
}

/// The scenario in a `RunStep.spec`.
pub fn parse_request(spec: &[u8]) -> Result<Scenario, ProtoError> {
    serde_json::from_slice(spec).map_err(|source| ProtoError::Json {
        what: "scenario",
        source,
    })
}

/// `ScenarioResult.text` for `report`, refused if longer than `max` bytes.
pub fn report_bytes(report: &ScenarioReport, max: usize) -> Result<Vec<u8>, ProtoError> {
    encode("report", report, max)
}

/// The report in a `ScenarioResult.text`.
pub fn parse_report(text: &[u8]) -> Result<ScenarioReport, ProtoError> {
    serde_json::from_slice(text).map_err(|source| ProtoError::Json {
        what: "report",
        source,
    })
}

/// A `RunStep.timeout_ms` for `scenario`: its steps (as long as their
/// payloads may run), plus 10 s, plus 50 ms per worker for spawning and
/// collecting.
pub fn suggested_timeout_ms(scenario: &Scenario) -> u64 {
    scenario.longest_ms() + 10_000 + 50 * total_workers(scenario) as u64
}

/// Guest side in one call: decode `spec`, read the topology under `sysfs`
/// (normally `/sys`), run.
pub fn run_request(
    spec: &[u8],
    sysfs: &Path,
    opts: &RunOptions,
) -> Result<ScenarioReport, ProtoError> {
    let scenario = parse_request(spec)?;
    let topo = GuestTopology::from_sysfs(sysfs)?;
    Ok(run_scenario(&scenario, &topo, opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue;

    #[test]
    fn requests_round_trip_and_respect_the_limit() {
        for sc in catalogue::all() {
            let b = request_bytes(&sc, 1 << 20).unwrap();
            assert_eq!(parse_request(&b).unwrap(), sc);
            assert!(
                suggested_timeout_ms(&sc) > sc.steps.iter().map(|s| s.duration_ms).sum::<u64>()
            );
        }
        assert!(matches!(
            request_bytes(&catalogue::steady(), 10),
            Err(ProtoError::TooLarge { max: 10, .. })
        ));
        assert!(matches!(
            parse_request(b"{"),
            Err(ProtoError::Json {
                what: "scenario",
                ..
            })
        ));
    }
}
