//! The lines L1's `/init` prints for the host: the one place both the
//! script ([`crate::init_script`]) and the parser ([`crate::summary`]) take
//! them from.

/// L1 is broken (a module, SVM, NPT or `/dev/kvm` missing); the rest of the
/// line says which.
pub const FAIL: &str = "NESTED-FAIL:";
/// KVM is up in L1; the line carries kvm_amd's `npt` and `nested`.
pub const READY: &str = "NESTED-READY";
/// A test binary starts: `NESTED-RUN <suite>`.
pub const RUN: &str = "NESTED-RUN";
/// A test binary ended: `NESTED-DONE <suite> rc=<code> secs=<seconds>`.
pub const DONE: &str = "NESTED-DONE";
/// Every test binary ran; L1 powers off next.
pub const END: &str = "NESTED-END";
/// A figure measured in L1 by `ktstr-nested-stopwatch`: `NESTED-FIGURE
/// <name> run=<i> ms=<ms> ok=<bool>` per run, then `NESTED-FIGURE <name>
/// median_ms=<ms> runs_ms=<a,b,..> failed=<n>`.
pub const FIGURE: &str = "NESTED-FIGURE";
/// L1 is alive: `NESTED-BEAT <uptime s>`, every
/// [`crate::init_script::BEAT_PERIOD_S`] on L1's COM2, from a loop that
/// needs L1's timers and scheduler (see [`crate::watchdog`]).
pub const BEAT: &str = "NESTED-BEAT";
