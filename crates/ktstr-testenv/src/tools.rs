//! QEMU, busybox, schedulers and other programs, each found one way.

use std::path::{Path, PathBuf};

use crate::cache::newest_kernel;
use crate::kernel::{FROM_CHECKOUT, Missing, SCHED_BUILD_COMMAND};

/// Debian's `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";

/// The executable `name` in a directory of `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    which::which(name).ok()
}

/// Debian packages of programs tests commonly run in the guest, so a
/// missing one is named with its package.
pub const PROGRAM_PACKAGES: &[(&str, &str)] = &[
    ("stress-ng", "stress-ng"),
    ("cyclictest", "rt-tests"),
    ("hackbench", "rt-tests"),
    ("perf", "linux-perf"),
    ("fio", "fio"),
    ("sysbench", "sysbench"),
];

/// A host program a test packs into its guest: a path as is, a bare name
/// on `PATH`. Missing, it says which Debian package installs it.
pub fn find_guest_program(name: &str) -> Result<PathBuf, Missing> {
    let found = if name.contains('/') {
        Some(PathBuf::from(name)).filter(|p| p.is_file())
    } else {
        find_program(name)
    };
    found.ok_or_else(|| {
        let how = match PROGRAM_PACKAGES.iter().find(|(p, _)| *p == name) {
            Some((_, package)) => format!("install Debian package {package} (apt-get install {package})"),
            None if name.contains('/') => "give the path of an existing program".to_owned(),
            None => format!(
                "install the package that provides it (on Debian `apt-file search bin/{name}` names it), or give its path"
            ),
        };
        Missing::new(format!("program {name}"), how)
    })
}

/// `qemu-system-x86_64` on `PATH`.
pub fn find_qemu() -> Result<PathBuf, Missing> {
    find_program("qemu-system-x86_64").ok_or_else(|| {
        Missing::new(
            "qemu-system-x86_64",
            "install QEMU (Debian package qemu-system-x86)",
        )
    })
}

/// The static busybox the guests' `/init` runs ([`BUSYBOX`]).
pub fn find_busybox() -> Result<PathBuf, Missing> {
    let p = Path::new(BUSYBOX);
    if p.is_file() {
        Ok(p.to_owned())
    } else {
        Err(Missing::new(
            format!("a static busybox at {BUSYBOX}"),
            "install Debian package busybox-static",
        ))
    }
}

/// A scheduler binary: a path as is; a bare name from `KTSTR_SCHEDULERS`,
/// then the newest cached kernel's schedulers ([`crate::cache`]), then `PATH`.
pub fn find_scheduler(name: &str) -> Result<PathBuf, Missing> {
    let how = if name.contains('/') {
        "give the path of an existing scheduler binary".to_owned()
    } else {
        format!(
            "run `{SCHED_BUILD_COMMAND} {name}` (in a checkout: `{FROM_CHECKOUT} sched build {name}`), \
             or set KTSTR_SCHEDULERS to a directory holding it"
        )
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Missing::new(format!("scheduler {name}"), how))
        };
    }
    let split = |v: std::ffi::OsString| std::env::split_paths(&v).collect::<Vec<_>>();
    std::env::var_os("KTSTR_SCHEDULERS")
        .into_iter()
        .flat_map(split)
        .chain(newest_kernel().map(|k| k.schedulers_dir()))
        .chain(std::env::var_os("PATH").into_iter().flat_map(split))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| Missing::new(format!("scheduler {name}"), how))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_guest_program_says_how_to_install_it() {
        let e = find_guest_program("stress-ng-no-such").expect_err("missing");
        assert!(
            e.to_string()
                .contains("apt-file search bin/stress-ng-no-such"),
            "{e}"
        );
        assert!(find_guest_program("/nonexistent/x").is_err());
        assert_eq!(
            find_guest_program("/bin/sh").ok(),
            Some(PathBuf::from("/bin/sh"))
        );
        // Known names carry their package (whether or not installed here).
        if let Err(e) = find_guest_program("cyclictest") {
            assert!(e.to_string().contains("rt-tests"), "{e}");
        }
    }

    #[test]
    fn a_missing_scheduler_path_is_named() {
        let e = find_scheduler("/nonexistent/scx_x").expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/scx_x"), "{e}");
    }

    #[test]
    fn a_missing_scheduler_name_says_which_command_builds_it() {
        let e = find_scheduler("scx_no_such_scheduler").expect_err("missing");
        assert!(
            e.to_string()
                .contains("ktstr sched build scx_no_such_scheduler"),
            "{e}"
        );
    }
}
