//! Run a ktstr guest kernel under QEMU (TCG or KVM): microvm, or q35 for shapes with dies
//! or NUMA nodes.
//!
//! COM1/COM2 are captured (COM1 also streamed live), the virtio-serial console (hvc0) and
//! the `ktstr.bulk` port (/dev/vport0p1) are carried over unix socket pairs, guest RAM is a
//! memfd the host can read while the guest runs, and the run ends in a classified
//! [`ExitKind`]. A run creates no file, so even a SIGKILLed caller leaves nothing behind. See README.md for supported shapes and limits.

mod chardev;
pub mod command;
pub mod config;
pub mod error;
mod memory;
pub mod outcome;
mod process;
mod qmp;
pub mod snapshot;
pub mod topology;
mod vm;

pub use chardev::PortSender;
pub use config::{
    Accel, AccelChoice, KvmKind, MAX_MEMORY_MIB, Q35_MAX_MEMORY_MIB, QemuConfig, TCG_THREADS_ENV,
    TcgThreads, host_tsc_khz, recommended_accel,
};
pub use error::{Error, Result};
pub use memory::GuestMemoryView;
pub use outcome::{ExitKind, Outcome, Timings};
pub use process::KillHandle;
pub use snapshot::{AfterSnapshot, QemuSnapshot, snapshot_key};
pub use topology::{Machine, ShapeError};
pub use vm::{Monitor, QemuBuilder, RunningVm};
