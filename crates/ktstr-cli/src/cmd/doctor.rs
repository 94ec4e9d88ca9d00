//! `ktstr doctor`: what this machine would run, and what is missing with
//! the command that fixes it. Exit 1 when something a run needs is missing.

use std::path::Path;
use std::process::Command;

use ktstr_backend::KvmKind;
use ktstr_testenv::{Missing, find_busybox, find_kernel, find_qemu, find_scheduler};

use crate::build::sched::SCHEDULERS;
use crate::exit::Status;

/// Prints one line: `what`, then the found value or `MISSING` and the fix.
fn line(what: &str, found: Result<String, Missing>, missing: &mut usize) {
    match found {
        Ok(v) => println!("{what:<12} {v}"),
        Err(m) => {
            *missing += 1;
            println!("{what:<12} MISSING {}: {}", m.what, m.how);
        }
    }
}

pub fn run() -> anyhow::Result<Status> {
    let mut missing = 0;
    let kvm = ktstr_backend::host_kvm();
    let kvm_text = match kvm {
        KvmKind::Absent => "absent (no /dev/kvm; guests run on QEMU TCG)".to_owned(),
        KvmKind::Hardware => "hardware KVM".to_owned(),
        KvmKind::Software { module } => format!("software KVM ({module}): no guest user space"),
    };
    println!("{:<12} {kvm_text}", "kvm");
    let backend = super::backend()
        .and_then(|_| Ok(ktstr_backend::choose()?))
        .map(|c| format!("{:?} ({})", c.kind, c.reason))
        .map_err(|e| Missing::new("a backend", format!("{e:#}")));
    line("backend", backend, &mut missing);
    line(
        "qemu",
        find_qemu().map(|q| format!("{} ({})", q.display(), qemu_version(&q))),
        &mut missing,
    );
    line(
        "busybox",
        find_busybox().map(|b| b.display().to_string()),
        &mut missing,
    );
    line(
        "kernel",
        find_kernel().map(|k| k.display().to_string()),
        &mut missing,
    );
    let mut found = 0;
    for name in SCHEDULERS {
        match find_scheduler(name) {
            Ok(p) => {
                found += 1;
                println!("{:<12} {name}: {}", "scheduler", p.display());
            }
            Err(m) => println!("{:<12} {name}: not found ({})", "scheduler", m.how),
        }
    }
    if found == 0 {
        missing += 1;
        println!(
            "{:<12} MISSING every example scheduler: run `ktstr sched build`",
            "schedulers"
        );
    }
    match ktstr_testenv::cache_root() {
        Some(root) => println!(
            "{:<12} {}: kernels {}, sources {}, build trees {}",
            "cache",
            root.display(),
            size(&root.join("kernels")),
            size(&root.join("src")),
            size(&root.join("build"))
        ),
        None => println!("{:<12} none (set KTSTR_CACHE_DIR or HOME)", "cache"),
    }
    Ok(if missing == 0 {
        Status::Success
    } else {
        Status::Failed
    })
}

/// The first line of `qemu --version`.
fn qemu_version(qemu: &Path) -> String {
    Command::new(qemu)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "version unknown".into())
}

/// Bytes under `dir` (not following symlinks), human-readable.
fn size(dir: &Path) -> String {
    fn walk(dir: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .filter_map(Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    let bytes = walk(dir);
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB")
    }
}
