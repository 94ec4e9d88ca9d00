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
    /// How many times L1 runs the whole list (1 for the tier; more to
    /// measure how often something intermittent happens).
    pub repeat: usize,
}

/// Builds the archive.
pub fn build(kernel: &L1Kernel, contents: &Contents<'_>) -> Result<Archive, Error> {
    let mut a = base(kernel, contents.busybox, contents.l2_kernel)?;
    for s in contents.schedulers {
        let name = s
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("scheduler");
        a.add_elf_with_libs(&format!("{SCHEDULERS}/{name}"), s)?;
    }
    let paths = add_suites(&mut a, contents.suites)?;
    let names: Vec<String> = contents.suites.iter().map(|b| b.suite.name()).collect();
    let once = contents.suites.iter().zip(&paths).zip(&names);
    let steps: Vec<Step<'_>> = (0..contents.repeat.max(1))
        .flat_map(|_| once.clone())
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

/// What every L1 has: busybox, the mount points, the console, `kernel`'s
/// modules and the L2 kernel at [`L2_KERNEL`].
pub fn base(kernel: &L1Kernel, busybox: &Path, l2_kernel: &Path) -> Result<Archive, Error> {
    let mut a = Archive::new();
    a.add_host_file("bin/busybox", 0o755, busybox)?;
    for dir in ["proc", "sys", "dev", "tmp"] {
        a.add_dir(dir, 0o755)?;
    }
    a.add_char_dev("dev/console", 0o600, 5, 1)?;
    for (name, ko) in &kernel.modules {
        a.add_host_file(&format!("lib/modules/{name}.ko"), 0o644, ko)?;
    }
    a.add_host_file(L2_KERNEL, 0o644, l2_kernel)?;
    Ok(a)
}

/// Adds the test binaries (with their libraries and the `CARGO_TARGET_TMPDIR`
/// they write to) and returns their paths in L1, in order.
pub fn add_suites(a: &mut Archive, suites: &[Built]) -> Result<Vec<String>, Error> {
    let paths: Vec<String> = suites
        .iter()
        .enumerate()
        .map(|(i, b)| format!("/nested/tests/{i}-{}", b.suite.test))
        .collect();
    for (b, path) in suites.iter().zip(&paths) {
        a.add_elf_with_libs(path, &b.executable)?;
        let tmp = b.target_tmpdir();
        if let Some(tmp) = tmp.as_deref().and_then(Path::to_str) {
            if a.get(tmp).is_none() {
                a.add_dir(tmp, 0o1777)?;
            }
        }
    }
    Ok(paths)
}

/// Writes `archive` to a temporary cpio file (removed when the returned path
/// drops) and gives its size in MiB.
pub fn write_temp(archive: &Archive) -> Result<(tempfile::TempPath, u64), Error> {
    let cpio = tempfile::Builder::new()
        .prefix("ktstr-nested-")
        .suffix(".cpio")
        .tempfile()
        .map_err(|e| Error::io("create", std::env::temp_dir(), e))?
        .into_temp_path();
    archive.write_to(&cpio)?;
    let mib = std::fs::metadata(&cpio).map_or(0, |m| m.len() >> 20);
    Ok((cpio, mib))
}
