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

/// What building the kernel needs.
pub const KERNEL_BUILD: &[Package] = &[
    Package {
        name: "make",
        provides: "/usr/bin/make",
    },
    Package {
        name: "gcc",
        provides: "/usr/bin/gcc",
    },
    Package {
        name: "bc",
        provides: "/usr/bin/bc",
    },
    Package {
        name: "flex",
        provides: "/usr/bin/flex",
    },
    Package {
        name: "bison",
        provides: "/usr/bin/bison",
    },
    Package {
        name: "dwarves",
        provides: "/usr/bin/pahole",
    },
    Package {
        name: "libelf-dev",
        provides: "/usr/include/libelf.h",
    },
    Package {
        name: "libssl-dev",
        provides: "/usr/include/openssl/ssl.h",
    },
    Package {
        name: "binutils",
        provides: "/usr/bin/objcopy",
    },
    Package {
        name: "xz-utils",
        provides: "/usr/bin/xz",
    },
    Package {
        name: "python3",
        provides: "/usr/bin/python3",
    },
];

/// Debian's kernel source (the default `--source`).
pub const LINUX_SOURCE: Package = Package {
    name: "linux-source-6.12",
    provides: "/usr/src/linux-source-6.12.tar.xz",
};

/// The clang that compiles the schedulers' BPF.
pub const CLANG: &str = "clang-19";

/// What building the schedulers (statically linked) needs.
pub const SCHED_BUILD: &[Package] = &[
    Package {
        name: "clang-19",
        provides: "/usr/bin/clang-19",
    },
    Package {
        name: "llvm-19",
        provides: "/usr/bin/llvm-strip-19",
    },
    Package {
        name: "libelf-dev",
        provides: "/usr/lib/x86_64-linux-gnu/libelf.a",
    },
    Package {
        name: "zlib1g-dev",
        provides: "/usr/lib/x86_64-linux-gnu/libz.a",
    },
    Package {
        name: "libzstd-dev",
        provides: "/usr/lib/x86_64-linux-gnu/libzstd.a",
    },
    Package {
        name: "make",
        provides: "/usr/bin/make",
    },
    Package {
        name: "gcc",
        provides: "/usr/bin/gcc",
    },
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
