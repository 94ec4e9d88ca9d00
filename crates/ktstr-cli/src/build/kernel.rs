//! `ktstr kernel build`: configure a Linux >= 6.12 tree with the project's
//! fragments (kernel/ktstr.kconfig, optionally kernel/slow-kvm.kconfig),
//! build it with all CPUs, and cache the result.
//!
//! Invariants: the cache key covers the source version (and git commit) and
//! the resolved `.config`, so an entry is never stale; an entry appears by
//! one `rename` of a fully written staging directory, so an interrupted or
//! failed build (a full disk included) never leaves a half-written kernel
//! under its key; a git tree with uncommitted changes is built but not cached.

use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr_testenv::cache::{INFO_FILE, KERNEL_FILE, STAGING_PREFIX};
use ktstr_testenv::{CachedKernel, KernelInfo};
use sha2::{Digest, Sha256};

use super::apt::{self, LINUX_SOURCE};
use super::tool::Log;
use super::{BuildError, cache_root, now_unix};
use crate::progress::Progress;

/// The project's fragment, embedded so an installed `ktstr` needs no checkout.
const KTSTR_KCONFIG: &str = include_str!("../../../../kernel/ktstr.kconfig");
/// The software-KVM overlay.
const SLOW_KVM_KCONFIG: &str = include_str!("../../../../kernel/slow-kvm.kconfig");
/// Kbuild steps of a full build of this config, until a build has measured it
/// (2252 objects plus links and generated files, Linux 6.12).
const DEFAULT_STEPS: u64 = 2700;
/// The oldest Linux with sched_ext.
const MIN_VERSION: (u32, u32) = (6, 12);

/// What to build.
pub struct Request {
    /// The tree; `None`: Debian's linux-source-6.12, unpacked into the cache.
    pub source: Option<PathBuf>,
    /// Add the software-KVM overlay.
    pub slow_kvm: bool,
    /// Parallel make jobs.
    pub jobs: usize,
}

/// What a build produced.
pub enum Outcome {
    /// This source and config were cached already; nothing was built.
    AlreadyCached(CachedKernel),
    /// Built and cached.
    Cached(CachedKernel),
    /// Built from a tree with uncommitted changes, so not cached.
    Uncached {
        /// The built kernel, in the tree.
        vmlinux: PathBuf,
    },
}

/// Builds (or finds cached) the kernel `req` describes.
pub fn build(req: &Request, progress: &Progress) -> Result<Outcome, BuildError> {
    let root = cache_root()?;
    let log = Log::create(&root.join("logs").join("kernel-build.log"))?;
    // A bad --source is reported before anything is installed.
    let given = req.source.as_deref().map(kernel_tree).transpose()?;
    apt::ensure(apt::KERNEL_BUILD, &log, progress)?;
    let src = match given {
        Some(dir) => dir,
        None => debian_source(&root, &log, progress)?,
    };
    let version = log.output(
        "make kernelversion",
        make(&src).args(["-s", "kernelversion"]),
    )?;
    if parse_version(&version).is_none_or(|v| v < MIN_VERSION) {
        return Err(BuildError::TooOld { path: src, version });
    }
    progress.phase(&format!("configuring Linux {version} in {}", src.display()));
    configure(&src, &root, req.slow_kvm, &log)?;
    let config_path = src.join(".config");
    let config = std::fs::read_to_string(&config_path)
        .map_err(BuildError::io(format!("read {}", config_path.display())))?;
    if !config.lines().any(|l| l == "CONFIG_SCHED_CLASS_EXT=y") {
        return Err(BuildError::NoSchedExt(src));
    }
    let release = log.output(
        "make kernelrelease",
        make(&src).args(["-s", "kernelrelease"]),
    )?;
    let git = git_state(&src);
    let key = cache_key(
        &release,
        &version,
        git.as_ref().map(|g| g.head.as_str()),
        &config,
    );
    let kernels = root.join("kernels");
    let dirty = git.as_ref().is_some_and(|g| g.dirty);
    if !dirty {
        if let Some(k) = CachedKernel::open(&kernels.join(&key)) {
            return Ok(Outcome::AlreadyCached(k));
        }
    }
    compile(&src, &kernels, req.jobs, &log, progress)?;
    if dirty {
        return Ok(Outcome::Uncached {
            vmlinux: src.join("vmlinux"),
        });
    }
    progress.phase("caching");
    let info = KernelInfo {
        release,
        source: src.clone(),
        config_sha256: hex(&Sha256::digest(config.as_bytes())),
        slow_kvm: req.slow_kvm,
        built_unix: now_unix(),
    };
    stage(&src, &kernels, &key, &info, &log).map(Outcome::Cached)
}

/// `make -C src` with a quiet kbuild (one line per step).
fn make(src: &Path) -> Command {
    let mut c = Command::new("make");
    c.arg("-C").arg(src).arg("--no-print-directory");
    c
}

fn kernel_tree(dir: &Path) -> Result<PathBuf, BuildError> {
    let dir = dir
        .canonicalize()
        .map_err(|_| BuildError::NotKernelTree(dir.to_owned()))?;
    if dir.join("Makefile").is_file() && dir.join("Kconfig").is_file() {
        Ok(dir)
    } else {
        Err(BuildError::NotKernelTree(dir))
    }
}

/// `<root>/src/linux-source-6.12`, unpacked from Debian's package if absent
/// (into a staging directory first, so a half-unpacked tree is never used).
fn debian_source(root: &Path, log: &Log, progress: &Progress) -> Result<PathBuf, BuildError> {
    let srcs = root.join("src");
    let tree = srcs.join("linux-source-6.12");
    if tree.join("Makefile").is_file() {
        return Ok(tree);
    }
    apt::ensure(&[LINUX_SOURCE], log, progress)?;
    progress.phase(&format!(
        "unpacking {} into {}",
        LINUX_SOURCE.provides,
        srcs.display()
    ));
    let staging = srcs.join(format!("{STAGING_PREFIX}unpack-{}", std::process::id()));
    std::fs::create_dir_all(&staging)
        .map_err(BuildError::io(format!("create {}", staging.display())))?;
    log.run(
        "unpack linux-source-6.12",
        Command::new("tar")
            .arg("-C")
            .arg(&staging)
            .arg("-xf")
            .arg(LINUX_SOURCE.provides),
    )?;
    std::fs::rename(staging.join("linux-source-6.12"), &tree).map_err(BuildError::io(format!(
        "move the unpacked tree to {}",
        tree.display()
    )))?;
    let _ = std::fs::remove_dir_all(&staging);
    Ok(tree)
}

/// x86_64_defconfig + kvm_guest.config + the project's fragments, resolved.
fn configure(src: &Path, root: &Path, slow_kvm: bool, log: &Log) -> Result<(), BuildError> {
    let dir = root.join("kconfig");
    std::fs::create_dir_all(&dir).map_err(BuildError::io(format!("create {}", dir.display())))?;
    let mut fragments = vec![("ktstr.kconfig", KTSTR_KCONFIG)];
    if slow_kvm {
        fragments.push(("slow-kvm.kconfig", SLOW_KVM_KCONFIG));
    }
    let mut paths = Vec::new();
    for (name, text) in fragments {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(BuildError::io(format!("write {}", p.display())))?;
        paths.push(p);
    }
    log.run("make x86_64_defconfig", make(src).arg("x86_64_defconfig"))?;
    log.run("make kvm_guest.config", make(src).arg("kvm_guest.config"))?;
    log.run(
        "merge the ktstr config fragments",
        Command::new(src.join("scripts/kconfig/merge_config.sh"))
            .current_dir(src)
            .args(["-m", ".config"])
            .args(&paths),
    )?;
    log.run("make olddefconfig", make(src).arg("olddefconfig"))
}

/// `6.12.117` → (6, 12).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, minor))
}

/// A tree that is its own git work tree: its commit and whether it has
/// uncommitted changes.
struct GitState {
    head: String,
    dirty: bool,
}

fn git_state(src: &Path) -> Option<GitState> {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(src)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // Only the tree's own repository counts, not one it happens to sit in.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != src {
        return None;
    }
    Some(GitState {
        head: git(&["rev-parse", "HEAD"])?,
        dirty: !git(&["status", "--porcelain"])?.is_empty(),
    })
}

/// `<release>-<12 hex>` of the version, git commit and resolved config.
fn cache_key(release: &str, version: &str, head: Option<&str>, config: &str) -> String {
    let mut h = Sha256::new();
    for part in [version, head.unwrap_or(""), config] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = hex(&h.finalize());
    format!("{release}-{}", digest.get(..12).unwrap_or(&digest))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where the step count of the last full build is kept (the bar's estimate).
fn steps_file(kernels: &Path) -> PathBuf {
    kernels.join(".full-build-steps")
}

/// `make bzImage` with a bar: one step per kbuild line (`  CC      kernel/fork.o`).
fn compile(
    src: &Path,
    kernels: &Path,
    jobs: usize,
    log: &Log,
    progress: &Progress,
) -> Result<(), BuildError> {
    let full = !src.join("vmlinux.o").exists();
    let estimate = if full {
        std::fs::read_to_string(steps_file(kernels))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(DEFAULT_STEPS)
    } else {
        // An incremental build redoes a few steps; the bar then just fills.
        50
    };
    let phase = if full {
        "compiling (full build)"
    } else {
        "compiling (incremental)"
    };
    let mut bar = progress.bar(phase, estimate);
    let result = log.run_lines(
        "make bzImage",
        make(src).arg(format!("-j{jobs}")).arg("bzImage"),
        |line| {
            if let Some(step) = kbuild_step(line) {
                bar.step(step);
            }
        },
    );
    let steps = bar.steps();
    bar.finish();
    result?;
    if full {
        std::fs::create_dir_all(kernels)
            .and_then(|()| std::fs::write(steps_file(kernels), steps.to_string()))
            .map_err(BuildError::io(format!(
                "write {}",
                steps_file(kernels).display()
            )))?;
    }
    Ok(())
}

/// The target of a quiet kbuild line (`  CC      kernel/fork.o`), if it is one.
pub(super) fn kbuild_step(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("  ")?;
    let (tag, target) = rest.split_once(' ')?;
    let is_tag = !tag.is_empty()
        && tag
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_-[]".contains(c));
    is_tag.then(|| target.trim())
}

/// Copies the artifacts into a staging directory and renames it to `key`.
fn stage(
    src: &Path,
    kernels: &Path,
    key: &str,
    info: &KernelInfo,
    log: &Log,
) -> Result<CachedKernel, BuildError> {
    let staging = kernels.join(format!("{STAGING_PREFIX}{key}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging)
        .map_err(BuildError::io(format!("create {}", staging.display())))?;
    let result = fill(src, &staging, info, log).and_then(|()| {
        let entry = kernels.join(key);
        match std::fs::rename(&staging, &entry) {
            Ok(()) => Ok(entry),
            // Another build cached the same key meanwhile: theirs is complete.
            Err(_) if CachedKernel::open(&entry).is_some() => Ok(entry),
            Err(e) => Err(BuildError::io(format!("rename into {}", entry.display()))(
                e,
            )),
        }
    });
    let _ = std::fs::remove_dir_all(&staging);
    let entry = result?;
    CachedKernel::open(&entry).ok_or_else(|| BuildError::Io {
        what: format!("open the cached kernel {}", entry.display()),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// The artifacts: bzImage, System.map, config, vmlinux (symbols and BTF, no
/// DWARF: the monitor and scheduler builds need BTF, nothing needs DWARF), info.
fn fill(src: &Path, staging: &Path, info: &KernelInfo, log: &Log) -> Result<(), BuildError> {
    for (from, to) in [
        ("arch/x86/boot/bzImage", "bzImage"),
        ("System.map", "System.map"),
        (".config", "config"),
    ] {
        let (from, to) = (src.join(from), staging.join(to));
        std::fs::copy(&from, &to).map_err(BuildError::io(format!(
            "copy {} to {}",
            from.display(),
            to.display()
        )))?;
    }
    log.run(
        "objcopy --strip-debug vmlinux",
        Command::new("objcopy")
            .arg("--strip-debug")
            .arg(src.join("vmlinux"))
            .arg(staging.join(KERNEL_FILE)),
    )?;
    let info_path = staging.join(INFO_FILE);
    std::fs::write(&info_path, info.to_text())
        .map_err(BuildError::io(format!("write {}", info_path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(parse_version("6.12.117"), Some((6, 12)));
        assert_eq!(parse_version("6.13-rc1"), Some((6, 13)));
        assert!(parse_version("6.6.30").is_some_and(|v| v < MIN_VERSION));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn kbuild_lines_are_steps_and_others_are_not() {
        assert_eq!(
            kbuild_step("  CC      kernel/fork.o"),
            Some("kernel/fork.o")
        );
        assert_eq!(kbuild_step("  LD [M]  foo.ko"), Some("[M]  foo.ko"));
        assert_eq!(
            kbuild_step("  BTF     .btf.vmlinux.bin.o"),
            Some(".btf.vmlinux.bin.o")
        );
        assert_eq!(
            kbuild_step("Kernel: arch/x86/boot/bzImage is ready  (#1)"),
            None
        );
        assert_eq!(kbuild_step("  warning: something"), None);
    }

    #[test]
    fn the_key_changes_with_config_version_and_commit() {
        let base = cache_key("6.12.117", "6.12.117", None, "CONFIG_A=y\n");
        assert!(base.starts_with("6.12.117-"), "{base}");
        assert_eq!(
            base,
            cache_key("6.12.117", "6.12.117", None, "CONFIG_A=y\n")
        );
        assert_ne!(
            base,
            cache_key("6.12.117", "6.12.117", None, "CONFIG_A=n\n")
        );
        assert_ne!(
            base,
            cache_key("6.12.117", "6.12.118", None, "CONFIG_A=y\n")
        );
        assert_ne!(
            base,
            cache_key("6.12.117", "6.12.117", Some("abc"), "CONFIG_A=y\n")
        );
    }
}
