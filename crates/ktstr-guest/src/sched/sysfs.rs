//! What the kernel says about sched_ext, from `/sys/kernel/sched_ext`.

use std::path::{Path, PathBuf};

/// The sysfs directory (overridable for tests).
#[derive(Clone, Debug)]
pub struct SchedExtSysfs {
    dir: PathBuf,
}

impl Default for SchedExtSysfs {
    fn default() -> Self {
        SchedExtSysfs::new("/sys/kernel/sched_ext")
    }
}

impl SchedExtSysfs {
    /// sysfs rooted at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SchedExtSysfs { dir: dir.into() }
    }

    /// Whether the kernel has sched_ext at all.
    pub fn present(&self) -> bool {
        self.dir.join("state").is_file()
    }

    /// `state`: `enabled`, `disabled`, `enabling`, `disabling`, ...
    pub fn state(&self) -> Option<String> {
        read_trimmed(&self.dir.join("state"))
    }

    /// `root/ops`: the attached scheduler's name (absent when none is).
    pub fn ops(&self) -> Option<String> {
        read_trimmed(&self.dir.join("root/ops")).filter(|s| !s.is_empty())
    }

    /// `enable_seq`: bumps on every attach, so a quick detach and re-attach
    /// that polling `state` missed still shows.
    pub fn enable_seq(&self) -> Option<u64> {
        read_trimmed(&self.dir.join("enable_seq")).and_then(|s| s.parse().ok())
    }

    /// Attached: `state` is `enabled` and `root/ops` names something.
    pub fn attached(&self) -> Option<String> {
        if self.state().as_deref() == Some("enabled") {
            self.ops()
        } else {
            None
        }
    }
}

fn read_trimmed(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_needs_enabled_and_a_name() {
        let d = tempfile::tempdir().unwrap();
        let s = SchedExtSysfs::new(d.path());
        assert!(!s.present());
        std::fs::write(d.path().join("state"), "enabling\n").unwrap();
        std::fs::create_dir(d.path().join("root")).unwrap();
        std::fs::write(d.path().join("root/ops"), "simple\n").unwrap();
        assert!(s.present());
        assert_eq!(s.attached(), None);
        std::fs::write(d.path().join("state"), "enabled\n").unwrap();
        assert_eq!(s.attached().as_deref(), Some("simple"));
    }
}
