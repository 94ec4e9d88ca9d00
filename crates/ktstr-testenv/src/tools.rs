//! QEMU, busybox, schedulers and other programs, each found one way.

use std::path::{Path, PathBuf};

use crate::kernel::Missing;

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
/// then `PATH`.
pub fn find_scheduler(name: &str) -> Result<PathBuf, Missing> {
    let how = "set KTSTR_SCHEDULERS to a directory holding it, or put it on PATH";
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Missing::new(format!("scheduler {name}"), how))
        };
    }
    std::env::var_os("KTSTR_SCHEDULERS")
        .into_iter()
        .chain(std::env::var_os("PATH"))
        .flat_map(|v| std::env::split_paths(&v).collect::<Vec<_>>())
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
}
