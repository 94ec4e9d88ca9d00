//! Debian packages a build needs, installed through apt when missing (and
//! said so), or named in the error when this is not root.

use std::path::Path;
use std::process::Command;

use super::BuildError;
use super::tool::Log;
use crate::progress::Progress;

/// A package and how to tell it is installed: a file it provides.
pub struct Package {
    /// The Debian package.
    pub name: &'static str,
    /// A file that exists once it is installed.
    pub provides: &'static str,
}

const fn pkg(name: &'static str, provides: &'static str) -> Package {
    Package { name, provides }
}

/// What building the kernel needs.
pub const KERNEL_BUILD: &[Package] = &[
    pkg("make", "/usr/bin/make"),
    pkg("gcc", "/usr/bin/gcc"),
    pkg("bc", "/usr/bin/bc"),
    pkg("flex", "/usr/bin/flex"),
    pkg("bison", "/usr/bin/bison"),
    pkg("dwarves", "/usr/bin/pahole"),
    pkg("libelf-dev", "/usr/include/libelf.h"),
    pkg("libssl-dev", "/usr/include/openssl/ssl.h"),
    pkg("binutils", "/usr/bin/objcopy"),
    pkg("xz-utils", "/usr/bin/xz"),
];

/// Debian's kernel source (the default `--source`).
pub const LINUX_SOURCE: Package = pkg("linux-source-6.12", "/usr/src/linux-source-6.12.tar.xz");

/// The clang that compiles the schedulers' BPF.
pub const CLANG: &str = "clang-19";

/// What building the schedulers (statically linked) needs.
pub const SCHED_BUILD: &[Package] = &[
    pkg("clang-19", "/usr/bin/clang-19"),
    pkg("llvm-19", "/usr/bin/llvm-strip-19"),
    pkg("libelf-dev", "/usr/lib/x86_64-linux-gnu/libelf.a"),
    pkg("zlib1g-dev", "/usr/lib/x86_64-linux-gnu/libz.a"),
    pkg("libzstd-dev", "/usr/lib/x86_64-linux-gnu/libzstd.a"),
    pkg("make", "/usr/bin/make"),
    pkg("gcc", "/usr/bin/gcc"),
];

/// Installs whichever of `packages` is missing.
pub fn ensure(packages: &[Package], log: &Log, progress: &Progress) -> Result<(), BuildError> {
    let mut missing: Vec<&str> = packages
        .iter()
        .filter(|p| !Path::new(p.provides).exists())
        .map(|p| p.name)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BuildError::NeedPackages { packages: list });
    }
    progress.phase(&format!("installing {list} through apt-get"));
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.env("DEBIAN_FRONTEND", "noninteractive").args(args);
        c
    };
    // A stale package list is the usual reason an install cannot find a
    // package; refresh it once first.
    log.run("apt-get update", &mut apt(&["update", "-q"]))?;
    log.run(
        &format!("apt-get install {list}"),
        apt(&["install", "-y", "-q", "--no-install-recommends"]).args(&missing),
    )
}
