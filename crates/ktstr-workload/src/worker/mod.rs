//! Workers: one forked process each, so the runner can place it in a cgroup
//! and measure it alone. A worker places itself (writes "0" to its cgroup's
//! `cgroup.procs`), says ready, works until its stop slot is set, then writes
//! a JSON [`ChildReport`] to its report pipe and `_exit`s.
//!
//! * `control`: the shared page of stop flags, mapped before any fork.
//! * `telemetry`: what a worker measures about itself ([`ChildReport`]).
//! * `process`: forking, placing, collecting and reaping a worker.
//! * `work`: the work kinds a worker runs until told to stop.

mod control;
mod process;
mod telemetry;
mod work;

pub use control::ControlPage;
pub use process::{CollectError, WaitStatus, WorkerHandle, WorkerPlan, pin, pipe_pair, spawn};
pub(crate) use process::{cpu_set, pipe, write_all_fd};
pub use telemetry::{ChildReport, LatencyStats, mono_ns};
pub use work::PreparedWork;

/// Starting or collecting a worker failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// Which call.
        what: &'static str,
        /// errno.
        source: std::io::Error,
    },
    /// The worker did not report ready in time or failed to place itself.
    #[error("worker pid {pid} did not start: {reason}")]
    Start {
        /// Worker pid.
        pid: i32,
        /// Why.
        reason: String,
    },
    /// A payload path or argument has a NUL byte.
    #[error("payload argument {0:?} contains a NUL byte")]
    NulInArg(String),
}

fn sys(what: &'static str) -> WorkerError {
    WorkerError::Sys {
        what,
        source: std::io::Error::last_os_error(),
    }
}
