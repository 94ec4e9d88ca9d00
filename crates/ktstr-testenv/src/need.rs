//! What a test needs from the machine, and the check for each.

use std::path::Path;

use crate::kernel::{Missing, find_kernel};
use crate::tools::{find_busybox, find_guest_program, find_program, find_qemu, find_scheduler};

/// One prerequisite of a [`crate::Test`].
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// `/dev/kvm` exists (any KVM, software or hardware).
    Kvm,
    /// KVM with hardware semantics (guest user space runs). The caller
    /// passes its probe's answer (`ktstr_vmm::compat::detect_host`): the
    /// software KVM module it found, if any. On software KVM the test stays
    /// ignored even under CI: that host cannot run it at all.
    HardwareKvm {
        /// The software KVM module loaded (e.g. `kvm_pvm`), or `None`.
        software_module: Option<&'static str>,
    },
    /// Software KVM (e.g. kvm-pvm), for tests of what only happens there.
    /// The caller passes its probe's answer, as for [`Need::HardwareKvm`];
    /// on hardware KVM the test stays ignored even under CI.
    SoftwareKvm {
        /// The software KVM module loaded (e.g. `kvm_pvm`), or `None`.
        software_module: Option<&'static str>,
    },
    /// The test kernel ([`find_kernel`]).
    Kernel,
    /// `qemu-system-x86_64`.
    Qemu,
    /// Static busybox.
    Busybox,
    /// A sched_ext scheduler, by name or path ([`find_scheduler`]).
    Scheduler(&'static str),
    /// A program on `PATH`, with the package that provides it.
    Program {
        /// Its name.
        name: &'static str,
        /// The Debian package that installs it.
        package: &'static str,
    },
    /// A host program a test packs into its guest, by name or path
    /// ([`find_guest_program`]; a missing one names its Debian package).
    GuestProgram(&'static str),
    /// Effective user id 0.
    Root,
    /// An environment variable that opts into a slow test (CI sets it).
    OptIn {
        /// The variable.
        var: &'static str,
        /// Why the test waits for it.
        why: &'static str,
    },
    /// A member of a larger run than CI's (e.g. the full gauntlet): runs
    /// only when `var` is set, and stays ignored without it even under CI,
    /// which runs the smaller set on purpose.
    LargerRun {
        /// The variable that selects the larger run.
        var: &'static str,
        /// Its value that does.
        value: &'static str,
        /// What the larger run is.
        what: &'static str,
    },
    /// Anything else, checked by the test file's own probe.
    Probe(fn() -> Result<(), Missing>),
}

/// The full gauntlet: every topology preset, not only CI's subset
/// (`KTSTR_GAUNTLET=full`).
pub const FULL_GAUNTLET: Need = Need::LargerRun {
    var: "KTSTR_GAUNTLET",
    value: "full",
    what: "the full gauntlet (every topology preset)",
};

impl Need {
    /// `Ok` when the prerequisite is there, else what is missing.
    pub fn check(&self) -> Result<(), Missing> {
        match *self {
            Need::Kvm => {
                if Path::new("/dev/kvm").exists() {
                    Ok(())
                } else {
                    Err(Missing::new(
                        "/dev/kvm",
                        "load kvm_intel or kvm_amd (or run on a KVM host)",
                    ))
                }
            }
            Need::HardwareKvm { software_module } => {
                Need::Kvm.check()?;
                match software_module {
                    None => Ok(()),
                    Some(module) => Err(Missing::new(
                        format!("KVM with hardware semantics (/dev/kvm is software KVM, {module})"),
                        "run on a host with hardware KVM (or nested KVM inside QEMU)",
                    )),
                }
            }
            Need::SoftwareKvm { software_module } => {
                Need::Kvm.check()?;
                match software_module {
                    Some(_) => Ok(()),
                    None => Err(Missing::new(
                        "software KVM (/dev/kvm is hardware KVM)",
                        "this checks behaviour only software KVM such as kvm-pvm has",
                    )),
                }
            }
            Need::Kernel => find_kernel().map(drop),
            Need::Qemu => find_qemu().map(drop),
            Need::Busybox => find_busybox().map(drop),
            Need::Scheduler(name) => find_scheduler(name).map(drop),
            Need::Program { name, package } => find_program(name)
                .map(drop)
                .ok_or_else(|| Missing::new(name, format!("install Debian package {package}"))),
            Need::GuestProgram(name) => find_guest_program(name).map(drop),
            Need::Root => {
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } == 0 {
                    Ok(())
                } else {
                    Err(Missing::new("root", "run the tests as root"))
                }
            }
            Need::OptIn { var, why } => {
                if std::env::var_os(var).is_some() {
                    Ok(())
                } else {
                    Err(Missing::new(
                        format!("{var} (opt-in)"),
                        format!("set {var}=1: {why}"),
                    ))
                }
            }
            Need::LargerRun { var, value, what } => {
                if std::env::var(var).is_ok_and(|v| v == value) {
                    Ok(())
                } else {
                    Err(Missing::new(
                        format!("{var}={value} ({what})"),
                        format!("set {var}={value} to run {what}; CI runs the smaller set"),
                    ))
                }
            }
            Need::Probe(probe) => probe(),
        }
    }

    /// Whether this host's KVM is of the wrong kind: nothing to install or
    /// set changes that, so the test stays ignored even under CI. A
    /// [`Need::LargerRun`] member CI leaves out on purpose stays ignored too.
    pub(crate) fn stays_ignored_under_ci(&self) -> bool {
        matches!(
            self,
            Need::HardwareKvm {
                software_module: Some(_)
            } | Need::LargerRun { .. }
        )
    }
}
