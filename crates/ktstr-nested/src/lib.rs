//! The hardware-KVM test tier. On a host whose `/dev/kvm` is software KVM
//! (kvm-pvm: guest user space cannot run), KVM with hardware semantics comes
//! from nesting: QEMU TCG with `-cpu max` emulates AMD SVM with nested
//! paging, so a Debian kernel booted there (L1) loads kvm-amd and ktstr-vmm
//! runs real guests (L2) inside it.
//!
//! The steps, each its own module: [`l1_kernel`] fetches and caches L1's
//! kernel package, [`l1_qemu`] the QEMU it runs under; [`suite`] builds the chosen test binaries;
//! [`l1_initramfs`] packs them with busybox, the modules, the L2 kernel and
//! the schedulers under an [`init_script`]; [`l1_boot`] boots L1 and streams
//! its console while [`watchdog`] checks that L1 still makes progress;
//! [`summary`] reads the console into per-binary results and the tier's
//! verdict. The `ktstr-nested` binary runs them in order.

#![warn(missing_docs)]

mod deb;
pub mod error;
pub mod figures;
mod host_command;
pub mod init_script;
pub mod l1_boot;
pub mod l1_initramfs;
pub mod l1_kernel;
pub mod l1_qemu;
pub mod markers;
pub mod suite;
pub mod summary;
pub mod watchdog;

pub use error::Error;
