//! CPU hotplug as a scenario op: [`Op::CpuOffline`](crate::Op::CpuOffline)
//! and [`Op::CpuOnline`](crate::Op::CpuOnline) write
//! `/sys/devices/system/cpu/cpuN/online` (needs `CONFIG_HOTPLUG_CPU`).
//!
//! Invariant: every CPU a run took offline is online again when the run
//! ends, however it ends ([`Hotplug`]'s `Drop`). x86 cannot take the boot
//! CPU (cpu0) offline, so a scenario may not ask for it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a hotplug op cannot run where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HotplugProblem {
    /// The CPU is not in the guest's topology.
    NotInTopology,
    /// cpu0, the boot CPU, has no `online` file on x86.
    BootCpu,
    /// An earlier op already took it offline.
    AlreadyOffline,
    /// It is online (never taken offline by this scenario).
    NotOffline,
}

impl fmt::Display for HotplugProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HotplugProblem::NotInTopology => "is not a CPU of this topology",
            HotplugProblem::BootCpu => "is the boot CPU, which x86 cannot take offline",
            HotplugProblem::AlreadyOffline => "is already offline at this point",
            HotplugProblem::NotOffline => {
                "is online at this point (only a CPU an earlier op took offline can come back)"
            }
        })
    }
}

/// Check one hotplug op against the CPUs (`all`) and those earlier ops took
/// offline (updated).
pub fn check(
    cpu: u32,
    online: bool,
    all: &[u32],
    offline: &mut BTreeSet<u32>,
) -> Result<(), HotplugProblem> {
    if !all.contains(&cpu) {
        return Err(HotplugProblem::NotInTopology);
    }
    if cpu == 0 {
        return Err(HotplugProblem::BootCpu);
    }
    let changed = if online {
        offline.remove(&cpu)
    } else {
        offline.insert(cpu)
    };
    match (changed, online) {
        (true, _) => Ok(()),
        (false, true) => Err(HotplugProblem::NotOffline),
        (false, false) => Err(HotplugProblem::AlreadyOffline),
    }
}

/// Writing a CPU's `online` file failed.
#[derive(Debug, thiserror::Error)]
#[error("set cpu{cpu} {state} through {path}: {source}")]
pub struct HotplugError {
    /// The CPU.
    pub cpu: u32,
    /// `online` or `offline`.
    pub state: &'static str,
    /// The file written.
    pub path: PathBuf,
    /// The kernel's answer.
    pub source: std::io::Error,
}

/// The CPUs a run took offline; brings them back online on drop.
#[derive(Debug)]
pub struct Hotplug {
    sysfs: PathBuf,
    offline: BTreeSet<u32>,
}

impl Hotplug {
    /// Hotplug through `sysfs` (normally `/sys`).
    pub fn new(sysfs: &Path) -> Self {
        Hotplug {
            sysfs: sysfs.to_path_buf(),
            offline: BTreeSet::new(),
        }
    }

    /// CPUs this run has offline now.
    pub fn offline(&self) -> &BTreeSet<u32> {
        &self.offline
    }

    /// Take `cpu` offline or bring it back; returns once the kernel has
    /// done it (the write blocks until the CPU is down or up).
    pub fn set(&mut self, cpu: u32, online: bool) -> Result<(), HotplugError> {
        let path = self
            .sysfs
            .join(format!("devices/system/cpu/cpu{cpu}/online"));
        std::fs::write(&path, if online { "1" } else { "0" }).map_err(|source| HotplugError {
            cpu,
            state: if online { "online" } else { "offline" },
            path: path.clone(),
            source,
        })?;
        if online {
            self.offline.remove(&cpu);
        } else {
            self.offline.insert(cpu);
        }
        tracing::debug!(cpu, online, "cpu hotplug");
        Ok(())
    }
}

impl Drop for Hotplug {
    fn drop(&mut self) {
        for cpu in std::mem::take(&mut self.offline) {
            if let Err(e) = self.set(cpu, true) {
                tracing::warn!("could not bring a CPU back online after the run: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_are_checked_in_order() {
        let all = [0, 1, 2, 3];
        let mut off = BTreeSet::new();
        assert_eq!(
            check(4, false, &all, &mut off),
            Err(HotplugProblem::NotInTopology)
        );
        assert_eq!(
            check(0, false, &all, &mut off),
            Err(HotplugProblem::BootCpu)
        );
        assert_eq!(
            check(1, true, &all, &mut off),
            Err(HotplugProblem::NotOffline)
        );
        assert_eq!(check(1, false, &all, &mut off), Ok(()));
        assert_eq!(
            check(1, false, &all, &mut off),
            Err(HotplugProblem::AlreadyOffline)
        );
        assert_eq!(check(1, true, &all, &mut off), Ok(()));
        assert!(off.is_empty());
    }

    #[test]
    fn writes_the_online_file_and_restores_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("devices/system/cpu/cpu1/online");
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "1").unwrap();
        {
            let mut h = Hotplug::new(d.path());
            h.set(1, false).unwrap();
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "0");
            assert_eq!(h.offline().iter().copied().collect::<Vec<_>>(), [1]);
            let e = h.set(7, false).unwrap_err();
            assert!(e.to_string().starts_with("set cpu7 offline through"), "{e}");
        }
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "1");
    }
}
