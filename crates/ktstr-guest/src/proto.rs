//! Host→guest requests and guest→host replies, as JSON inside the wire's
//! `RunStep.spec` and `ScenarioResult.text`.
//!
//! Per-test inputs travel here after boot rather than being baked into the
//! initramfs, so one booted guest can serve many tests. The reply to a
//! `RunStep` is the `ScenarioResult` with the same `step`.

use serde::{Deserialize, Serialize};

/// What the host asks the guest init to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Run one command; its output streams back as `Stdout`/`Stderr`.
    Exec(ExecRequest),
    /// Start a sched_ext scheduler and wait until it is attached.
    StartScheduler(StartScheduler),
    /// Stop the running scheduler and confirm the kernel detached it.
    StopScheduler(StopScheduler),
    /// An interactive `/bin/sh -i` on a pty: output as `Stdout` chunks,
    /// keystrokes as `Stdin` chunks; an empty `Stdin` chunk means the host
    /// is done. Replied with [`Reply::Exec`] when the shell has exited.
    Shell,
    /// Run a scenario (cgroups, workers, telemetry); replied with [`Reply::Scenario`].
    RunScenario {
        /// What to run.
        scenario: ktstr_workload::Scenario,
    },
    /// Panic inside init (tests the panic path end to end).
    Panic {
        /// The panic message.
        message: String,
    },
    /// Write `bytes` unframed pseudo-random bytes (frame magic included) on
    /// the bulk channel, then reply with an empty `Exec` (tests the host
    /// decoder's resync and memory bound under garbage).
    Garbage {
        /// How many bytes.
        bytes: u64,
    },
    /// Raise a fatal signal in init (tests the signal path end to end).
    Raise {
        /// One of SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT.
        signal: i32,
    },
}

/// Run `argv` (looked up in `PATH`) with a deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Kill the command's process group after this long.
    pub timeout_ms: u64,
}

/// Start the scheduler binary at `path` (a guest path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartScheduler {
    /// Guest path of the scheduler binary.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// How long attaching may take.
    pub attach_timeout_ms: u64,
    /// If set, `/sys/kernel/sched_ext/root/ops` must name exactly this.
    pub expect_name: Option<String>,
}

/// Stop the scheduler: SIGINT, then SIGKILL after `grace_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopScheduler {
    /// Time between SIGINT and SIGKILL.
    pub grace_ms: u64,
    /// How long the kernel may take to report `disabled` afterwards.
    pub detach_timeout_ms: u64,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcExit {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal number, if a signal killed it.
    pub signal: Option<i32>,
}

impl ProcExit {
    /// Decode a `waitpid` status.
    pub fn from_wait_status(status: i32) -> Self {
        if libc::WIFEXITED(status) {
            ProcExit {
                code: Some(libc::WEXITSTATUS(status)),
                signal: None,
            }
        } else if libc::WIFSIGNALED(status) {
            ProcExit {
                code: None,
                signal: Some(libc::WTERMSIG(status)),
            }
        } else {
            ProcExit::default()
        }
    }

    /// A single number for the wire: the code, or 128 + signal.
    pub fn wire_code(&self) -> i64 {
        match (self.code, self.signal) {
            (Some(c), _) => i64::from(c),
            (None, Some(s)) => 128 + i64::from(s),
            (None, None) => -1,
        }
    }
}

/// The guest's answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// The command ran (whatever its exit code).
    Exec {
        /// Its pid (the `pid` of its output chunks).
        pid: u32,
        /// How it ended.
        exit: ProcExit,
        /// True if the deadline killed it.
        timed_out: bool,
    },
    /// The scheduler is attached.
    Attached {
        /// `/sys/kernel/sched_ext/root/ops`.
        name: String,
        /// Scheduler pid (the `pid` of its output chunks).
        pid: u32,
    },
    /// The scenario ran; its `ktstr_workload::ScenarioReport` as JSON.
    Scenario {
        /// The report, JSON-encoded.
        report: String,
    },
    /// The scheduler did not attach.
    NotAttached {
        /// Scheduler pid.
        pid: u32,
        /// Set if the process exited before attaching.
        exit: Option<ProcExit>,
        /// True if the attach deadline passed (the process was then killed).
        timed_out: bool,
        /// What `root/ops` named, if something other than expected attached.
        other_name: Option<String>,
        /// The tail of its stderr.
        stderr: String,
        /// The tail of its stdout.
        stdout: String,
        /// `sched_ext` kernel log lines seen meanwhile.
        kernel_log: Vec<String>,
    },
    /// The scheduler is detached (stopped now, or it had already ended).
    Detached {
        /// How the process ended.
        exit: ProcExit,
        /// True if SIGKILL was needed.
        killed: bool,
        /// True if it had ended before the stop request (see `SchedulerState`).
        ended_before_stop: bool,
        /// `sched_ext` kernel log lines since it started.
        kernel_log: Vec<String>,
    },
    /// The request could not be carried out.
    Error {
        /// Why.
        message: String,
    },
}
