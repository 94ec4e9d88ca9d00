//! Every `#[ktstr_test]` registers itself in [`KTSTR_TESTS`]; [`test_main`]
//! runs them through `ktstr_testenv`'s runner, which checks each test's
//! prerequisites first: without a kernel, QEMU or KVM, or the scheduler, the
//! test is reported ignored by name (outside CI) instead of failing.
//!
//! Opting in, in the test target's `Cargo.toml` and file:
//!
//! ```toml
//! [[test]]
//! name = "schedulers"
//! harness = false
//! ```
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     ktstr_harness::test::test_main()
//! }
//! ```

use std::process::ExitCode;

use ktstr_backend::BackendKind;
use ktstr_testenv::{Missing, Need, Test};

use super::KtstrTest;

/// One registered test.
pub struct Registered {
    /// `module_path!()` and the test fn: `<crate>::gauntlet_steady::t1n1l2c1t`.
    pub path: &'static str,
    /// The declaration.
    pub test: KtstrTest,
}

/// All `#[ktstr_test]`s linked into this binary (gauntlet members too).
#[linkme::distributed_slice]
pub static KTSTR_TESTS: [Registered];

impl Registered {
    /// The name libtest gives the generated `#[test]`: the path without the crate.
    pub fn libtest_name(&self) -> &'static str {
        self.path
            .split_once("::")
            .map_or(self.path, |(_, rest)| rest)
    }
}

fn unknown_backend() -> Result<(), Missing> {
    ktstr_backend::choose()
        .map(drop)
        .map_err(|e| Missing::new("a usable KTSTR_BACKEND", e.to_string()))
}

/// What the backend `ktstr_backend::choose` picks needs on this host.
pub fn backend_needs() -> Vec<Need> {
    let software_module = ktstr_backend::host_kvm().software_module();
    match ktstr_backend::choose().map(|c| c.kind) {
        // The guest init is user space: ktstr-vmm needs hardware KVM semantics.
        Ok(BackendKind::Vmm) => vec![Need::HardwareKvm { software_module }],
        Ok(BackendKind::QemuTcg) => vec![Need::Qemu],
        Ok(BackendKind::QemuKvm) => vec![Need::Qemu, Need::Kvm],
        Err(_) => vec![Need::Probe(unknown_backend)],
    }
}

/// What running `t` needs here: the kernel, its scheduler, the programs it
/// packs, what the
/// backend `ktstr_backend::choose` picks needs, and for a gauntlet member
/// on a full-tier preset, the full run ([`super::gauntlet`]).
pub fn needs(t: &KtstrTest) -> Vec<Need> {
    let mut needs = vec![Need::Kernel];
    needs.extend(t.scheduler.map(Need::Scheduler));
    needs.extend(t.programs.iter().map(|p| Need::GuestProgram(p)));
    needs.extend(super::gauntlet::tier_need(t));
    needs.extend(backend_needs());
    needs
}

/// Runs the registered tests as libtest would (`--list`, filters,
/// `--include-ignored`, `--test-threads` work), each with its [`needs`].
pub fn test_main() -> ExitCode {
    test_main_with(Vec::new())
}

/// [`test_main`] plus hand-written `extra` tests (e.g. ones that call
/// [`super::try_run`] and assert on a failing verdict).
pub fn test_main_with(extra: Vec<Test>) -> ExitCode {
    let mut registered: Vec<&'static Registered> = KTSTR_TESTS.iter().collect();
    registered.sort_by_key(|r| r.path);
    let tests = registered
        .into_iter()
        .map(|r| {
            Test::new(r.libtest_name(), &needs(&r.test), move || {
                super::run(&r.test)
            })
        })
        .chain(extra)
        .collect();
    ktstr_testenv::run(tests)
}
