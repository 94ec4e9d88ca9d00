//! QEMU, busybox, schedulers and other programs, each found one way.

use std::path::{Path, PathBuf};

use crate::cache::newest_kernel;
use crate::kernel::{FROM_CHECKOUT, Missing, SCHED_BUILD_COMMAND};

/// Debian's `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";

/// `name` in a directory of `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
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
