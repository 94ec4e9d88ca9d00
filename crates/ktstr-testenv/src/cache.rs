//! The one cache layout: kernels `ktstr kernel build` made, and the
//! schedulers `ktstr sched build` made beside each of them.
//!
//! ```text
//! <root>/kernels/<key>/{vmlinux,bzImage,System.map,config,info}
//! <root>/kernels/<key>/schedulers/scx_*
//! <root>/kernels/.tmp-*     a build being staged (never a cached kernel)
//! <root>/src/               unpacked kernel sources the builds use
//! ```
//! `<root>` is `$KTSTR_CACHE_DIR`, else `$XDG_CACHE_HOME/ktstr`, else
//! `~/.cache/ktstr`. An entry appears by one `rename` of a fully written
//! staging directory, so a directory named `<key>` is always complete.

use std::path::{Path, PathBuf};

/// The kernel image in an entry.
pub const KERNEL_FILE: &str = "vmlinux";
/// The entry's description ([`KernelInfo`]).
pub const INFO_FILE: &str = "info";
/// The directory of schedulers built against an entry's kernel.
pub const SCHEDULERS_DIR: &str = "schedulers";
/// Prefix of staging directories under `kernels/`.
pub const STAGING_PREFIX: &str = ".tmp-";

/// The cache root (see the module docs); `None` without `HOME`.
pub fn cache_root() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("KTSTR_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ktstr"))
}

/// `<root>/kernels`.
pub fn kernels_dir() -> Option<PathBuf> {
    cache_root().map(|r| r.join("kernels"))
}

/// What a cached kernel was built from; the `info` file, `key=value` lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelInfo {
    /// `make kernelrelease`, e.g. `6.12.117`.
    pub release: String,
    /// The source tree it was built from.
    pub source: PathBuf,
    /// SHA-256 (hex) of the resolved `.config`.
    pub config_sha256: String,
    /// Built with the software-KVM overlay (`--slow-kvm`).
    pub slow_kvm: bool,
    /// When it was cached, seconds since the epoch.
    pub built_unix: u64,
}

impl KernelInfo {
    /// The `info` file's text.
    pub fn to_text(&self) -> String {
        format!(
            "release={}\nsource={}\nconfig_sha256={}\nslow_kvm={}\nbuilt_unix={}\n",
            self.release,
            self.source.display(),
            self.config_sha256,
            self.slow_kvm,
            self.built_unix
        )
    }

    /// Parses [`to_text`](Self::to_text)'s output; unknown keys are skipped,
    /// missing ones stay default.
    pub fn parse(text: &str) -> Self {
        let mut info = KernelInfo::default();
        for (key, value) in text.lines().filter_map(|l| l.split_once('=')) {
            match key {
                "release" => info.release = value.into(),
                "source" => info.source = value.into(),
                "config_sha256" => info.config_sha256 = value.into(),
                "slow_kvm" => info.slow_kvm = value == "true",
                "built_unix" => info.built_unix = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        info
    }
}

/// One complete entry of `<root>/kernels`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedKernel {
    /// The directory name: release and a hash of source version + config.
    pub key: String,
    /// The entry directory.
    pub dir: PathBuf,
    /// Its `info` file.
    pub info: KernelInfo,
}

impl CachedKernel {
    /// The kernel image.
    pub fn vmlinux(&self) -> PathBuf {
        self.dir.join(KERNEL_FILE)
    }

    /// Where schedulers built against this kernel live.
    pub fn schedulers_dir(&self) -> PathBuf {
        self.dir.join(SCHEDULERS_DIR)
    }

    /// The entry at `dir`, if it is complete (has its kernel).
    pub fn open(dir: &Path) -> Option<CachedKernel> {
        let key = dir.file_name()?.to_str()?.to_owned();
        if key.starts_with('.') || !dir.join(KERNEL_FILE).is_file() {
            return None;
        }
        let info = std::fs::read_to_string(dir.join(INFO_FILE))
            .map(|t| KernelInfo::parse(&t))
            .unwrap_or_default();
        Some(CachedKernel {
            key,
            dir: dir.to_owned(),
            info,
        })
    }
}

/// Every complete cached kernel, newest first (staging directories skipped).
pub fn cached_kernels() -> Vec<CachedKernel> {
    let Some(dir) = kernels_dir() else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut kernels: Vec<CachedKernel> = entries
        .filter_map(|e| CachedKernel::open(&e.ok()?.path()))
        .collect();
    kernels.sort_by(|a, b| (b.info.built_unix, &b.key).cmp(&(a.info.built_unix, &a.key)));
    kernels
}

/// The kernel tests use when `KTSTR_KERNEL` is unset: the newest entry.
pub fn newest_kernel() -> Option<CachedKernel> {
    cached_kernels().into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_round_trips_and_tolerates_unknown_keys() {
        let info = KernelInfo {
            release: "6.12.117".into(),
            source: "/usr/src/linux".into(),
            config_sha256: "ab".repeat(32),
            slow_kvm: true,
            built_unix: 17,
        };
        let text = format!("{}future=1\n", info.to_text());
        assert_eq!(KernelInfo::parse(&text), info);
    }

    #[test]
    fn only_complete_entries_open() {
        let dir = std::env::temp_dir().join(format!("ktstr-cache-test-{}", std::process::id()));
        let entry = dir.join("6.12-abc");
        let staging = dir.join(".tmp-6.12-abc-1");
        std::fs::create_dir_all(&entry).expect("mkdir");
        std::fs::create_dir_all(&staging).expect("mkdir");
        std::fs::write(staging.join(KERNEL_FILE), b"x").expect("write");
        assert_eq!(CachedKernel::open(&entry), None, "no vmlinux yet");
        assert_eq!(CachedKernel::open(&staging), None, "staging");
        std::fs::write(entry.join(KERNEL_FILE), b"x").expect("write");
        let k = CachedKernel::open(&entry).expect("complete");
        assert_eq!(k.key, "6.12-abc");
        assert_eq!(k.schedulers_dir(), entry.join(SCHEDULERS_DIR));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
