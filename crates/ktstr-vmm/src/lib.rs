//! ktstr-vmm: a small embeddable KVM VMM. It boots a Linux kernel (ELF
//! `vmlinux` or `bzImage`, entered in 64-bit mode) or flat test code,
//! captures two UARTs, can be stopped from any thread, and returns a
//! classified [`Outcome`]. It knows nothing of schedulers.
//!
//! ```no_run
//! # fn main() -> Result<(), ktstr_vmm::VmmError> {
//! let vm = ktstr_vmm::VmBuilder::new()
//!     .kernel("vmlinux")
//!     .initramfs("initramfs.cpio")
//!     .vcpus(2)
//!     .memory_mib(256)
//!     .deadline(std::time::Duration::from_secs(30))
//!     .build()?;
//! let killer = vm.interrupt_handle(); // kill() from any thread
//! let outcome = vm.run()?;
//! println!("{} {}", outcome.exit.name(), outcome.com1_text());
//! # drop(killer); Ok(()) }
//! ```
//!
//! Map: [`config`] (builder, validation) → `vm` (create, run) → `vcpu`
//! (threads, kick, panic shim) → `devices` (bus, UARTs, i8042, CMOS) and
//! `arch` (boot structures); [`compat`] holds the software-KVM shims,
//! [`profile`] the RIP sampler, [`snapshot`] boot-once/restore-many:
//!
//! ```no_run
//! # fn main() -> Result<(), ktstr_vmm::VmmError> {
//! use ktstr_vmm::{AfterSnapshot, RestoreOptions, SnapshotPlan, SnapshotTrigger, Vm, VmBuilder};
//! // Boot once; the guest writes to the control port when it is ready.
//! VmBuilder::new()
//!     .kernel("vmlinux")
//!     .snapshot(SnapshotPlan {
//!         path: "booted.snap".into(),
//!         trigger: SnapshotTrigger::GuestRequest,
//!         then: AfterSnapshot::Stop,
//!         key: String::new(),
//!     })
//!     .build()?
//!     .run()?;
//! // Each test: a copy-on-write restore that knows it is restore #1.
//! let outcome = Vm::restore(
//!     "booted.snap",
//!     RestoreOptions { generation: 1, input: b"per-test command".to_vec(), ..Default::default() },
//! )?
//! .run()?;
//! # drop(outcome); Ok(()) }
//! ```

mod arch;
pub mod compat;
pub mod config;
pub mod devices;
pub mod error;
mod kvm;
pub mod layout;
pub mod loader;
pub mod outcome;
mod platform;
pub mod profile;
pub mod snapshot;
pub mod topology;
mod vcpu;
mod vm;

pub use config::{DEFAULT_CMDLINE, GuestImage, VmBuilder, VmConfig};
pub use devices::bus::{DeviceMismatchError, DeviceStateError, IoAction, IoDevice, IoSpace};
pub use devices::virtio::console::{
    ConsoleHost, ConsoleSender, ConsoleStats, PORT_BULK, PORT_CONSOLE, console as virtio_console,
};
pub use error::{
    CmdlineError, ConfigError, HostError, ImageError, MemoryError, Result, RunError, SetupError,
    VcpuCpuidError, VmmError,
};
pub use outcome::{ExitKind, Outcome, ShimUse, Timings};
pub use snapshot::{
    AfterSnapshot, RestoreOptions, SnapshotError, SnapshotInfo, SnapshotPlan, SnapshotTrigger,
    VcpuReadError,
};
pub use vcpu::panic_shim::{current_vcpu, install as install_panic_shim};
pub use vcpu::state::InterruptHandle;
pub use vm::{Vm, build_cmdline};
