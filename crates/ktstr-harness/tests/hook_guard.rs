//! The `.init_array` hook is armed only by `KTSTR_INIT=1`: this test binary
//! run as PID 1 of a fresh PID namespace (as in a container) without it
//! must run its normal `main` (libtest), not the guest init.

use std::process::Command;

use ktstr_testenv::{Missing, Need};

/// `unshare --pid` works here (an unprivileged container cannot).
fn pid_namespaces() -> Result<(), Missing> {
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "true"])
        .output()
        .map_err(|e| Missing::new("unshare", format!("install util-linux ({e})")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Missing::new(
            "the privilege to create PID namespaces",
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

fn pid1_without_ktstr_init_runs_main() {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(&exe)
        .args(["--list", "--format", "terse"])
        .env_remove("KTSTR_INIT")
        .output()
        .expect("run unshare");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("pid1_without_ktstr_init_runs_main: test"),
        "libtest did not run as PID 1:\n{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("ktstr-init"), "{stderr}");
}

unsafe extern "C" {
    // Bounds of the loaded `.init_array`, defined by the linker script.
    static __init_array_start: [usize; 0];
    static __init_array_end: [usize; 0];
}

fn the_hook_is_in_the_loaded_init_array() {
    // `PID1_HOOK` is a `#[used]` static in an rlib dependency: unless the
    // linker kept it, the C runtime would never call it and no guest could
    // start. Look for its function pointer among the relocated entries.
    let hook = ktstr_guest::init::PID1_HOOK as usize;
    // Only the addresses are taken: the linker defines both symbols around
    // the array of pointer-sized entries.
    let start = std::ptr::addr_of!(__init_array_start).cast::<usize>();
    let end = std::ptr::addr_of!(__init_array_end).cast::<usize>();
    let len = (end as usize - start as usize) / size_of::<usize>();
    // SAFETY: [start, end) is the loaded, initialised `.init_array`.
    let entries = unsafe { std::slice::from_raw_parts(start, len) };
    assert!(
        entries.contains(&hook),
        "hook {hook:#x} not in .init_array {entries:x?}"
    );
    assert!(!ktstr_guest::init::should_run_as_init());
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[Need::Probe(pid_namespaces)]; pid1_without_ktstr_init_runs_main],
        ktstr_testenv::tests![&[]; the_hook_is_in_the_loaded_init_array],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
