//! Boots every topology preset on the chosen backend (`KTSTR_BACKEND`, auto by
//! default), checks the guest's view of it like the conformance suite does,
//! and prints the boot time per preset: host wall time of the whole run and
//! the kernel's own timestamp of `Run /init`.
//!
//! `cargo run --release -p ktstr-backend --example topology_presets -- [PRESET ...]`
//! with `KTSTR_KERNEL` set; a preset is a name from `ktstr_topology::PRESETS`
//! (default: all of them) or a shape like `1n2l4c2t`. Too slow for CI on a
//! 2-core host (64 vCPUs).

#[path = "../tests/common/topology.rs"]
mod topology;

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ktstr_backend::{BootSpec, choose};
use ktstr_initramfs::Archive;

fn initramfs(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let mut a = Archive::new();
    a.add_dir("proc", 0o755)?;
    a.add_dir("sys", 0o755)?;
    a.add_dir("dev", 0o755)?;
    a.add_char_dev("dev/console", 0o600, 5, 1)?;
    a.add_elf_with_libs("bin/busybox", Path::new("/bin/busybox"))?;
    a.add_symlink("bin/sh", "busybox")?;
    a.add_file("init", 0o755, topology::PROBE_INIT.as_bytes())?;
    let path = dir.join("probe.cpio");
    std::fs::write(&path, a.to_bytes()?)?;
    Ok(path)
}

/// The kernel's timestamp on its `Run /init` line, in seconds.
fn run_init_stamp(com1: &str) -> Option<f64> {
    let line = com1
        .lines()
        .find(|l| l.contains("Run /init as init process"))?;
    line.trim_start_matches('[')
        .split(']')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn main() -> anyhow::Result<()> {
    let kernel = std::env::var_os("KTSTR_KERNEL").context("set KTSTR_KERNEL to a vmlinux")?;
    let choice = choose()?;
    eprintln!("backend: {:?} ({})", choice.kind, choice.reason);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let presets: Vec<&str> = if args.is_empty() {
        ktstr_topology::PRESETS.iter().map(|p| p.name).collect()
    } else {
        args.iter().map(String::as_str).collect()
    };
    let dir = tempfile::tempdir()?;
    let cpio = initramfs(dir.path())?;
    println!("preset       vcpus  wall_s  run_init_s  result");
    let mut failures = 0;
    for text in presets {
        let shape = ktstr_topology::resolve(text)?;
        let memory_mib = shape.memory_mib(None, 512)?;
        let topo = shape.topology;
        let spec = BootSpec {
            kernel: kernel.clone().into(),
            initramfs: Some(cpio.clone()),
            cmdline: topology::CMDLINE.into(),
            vcpus: topo.vcpus() as usize,
            memory_mib,
            deadline: Duration::from_secs(1800),
            topology: Some(topo.clone()),
            restore_from: None,
        };
        let started = Instant::now();
        let outcome = ktstr_backend::boot(choice.kind, &spec)?.wait()?;
        let wall = started.elapsed().as_secs_f64();
        let com1 = outcome.com1_text();
        let mut bad = topology::compare_log(&com1, &topo, memory_mib);
        bad.extend(topology::compare_probe(
            &topology::parse_probe(&com1),
            &topo,
            memory_mib,
        ));
        let stamp = run_init_stamp(&com1).map_or("-".into(), |s| format!("{s:.2}"));
        let result = if bad.is_empty() {
            "match".to_string()
        } else {
            failures += 1;
            format!("MISMATCH: {}", bad.join("; "))
        };
        println!(
            "{text:<12} {:>5}  {wall:>6.2}  {stamp:>10}  {result}",
            topo.vcpus()
        );
    }
    if failures > 0 {
        bail!("{failures} preset(s) did not match");
    }
    Ok(())
}
