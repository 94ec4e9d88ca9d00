//! The test environment of ktstr, found one way: whether this is CI, which
//! kernel, where QEMU, busybox and the sched_ext schedulers are, and how many
//! VMs may run at once on this machine.
//!
//! Test files that need more than pure logic use [`run`] as their `main`
//! (`harness = false`): each [`Test`] names what it [`Need`]s, and a test
//! whose prerequisite is missing is reported *ignored* by name, with a line
//! saying what is missing and how to get it. Under `CI=true` nothing is
//! ignored for a missing prerequisite: the test runs and fails naming it.

pub mod cache;
mod ci;
mod kernel;
mod need;
mod runner;
mod slots;
mod tools;

pub use cache::{CachedKernel, KernelInfo, cache_root, cached_kernels, kernels_dir, newest_kernel};
pub use ci::in_ci;
pub use kernel::{FROM_CHECKOUT, KERNEL_BUILD_COMMAND, Missing, SCHED_BUILD_COMMAND, find_kernel};
pub use need::{FULL_GAUNTLET, Need};
pub use runner::{Test, TestOutcome, run};
pub use slots::{VmSlot, max_vms, vm_slot};
pub use tools::{
    BUSYBOX, PROGRAM_PACKAGES, find_busybox, find_guest_program, find_program, find_qemu,
    find_scheduler,
};

/// What a kernel-tier test body gets: the prerequisites the runner checked.
pub struct TestEnv {
    /// The kernel image ([`find_kernel`]).
    pub kernel: std::path::PathBuf,
}

/// The environment of a test whose [`Need::Kernel`] the runner checked.
///
/// # Panics
/// When the kernel is missing: only possible when the body runs without the
/// runner's check (`--include-ignored`), and then the test fails naming it.
pub fn test_env() -> TestEnv {
    match find_kernel() {
        Ok(kernel) => TestEnv { kernel },
        Err(missing) => panic!("{missing}"),
    }
}
