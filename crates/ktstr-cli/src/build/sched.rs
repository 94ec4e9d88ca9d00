//! `ktstr sched build`: the example sched_ext schedulers from the cached
//! kernel's source tree (`tools/sched_ext`), their BPF compiled by clang-19
//! against that kernel's BTF, linked statically (the guest has no libelf),
//! stripped, and cached beside the kernel where `ktstr_testenv::find_scheduler`
//! looks. Each binary appears by `rename`, never half-written.

use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr_testenv::CachedKernel;
use ktstr_testenv::cache::STAGING_PREFIX;

use super::apt::{self, CLANG};
use super::kernel::kbuild_step;
use super::tool::Log;
use super::{BuildError, cache_root};
use crate::progress::Progress;

/// What tools/sched_ext in Linux 6.12 builds.
pub const SCHEDULERS: &[&str] = &["scx_simple", "scx_qmap", "scx_central", "scx_flatcg"];
/// Steps of building all of them from scratch (libbpf, bpftool, skeletons).
const FULL_STEPS: u64 = 200;

/// Schedulers built and cached for `kernel`.
pub struct Built {
    /// The kernel they were built against.
    pub kernel: CachedKernel,
    /// The cached binaries.
    pub binaries: Vec<PathBuf>,
}

/// Checks `names` (empty: all of [`SCHEDULERS`]) before anything is built.
pub fn resolve_names(names: &[String]) -> Result<Vec<&'static str>, BuildError> {
    if names.is_empty() {
        return Ok(SCHEDULERS.to_vec());
    }
    names
        .iter()
        .map(|n| {
            SCHEDULERS.iter().copied().find(|s| s == n).ok_or_else(|| {
                BuildError::UnknownScheduler {
                    name: n.clone(),
                    known: SCHEDULERS.join(", "),
                }
            })
        })
        .collect()
}

/// Builds `names` against the newest cached kernel.
pub fn build(names: &[&str], jobs: usize, progress: &Progress) -> Result<Built, BuildError> {
    let kernel = ktstr_testenv::newest_kernel().ok_or(BuildError::NoKernel)?;
    let src = kernel.info.source.clone();
    let tools = src.join("tools/sched_ext");
    if !tools.join("Makefile").is_file() {
        return Err(BuildError::SourceGone(src));
    }
    let root = cache_root()?;
    let log = Log::create(&root.join("logs").join("sched-build.log"))?;
    apt::ensure(apt::SCHED_BUILD, &log, progress)?;
    let out = root.join("build").join(format!("sched-{}", kernel.key));
    std::fs::create_dir_all(&out).map_err(BuildError::io(format!("create {}", out.display())))?;
    let mut bar = progress.bar(&format!("building {}", names.join(" ")), FULL_STEPS);
    let result = log.run_lines(
        "make -C tools/sched_ext",
        make_schedulers(&tools, &out, &kernel.vmlinux(), jobs).args(names),
        |line| {
            if let Some(step) = kbuild_step(line) {
                bar.step(step);
            }
        },
    );
    bar.finish();
    result?;
    progress.phase("caching");
    let dir = kernel.schedulers_dir();
    std::fs::create_dir_all(&dir).map_err(BuildError::io(format!("create {}", dir.display())))?;
    let binaries = names
        .iter()
        .map(|name| {
            let bin = link_static(&out.join("build"), name, &log)?;
            cache_binary(&bin, &dir, name, &log)
        })
        .collect::<Result<_, _>>()?;
    Ok(Built { kernel, binaries })
}

fn make_schedulers(tools: &Path, out: &Path, vmlinux: &Path, jobs: usize) -> Command {
    let mut c = Command::new("make");
    c.arg("-C")
        .arg(tools)
        .arg("--no-print-directory")
        .arg(format!("-j{jobs}"))
        .arg(format!("O={}", out.display()))
        .arg(format!("CLANG={CLANG}"))
        .arg(format!("VMLINUX_BTF={}", vmlinux.display()));
    c
}

/// Relinks `name` statically: the guest has only what the initramfs packs.
/// (Passing `-static` in LDFLAGS to make would reach libbpf's shared
/// library link too, which then fails.)
fn link_static(build: &Path, name: &str, log: &Log) -> Result<PathBuf, BuildError> {
    let bin = build.join("bin").join(format!("{name}.static"));
    log.run(
        &format!("link {name} statically"),
        Command::new("cc")
            .arg("-o")
            .arg(&bin)
            .arg(build.join("obj/sched_ext").join(format!("{name}.o")))
            .arg(build.join("obj/libbpf/libbpf.a"))
            .args(["-static", "-lelf", "-lz", "-lzstd", "-lpthread"]),
    )?;
    Ok(bin)
}

/// Strips `bin` into a staging file in `dir` and renames it to `name`.
fn cache_binary(bin: &Path, dir: &Path, name: &str, log: &Log) -> Result<PathBuf, BuildError> {
    let staging = dir.join(format!("{STAGING_PREFIX}{name}-{}", std::process::id()));
    let target = dir.join(name);
    log.run(
        &format!("strip {name}"),
        Command::new("strip").arg("-o").arg(&staging).arg(bin),
    )
    .and_then(|()| {
        std::fs::rename(&staging, &target)
            .map_err(BuildError::io(format!("rename into {}", target.display())))
    })
    .inspect_err(|_| {
        let _ = std::fs::remove_file(&staging);
    })?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_or_name_what_exists() {
        assert_eq!(resolve_names(&[]).expect("all"), SCHEDULERS);
        assert_eq!(
            resolve_names(&["scx_qmap".into()]).expect("one"),
            ["scx_qmap"]
        );
        let e = resolve_names(&["scx_nope".into()]).expect_err("unknown");
        assert!(e.to_string().contains("scx_simple"), "{e}");
    }
}
