//! `ktstr kernel build|list|clean`.

use std::path::Path;

use anyhow::Context;
use ktstr_testenv::{CachedKernel, cached_kernels, kernels_dir};
use serde_json::json;

use crate::build::kernel::{Outcome, Request};
use crate::cli::KernelBuildArgs;
use crate::exit::Status;
use crate::progress::{Progress, clock};

pub fn build(args: &KernelBuildArgs) -> anyhow::Result<Status> {
    build_and_report(&Request {
        source: args.source.clone(),
        slow_kvm: args.slow_kvm,
        jobs: super::jobs(args.jobs),
    })?;
    Ok(Status::Success)
}

/// Builds (or finds cached) and says where the kernel is.
pub fn build_and_report(req: &Request) -> anyhow::Result<()> {
    let progress = Progress::new("kernel");
    let outcome = crate::build::kernel::build(req, &progress)?;
    let took = clock(progress.elapsed());
    match outcome {
        Outcome::AlreadyCached(k) => {
            eprintln!(
                "ktstr: kernel {} already cached: {}",
                k.key,
                k.vmlinux().display()
            );
        }
        Outcome::Cached(k) => {
            eprintln!(
                "ktstr: kernel {} built in {took} and cached: {}",
                k.key,
                k.vmlinux().display()
            );
        }
        Outcome::Uncached { vmlinux } => {
            eprintln!(
                "ktstr: kernel built in {took}, not cached (the tree has uncommitted changes); \
                 use it with KTSTR_KERNEL={}",
                vmlinux.display()
            );
        }
    }
    Ok(())
}

fn schedulers(k: &CachedKernel) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(k.schedulers_dir())
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

pub fn list(as_json: bool) -> anyhow::Result<Status> {
    let kernels = cached_kernels();
    if as_json {
        let entries: Vec<_> = kernels
            .iter()
            .enumerate()
            .map(|(i, k)| {
                json!({
                    "key": k.key,
                    "release": k.info.release,
                    "vmlinux": k.vmlinux(),
                    "source": k.info.source,
                    "config_sha256": k.info.config_sha256,
                    "slow_kvm": k.info.slow_kvm,
                    "built_unix": k.info.built_unix,
                    "default": i == 0,
                    "schedulers": schedulers(k),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Status::Success);
    }
    if kernels.is_empty() {
        println!(
            "no cached kernels in {} (build one: ktstr kernel build)",
            kernels_dir().map_or("(no HOME)".into(), |d| d.display().to_string())
        );
    }
    for (i, k) in kernels.iter().enumerate() {
        let mark = if i == 0 { "*" } else { " " };
        let slow = if k.info.slow_kvm { " slow-kvm" } else { "" };
        println!("{mark} {}{slow}  {}", k.key, k.vmlinux().display());
        let names = schedulers(k);
        if !names.is_empty() {
            println!("    schedulers: {}", names.join(" "));
        }
    }
    Ok(Status::Success)
}

/// What `clean --all` removes besides `kernels/`: everything a build made.
const BUILD_DIRS: &[&str] = &["src", "build", "logs", "kconfig"];

pub fn clean(all: bool) -> anyhow::Result<Status> {
    let Some(dir) = kernels_dir() else {
        anyhow::bail!("no cache directory: set KTSTR_CACHE_DIR (or HOME)");
    };
    let removed = remove_entries(&dir)?;
    println!(
        "removed {removed} cached kernel entries from {}",
        dir.display()
    );
    if all {
        let root = dir.parent().unwrap_or(&dir);
        for name in BUILD_DIRS {
            let d = root.join(name);
            if d.exists() {
                std::fs::remove_dir_all(&d).with_context(|| format!("remove {}", d.display()))?;
                println!("removed {}", d.display());
            }
        }
    }
    Ok(Status::Success)
}

/// Removes every entry (complete or staging) under `dir`; the count.
fn remove_entries(dir: &Path) -> anyhow::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let mut n = 0;
    for e in entries {
        let path = e.with_context(|| format!("read {}", dir.display()))?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).with_context(|| format!("remove {}", path.display()))?;
            n += 1;
        }
    }
    Ok(n)
}
