//! L1's initramfs: static busybox, the KVM modules, the `/init` script, the
//! test binaries with their loader and libraries, the L2 kernel and the
//! schedulers.

use std::path::{Path, PathBuf};

use ktstr_initramfs::Archive;

use crate::error::Error;
use crate::init_script::{self, L2_KERNEL, SCHEDULERS, Step};
use crate::l1_kernel::L1Kernel;
use crate::suite::Built;

/// What goes into L1 besides its kernel's modules.
pub struct Contents<'a> {
    /// Static busybox (`ktstr_testenv::find_busybox`).
    pub busybox: &'a Path,
    /// The kernel the tests boot in L2.
    pub l2_kernel: &'a Path,
    /// Scheduler binaries, placed in [`SCHEDULERS`] under their file names.
    pub schedulers: &'a [PathBuf],
    /// The test binaries, run in this order.
    pub suites: &'a [Built],
}

/// Builds the archive.
pub fn build(kernel: &L1Kernel, contents: &Contents<'_>) -> Result<Archive, Error> {
    let mut a = Archive::new();
    a.add_host_file("bin/busybox", 0o755, contents.busybox)?;
    for dir in ["proc", "sys", "dev", "tmp"] {
        a.add_dir(dir, 0o755)?;
    }
    a.add_char_dev("dev/console", 0o600, 5, 1)?;
    for (name, ko) in &kernel.modules {
        a.add_host_file(&format!("lib/modules/{name}.ko"), 0o644, ko)?;
    }
    a.add_host_file(L2_KERNEL, 0o644, contents.l2_kernel)?;
    for s in contents.schedulers {
        let name = s
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("scheduler");
        a.add_elf_with_libs(&format!("{SCHEDULERS}/{name}"), s)?;
    }
    let paths: Vec<String> = contents
        .suites
        .iter()
        .enumerate()
        .map(|(i, b)| format!("/nested/tests/{i}-{}", b.suite.test))
        .collect();
    for (b, path) in contents.suites.iter().zip(&paths) {
        a.add_elf_with_libs(path, &b.executable)?;
        let tmp = b.target_tmpdir();
        if let Some(tmp) = tmp.as_deref().and_then(Path::to_str) {
            if a.get(tmp).is_none() {
                a.add_dir(tmp, 0o1777)?;
            }
        }
    }
    let names: Vec<String> = contents.suites.iter().map(|b| b.suite.name()).collect();
    let steps: Vec<Step<'_>> = contents
        .suites
        .iter()
        .zip(&paths)
        .zip(&names)
        .map(|((b, path), name)| Step {
            name,
            path,
            args: &b.suite.args,
        })
        .collect();
    let modules: Vec<&str> = kernel.modules.iter().map(|(n, _)| *n).collect();
    a.add_file(
        "init",
        0o755,
        init_script::render(&modules, &steps).into_bytes(),
    )?;
    Ok(a)
}
