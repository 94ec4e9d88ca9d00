//! The figures mode (issue 12 item 4): inside one L1 run, the same L2
//! kernel, busybox initramfs, 2 vCPUs and memory measured side by side —
//! boot to `/init` on ktstr-vmm vs `qemu-system-x86_64 -accel kvm -M
//! microvm`, ktstr-vmm restore vs cold boot (`kernel_snapshot`'s `FIGURE
//! kernel` line), and one harness test cold and resumed on `kvm` vs
//! `qemu-kvm`. L1 times each with `ktstr-nested-stopwatch`; [`Row::parse`]
//! reads its median lines back and [`table`] prints them with the ratios.

use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr_initramfs::Archive;

use crate::error::Error;
use crate::host_command::run;
use crate::init_script::{L2_KERNEL, quote};
use crate::markers::{END, FIGURE};
use crate::suite::{Suite, executables_of_kind};

/// What `/init` in the L2 initramfs prints once it runs: the boot figures'
/// finish line.
pub const L2_MARK: &str = "KTSTR-FIGURES-INIT";
/// `kernel_snapshot`'s line with restore vs cold boot.
pub const KERNEL_SNAPSHOT_FIGURE: &str = "FIGURE kernel:";
/// L2's vCPUs and memory in every figure.
pub const L2_VCPUS: u32 = 2;
/// See [`L2_VCPUS`].
pub const L2_MEMORY_MIB: u64 = 256;
/// The harness test timed on both backends (a `#[ktstr_test]` in
/// `tests/schedulers.rs`, topology `1n1l2c1t`: 2 vCPUs).
pub const HARNESS_TEST: &str = "eevdf_two_cgroups";

const DIR: &str = "/nested/figures";
const L2_INITRAMFS: &str = "/nested/figures/l2.cpio";
/// Where the host has it: QEMU finds its firmware relative to its own path
/// (`../share/qemu`), so it must sit in `/usr/bin` next to [`QEMU_DATA`].
const QEMU: &str = "/usr/bin/qemu-system-x86_64";
const QEMU_DATA: &str = "/usr/share/qemu";

/// The test binaries the figures run: `kernel_snapshot` and the harness test.
pub fn suites() -> Vec<Suite> {
    ["ktstr-vmm/kernel_snapshot", "ktstr-examples/schedulers"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// The host programs L1 needs besides the test binaries.
pub struct Tools {
    /// `ktstr-nested-stopwatch` (release).
    pub stopwatch: PathBuf,
    /// ktstr-vmm's `boot` example (release).
    pub vmm_boot: PathBuf,
    /// The host's `qemu-system-x86_64`.
    pub qemu: PathBuf,
}

/// Builds the stopwatch and ktstr-vmm's `boot` example (release) in the
/// workspace at `root`; `qemu` is the host's QEMU.
pub fn build_tools(root: &Path, qemu: PathBuf) -> Result<Tools, Error> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let built = |args: &[&str], kind: &str, name: &str| -> Result<PathBuf, Error> {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(root)
            .args(["build", "--release", "--message-format=json"])
            .args(args);
        let out = run("build the figures' tools", &mut cmd)?;
        executables_of_kind(&String::from_utf8_lossy(&out.stdout), kind)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, exe)| exe)
            .ok_or_else(|| Error::NoTestBinary {
                suite: name.to_owned(),
            })
    };
    Ok(Tools {
        stopwatch: built(
            &["-p", "ktstr-nested", "--bin", "ktstr-nested-stopwatch"],
            "bin",
            "ktstr-nested-stopwatch",
        )?,
        vmm_boot: built(&["-p", "ktstr-vmm", "--example", "boot"], "example", "boot")?,
        qemu,
    })
}

/// The L2 initramfs: static busybox and an `/init` that prints [`L2_MARK`]
/// with its CPU count and powers off.
pub fn l2_initramfs(busybox: &Path) -> Result<Vec<u8>, Error> {
    let mut a = Archive::new();
    a.add_host_file("bin/busybox", 0o755, busybox)?;
    for dir in ["dev", "proc"] {
        a.add_dir(dir, 0o755)?;
    }
    a.add_char_dev("dev/console", 0o600, 5, 1)?;
    a.add_file(
        "init",
        0o755,
        format!(
            "#!/bin/busybox sh\necho \"{L2_MARK} nproc=$(/bin/busybox nproc)\"\n/bin/busybox poweroff -f\n"
        )
        .into_bytes(),
    )?;
    Ok(a.to_bytes()?)
}

/// Adds the tools, QEMU's firmware directory ([`QEMU_DATA`], where QEMU
/// looks by default) and the L2 initramfs to L1's archive.
pub fn add_to(a: &mut Archive, tools: &Tools, l2_initramfs: Vec<u8>) -> Result<(), Error> {
    a.add_elf_with_libs(&format!("{DIR}/ktstr-nested-stopwatch"), &tools.stopwatch)?;
    a.add_elf_with_libs(&format!("{DIR}/boot"), &tools.vmm_boot)?;
    a.add_elf_with_libs(QEMU, &tools.qemu)?;
    let entries =
        std::fs::read_dir(QEMU_DATA).map_err(|e| Error::io("read the directory", QEMU_DATA, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        // Follows symlinks (bios-microvm.bin -> qboot.rom); subdirectories
        // (keymaps, firmware descriptors) are not needed headless.
        if path.is_file() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                a.add_host_file(&format!("{QEMU_DATA}/{name}"), 0o644, &path)?;
            }
        }
    }
    a.add_file(L2_INITRAMFS, 0o644, l2_initramfs)?;
    Ok(())
}

/// Which figures a run measures (`--only boot,restore,harness`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Groups {
    /// Boot to `/init`: ktstr-vmm vs QEMU microvm.
    pub boot: bool,
    /// `kernel_snapshot`: restore vs cold boot.
    pub restore: bool,
    /// The harness test, cold and resumed, on `kvm` and `qemu-kvm`.
    pub harness: bool,
}

impl Groups {
    /// Every figure.
    pub const ALL: Groups = Groups {
        boot: true,
        restore: true,
        harness: true,
    };
}

/// Parses a comma-separated list of `boot`, `restore`, `harness`.
impl std::str::FromStr for Groups {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut g = Groups {
            boot: false,
            restore: false,
            harness: false,
        };
        for word in s.split(',') {
            match word.trim() {
                "boot" => g.boot = true,
                "restore" => g.restore = true,
                "harness" => g.harness = true,
                other => return Err(format!("{other:?} is not boot, restore or harness")),
            }
        }
        Ok(g)
    }
}

/// The figures' part of L1's `/init` (after
/// [`crate::init_script::prologue`]): `runs` timed runs of each figure in
/// `groups`. `kernel_snapshot` and `harness` are the test binaries' paths in L1.
pub fn script(runs: u32, groups: Groups, kernel_snapshot: &str, harness: &str) -> String {
    let sw = format!("{DIR}/ktstr-nested-stopwatch");
    let load = format!("echo \"{FIGURE}-LOAD $(cat /proc/loadavg)\"\n");
    let mut s = format!("export PATH=/bin:/usr/bin:{DIR}\n{load}");
    if groups.boot {
        let qemu_cmdline = "console=ttyS0 reboot=t panic=-1";
        s.push_str(&format!(
            "{sw} vmm-boot {runs} {L2_MARK} -- {DIR}/boot --kernel {L2_KERNEL} --initramfs {L2_INITRAMFS} \
             --vcpus {L2_VCPUS} --memory-mib {L2_MEMORY_MIB}\n\
             {sw} qemu-microvm-boot {runs} {L2_MARK} -- {QEMU} -L {QEMU_DATA} -accel kvm -M microvm,rtc=on \
             -cpu host -smp {L2_VCPUS} -m {L2_MEMORY_MIB} -nodefaults -no-user-config -display none \
             -serial stdio -no-reboot -kernel {L2_KERNEL} -initrd {L2_INITRAMFS} -append '{qemu_cmdline}'\n"
        ));
    }
    if groups.restore {
        s.push_str(&format!(
            "KTSTR_SNAPSHOT_VCPUS={L2_VCPUS} {} --color never --test-threads 1 2>&1\n",
            quote(kernel_snapshot)
        ));
    }
    if groups.harness {
        let test = format!(
            "{} --exact {HARNESS_TEST} --color never --test-threads 1",
            quote(harness)
        );
        // QEMU first; on each backend one visible run builds the snapshot
        // the resumed runs restore.
        for backend in ["qemu-kvm", "kvm"] {
            s.push_str(&format!(
                "echo \"{FIGURE}-WARMUP {backend}: the first, snapshotting run\"\n\
                 KTSTR_BACKEND={backend} {test} 2>&1\n\
                 {sw} harness-{backend}-resumed {runs} - -- env KTSTR_BACKEND={backend} {test}\n\
                 {sw} harness-{backend}-cold {runs} - -- env KTSTR_BACKEND={backend} KTSTR_SNAPSHOTS=0 {test}\n\
                 {load}"
            ));
        }
    }
    s.push_str(&format!("echo {END}\npoweroff -f\n"));
    s
}

/// One figure's median line from L1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// e.g. `vmm-boot`.
    pub name: String,
    /// `None` when every run failed.
    pub median_ms: Option<u64>,
    /// The counted runs, in order.
    pub runs_ms: Vec<u64>,
    /// Runs that failed.
    pub failed: u32,
}

impl Row {
    /// Parses `NESTED-FIGURE <name> median_ms=<ms|none> runs_ms=<a,b> failed=<n>`;
    /// other lines (per-run ones too) are `None`.
    pub fn parse(line: &str) -> Option<Row> {
        let rest = line.trim().strip_prefix(FIGURE)?.strip_prefix(' ')?;
        let mut words = rest.split_whitespace();
        let name = words.next()?.to_owned();
        let median = words.next()?.strip_prefix("median_ms=")?;
        let runs = words.next()?.strip_prefix("runs_ms=")?;
        let failed = words.next()?.strip_prefix("failed=")?.parse().ok()?;
        Some(Row {
            name,
            median_ms: median.parse().ok(),
            runs_ms: runs.split(',').filter_map(|r| r.parse().ok()).collect(),
            failed,
        })
    }
}

/// The rows as a table with the ratios that carry over (QEMU / ktstr-vmm,
/// cold / resumed), plus `notes` (the `FIGURE kernel` and load lines).
pub fn table(rows: &[Row], notes: &[String]) -> String {
    let median = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .and_then(|r| r.median_ms)
    };
    let mut s = format!(
        "{:<26} {:>10}  {:<40} {}\n",
        "figure", "median ms", "runs ms", "failed"
    );
    for r in rows {
        let runs: Vec<String> = r.runs_ms.iter().map(u64::to_string).collect();
        s.push_str(&format!(
            "{:<26} {:>10}  {:<40} {}\n",
            r.name,
            r.median_ms.map_or("-".to_owned(), |m| m.to_string()),
            runs.join(","),
            r.failed
        ));
    }
    for (what, num, den) in [
        (
            "boot to /init, QEMU microvm / ktstr-vmm",
            "qemu-microvm-boot",
            "vmm-boot",
        ),
        (
            "harness test cold, qemu-kvm / kvm",
            "harness-qemu-kvm-cold",
            "harness-kvm-cold",
        ),
        (
            "harness test resumed, qemu-kvm / kvm",
            "harness-qemu-kvm-resumed",
            "harness-kvm-resumed",
        ),
        (
            "harness test on kvm, cold / resumed",
            "harness-kvm-cold",
            "harness-kvm-resumed",
        ),
        (
            "harness test on qemu-kvm, cold / resumed",
            "harness-qemu-kvm-cold",
            "harness-qemu-kvm-resumed",
        ),
    ] {
        if let (Some(n), Some(d)) = (median(num), median(den).filter(|d| *d > 0)) {
            s.push_str(&format!("ratio {what}: {:.2}\n", n as f64 / d as f64));
        }
    }
    for n in notes {
        s.push_str(n);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_lines_parse_and_per_run_lines_do_not() {
        let row = Row::parse(&format!(
            "{FIGURE} vmm-boot median_ms=2100 runs_ms=2300,2100,1900 failed=2"
        ))
        .expect("a median line");
        assert_eq!(row.name, "vmm-boot");
        assert_eq!(row.median_ms, Some(2100));
        assert_eq!(row.runs_ms, [2300, 2100, 1900]);
        assert_eq!(row.failed, 2);
        let none = Row::parse(&format!("{FIGURE} q median_ms=none runs_ms= failed=5"))
            .expect("all runs failed");
        assert_eq!((none.median_ms, none.runs_ms.len()), (None, 0));
        assert_eq!(
            Row::parse(&format!("{FIGURE} vmm-boot run=1 ms=5 ok=true")),
            None
        );
        assert_eq!(Row::parse("vmm-boot median_ms=1 runs_ms=1 failed=0"), None);
    }

    #[test]
    fn the_table_gives_the_ratio_of_the_medians() {
        let rows: Vec<Row> = [
            "vmm-boot median_ms=1000 runs_ms=1000 failed=0",
            "qemu-microvm-boot median_ms=2500 runs_ms=2500 failed=0",
        ]
        .iter()
        .filter_map(|l| Row::parse(&format!("{FIGURE} {l}")))
        .collect();
        let t = table(&rows, &["FIGURE kernel: x".to_owned()]);
        assert!(
            t.contains("ratio boot to /init, QEMU microvm / ktstr-vmm: 2.50"),
            "{t}"
        );
        assert!(!t.contains("harness test cold"), "{t}");
        assert!(t.ends_with("FIGURE kernel: x\n"), "{t}");
    }

    #[test]
    fn the_script_times_every_figure_and_powers_off() {
        let s = script(
            5,
            Groups::ALL,
            "/nested/tests/0-kernel_snapshot",
            "/nested/tests/1-schedulers",
        );
        for name in [
            "vmm-boot 5 ",
            "qemu-microvm-boot 5 ",
            "harness-kvm-cold 5 - --",
            "harness-kvm-resumed 5 - --",
            "harness-qemu-kvm-cold 5 - --",
            "harness-qemu-kvm-resumed 5 - --",
        ] {
            assert!(s.contains(name), "{name} missing:\n{s}");
        }
        assert!(s.contains("-accel kvm -M microvm"), "{s}");
        assert!(s.contains("KTSTR_SNAPSHOTS=0"), "{s}");
        assert!(s.ends_with(&format!("echo {END}\npoweroff -f\n")), "{s}");
        let only: Groups = "harness".parse().expect("groups");
        let h = script(5, only, "/k", "/h");
        assert!(!h.contains("vmm-boot") && !h.contains("/k "), "{h}");
        assert!(h.contains("harness-kvm-cold"), "{h}");
        assert!("boot,nope".parse::<Groups>().is_err());
    }
}
