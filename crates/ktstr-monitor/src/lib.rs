//! Reads a running guest kernel's scheduler state from host memory, with
//! no help from the guest: per-CPU run queues (`struct rq`), sched_ext's
//! state, and the current task of each CPU; and detectors that flag a
//! stalled CPU, a deep local dispatch queue, or run-queue imbalance.
//!
//! It depends on no VM backend: it reads guest-physical memory through
//! [`GuestMemoryReader`] and learns the kernel from its vmlinux
//! ([`Vmlinux`]: symbols from `.symtab`, struct layouts from `.BTF`; no
//! offset is written by hand). KASLR stays on: the guest reports where
//! `_text` runs and where it was loaded ([`Placement`]).
//!
//! ktstr-harness runs it in every `#[ktstr_test]` and draws each recording
//! with [`render_svg`]. Figures (cost per sample, sustainable rate, a test's
//! wall time with and without it) are in this crate's README.
//!
//! ```no_run
//! # fn demo(mem: impl ktstr_monitor::GuestMemoryReader + Send + 'static,
//! #         text: u64, phys_base: u64) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use ktstr_monitor::*;
//! let vmlinux = Arc::new(Vmlinux::load("vmlinux".as_ref())?);
//! let monitor = Monitor::attach(vmlinux, Placement { text, phys_base }, &mem)?;
//! let sampler = SamplerHandle::spawn(monitor, mem, DEFAULT_PERIOD)?;
//! // ... the test runs ...
//! let recording = sampler.stop()?;
//! for finding in detect(&recording.samples, &Thresholds::default()) {
//!     println!("{finding:?}");
//! }
//! # Ok(()) }
//! ```

mod btf;
mod detect;
mod error;
#[cfg(test)]
mod fake_guest;
mod layout;
mod memory;
mod monitor;
mod sample;
mod sampler;
mod symbols;
mod timeline;
mod translate;
mod vmlinux;
mod vmlinux_cache;

pub use btf::{Btf, Field};
pub use detect::{Finding, StallKind, Thresholds, detect};
pub use error::{AttachError, LoadError, MemoryError, ReadError};
pub use layout::{KernelLayout, RqLayout, ScxRqLayout, ScxTaskLayout, TaskLayout};
pub use memory::GuestMemoryReader;
pub use monitor::{MSR_LSTAR, Monitor, Placement};
pub use sample::{CpuSample, CurrentTask, Sample, ScxStatus, WaitingTask};
pub use sampler::{DEFAULT_PERIOD, Recording, SamplerHandle, SamplerPanicked};
pub use symbols::KernelSymbols;
pub use timeline::render_svg;
pub use translate::{AddressSpace, PagingLevels};
pub use vmlinux::Vmlinux;

/// A `Duration` in JSON as fractional milliseconds (what a reader of
/// `target/ktstr/<test>.json` compares with the verdict's times).
fn serde_ms<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1e3)
}
