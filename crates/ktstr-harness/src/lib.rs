//! Host side of a ktstr test: build the guest's initramfs, boot it, and
//! drive it over ktstr-wire.
//!
//! # The guest init needs no extra build
//!
//! [`Session::boot`] packs the *running executable* as `/init` (plus its
//! shared libraries, static busybox and the requested schedulers) and adds
//! `KTSTR_INIT=1` to the kernel command line. Because this crate links
//! `ktstr-guest`, that executable carries `ktstr_guest::init::PID1_HOOK` in
//! `.init_array`; when the kernel starts it as PID 1 with that variable,
//! the hook runs the guest init before `main` (or the libtest harness) ever
//! runs. A `cargo test` binary is therefore its own guest.
//!
//! # Image cache
//!
//! [`image::GuestImage::build_cached`] keys archives by the SHA-256 of their
//! (deterministic) bytes under `target/ktstr/initramfs/`; compression is
//! off by default because an uncompressed archive boots fastest here (see
//! [`compress`] and the README for the figures).
//!
//! # Shell
//!
//! [`Session::shell`] attaches the user's terminal (raw mode, restored on
//! every exit path) to a guest `/bin/sh -i` on a pty. **Ctrl-] kills the
//! VM.** `cargo run -p ktstr-harness --example shell` opens one.
//!
//! # Protocol
//!
//! Requests are `ktstr_guest::proto::Request` JSON in `RunStep.spec`; the
//! guest answers each with a `ScenarioResult` of the same step, streaming
//! `Stdout`/`Stderr` (tagged by pid) and `SchedulerState` reports before it.

#![warn(missing_docs)]

pub mod compress;
pub mod error;
pub mod events;
pub mod guest_files;
pub mod image;
pub mod session;
pub mod shell;
pub mod snapshots;
pub mod terminal;
pub mod test;

pub use ktstr_backend::GuestDeath;
pub use ktstr_backend::death::{KernelCrash, OomKill};
pub use ktstr_harness_macros::ktstr_test;
pub use ktstr_workload as workload;
/// For `#[ktstr_test]`'s registration: users need no `linkme` dependency.
#[doc(hidden)]
pub use linkme as __linkme;

pub use compress::Compression;
pub use error::HarnessError;
pub use events::{SchedEvent, SysInfo};
pub use image::{CachedImage, GuestImage};
pub use session::{
    Attached, BootTimings, Detached, ExecResult, GuestExit, RunResult, Session, SessionConfig,
    init_panic_message,
};
pub use shell::{ESCAPE, ShellEnd};
