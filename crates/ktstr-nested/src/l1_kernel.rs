//! L1's kernel: a Debian kernel package fetched by name and cached, with the
//! four modules that give KVM on emulated AMD SVM, decompressed for busybox
//! `insmod`.
//!
//! Cache layout under `<cache>/<package>/`: `unpacked/` (from `dpkg-deb -x`;
//! renamed into place only when complete, so an interrupted run re-fetches)
//! and `modules/<name>.ko`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::deb::{self, find_file};
use crate::error::Error;
use crate::host_command::run;

/// The Debian kernel L1 boots: modular, with kvm-amd, and new enough for
/// TCG's SVM (measured in issue 12).
pub const DEFAULT_PACKAGE: &str = "linux-image-6.12.117+deb12-amd64-unsigned";

/// The modules L1 loads, in dependency order (`modinfo -F depends`):
/// kvm-amd needs kvm and ccp; kvm needs irqbypass.
pub const MODULES: [&str; 4] = ["irqbypass", "ccp", "kvm", "kvm-amd"];

/// A fetched, unpacked L1 kernel.
#[derive(Clone, Debug)]
pub struct L1Kernel {
    /// The bzImage (`boot/vmlinuz-*`).
    pub vmlinuz: PathBuf,
    /// `(name, decompressed .ko)` in [`MODULES`] order.
    pub modules: Vec<(&'static str, PathBuf)>,
}

/// Where `package` is cached: `<ktstr cache>/nested/<package>`.
pub fn package_dir(package: &str) -> Option<PathBuf> {
    ktstr_testenv::cache_root().map(|d| d.join("nested").join(package))
}

/// The cached kernel of `package` in `dir`, fetching and unpacking it first
/// when the cache lacks it. `progress` gets one line per phase that runs.
pub fn fetch(package: &str, dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<L1Kernel, Error> {
    let unpacked = dir.join("unpacked");
    if !unpacked.is_dir() {
        let deb = download(package, dir, progress)?;
        progress(&format!("unpack {}", deb.display()));
        deb::unpack(&[deb], &unpacked)?;
    }
    let missing = |what: &str, dir: &Path| Error::PackageContent {
        package: package.to_owned(),
        what: what.to_owned(),
        dir: dir.to_owned(),
    };
    let boot = unpacked.join("boot");
    let vmlinuz = find_file(&boot, &|n| n.starts_with("vmlinuz-"))
        .ok_or_else(|| missing("boot/vmlinuz-*", &boot))?;
    let tree = unpacked.join("lib").join("modules");
    let ko_dir = dir.join("modules");
    std::fs::create_dir_all(&ko_dir).map_err(|e| Error::io("create", &ko_dir, e))?;
    let mut modules = Vec::new();
    for name in MODULES {
        let ko = ko_dir.join(format!("{name}.ko"));
        if !ko.is_file() {
            let file = format!("{name}.ko.xz");
            let xz = find_file(&tree, &|n| n == file).ok_or_else(|| missing(&file, &tree))?;
            let out = run(
                "decompress an L1 kernel module",
                Command::new("xz").arg("-dc").arg(&xz),
            )?;
            std::fs::write(&ko, out.stdout).map_err(|e| Error::io("write", &ko, e))?;
        }
        modules.push((name, ko));
    }
    Ok(L1Kernel { vmlinuz, modules })
}

/// `apt-get download` into `dir` (refreshing the package lists once if the
/// package is unknown); the `.deb` it wrote.
fn download(package: &str, dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
    let is_deb = |n: &str| n.ends_with(".deb");
    if let Some(deb) = find_file(dir, &is_deb) {
        return Ok(deb);
    }
    progress(&format!("download {package} (apt-get download)"));
    let get = || {
        run(
            "download the L1 kernel package",
            Command::new("apt-get")
                .args(["download", "-q", package])
                .current_dir(dir),
        )
    };
    if get().is_err() {
        progress("apt-get update (the package lists may be stale)");
        run(
            "refresh the package lists",
            Command::new("apt-get").args(["update", "-q"]),
        )?;
        get()?;
    }
    find_file(dir, &is_deb).ok_or_else(|| Error::PackageContent {
        package: package.to_owned(),
        what: "a .deb after apt-get download".to_owned(),
        dir: dir.to_owned(),
    })
}
