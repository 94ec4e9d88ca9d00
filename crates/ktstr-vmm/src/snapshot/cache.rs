//! A cache of booted snapshots, keyed by everything that shapes the booted
//! state. Location: `$KTSTR_CACHE_DIR/vmm-snapshots`, else `target/ktstr/snapshots` under
//! the current directory. A file that fails any check (format, checksum,
//! key) is deleted and rebuilt; it is never half-loaded.

use std::path::{Path, PathBuf};

use super::SnapshotError;
use super::file::{self, FORMAT_VERSION};
use crate::config::{GuestImage, VmConfig};

/// The text every cached snapshot stores and is compared against exactly,
/// so two boots can never share a file even if the file names collided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheKey {
    pub material: String,
}

fn digest(bytes: &[u8]) -> String {
    format!("{}:{:08x}", bytes.len(), crc32c::crc32c(bytes))
}

impl CacheKey {
    /// Hashes the kernel and initramfs bytes, and records vCPUs, topology, memory,
    /// the caller's command line, the compat mode and the format version.
    /// `extra` is whatever else shapes the snapshot that the config does not
    /// hold: the trigger, attached devices (e.g. a virtio-console).
    pub fn for_config(config: &VmConfig, extra: &str) -> Result<Self, SnapshotError> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| SnapshotError::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let image = match &config.image {
            Some(GuestImage::Kernel(p)) => format!("kernel={}", digest(&read(p)?)),
            Some(GuestImage::Raw { code, load_addr }) => {
                format!("raw={}@{load_addr:#x}", digest(code))
            }
            None => "none".into(),
        };
        let initramfs = match &config.initramfs {
            Some(p) => digest(&read(p)?),
            None => "none".into(),
        };
        Ok(Self {
            material: format!(
                "format={FORMAT_VERSION};{image};initramfs={initramfs};vcpus={};topology={:?};memory_mib={};cmdline={:?};compat={:?};boot_cuts={};extra={extra:?}",
                config.vcpus,
                config.topology,
                config.memory_mib,
                config.cmdline_extra,
                config.compat,
                config.slow_host_boot_cuts
            ),
        })
    }

    /// A file name derived from the material (the material itself is checked on load).
    pub fn file_name(&self) -> String {
        let m = self.material.as_bytes();
        let rev: Vec<u8> = m.iter().rev().copied().collect();
        format!(
            "v{FORMAT_VERSION}-{:08x}{:08x}.snap",
            crc32c::crc32c(m),
            crc32c::crc32c(&rev)
        )
    }
}

pub struct SnapshotCache {
    dir: PathBuf,
}

/// Whether [`SnapshotCache::get_or_build`] found a good file or built one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheResult {
    Hit(PathBuf),
    /// Built; `replaced` says why an existing file was thrown away.
    Built {
        path: PathBuf,
        replaced: Option<String>,
    },
}

impl CacheResult {
    pub fn path(&self) -> &Path {
        match self {
            CacheResult::Hit(p) | CacheResult::Built { path: p, .. } => p,
        }
    }
}

impl SnapshotCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$KTSTR_CACHE_DIR/vmm-snapshots` (the root every ktstr cache lives
    /// under), else `./target/ktstr/snapshots`.
    pub fn from_env() -> Self {
        let dir = std::env::var_os("KTSTR_CACHE_DIR")
            .filter(|d| !d.is_empty())
            .map(|d| PathBuf::from(d).join("vmm-snapshots"))
            .unwrap_or_else(|| PathBuf::from("target/ktstr/snapshots"));
        Self::new(dir)
    }

    pub fn path_for(&self, key: &CacheKey) -> PathBuf {
        self.dir.join(key.file_name())
    }

    /// Returns a verified snapshot for `key`, calling `build(path)` to create
    /// it when it is missing or fails any check (format, checksums, key).
    pub fn get_or_build(
        &self,
        key: &CacheKey,
        build: impl FnOnce(&Path) -> Result<(), crate::VmmError>,
    ) -> Result<CacheResult, crate::VmmError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| SnapshotError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let path = self.path_for(key);
        let mut replaced = None;
        if path.exists() {
            match check(&path, key) {
                Ok(()) => return Ok(CacheResult::Hit(path)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cached snapshot is unusable; rebuilding");
                    replaced = Some(e.to_string());
                    std::fs::remove_file(&path).map_err(|source| SnapshotError::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
            }
        }
        build(&path)?;
        check(&path, key)?;
        Ok(CacheResult::Built { path, replaced })
    }
}

/// Full validation, memory checksum included.
pub fn check(path: &Path, key: &CacheKey) -> Result<(), SnapshotError> {
    let loaded = file::open(path, true)?;
    if loaded.machine.meta.key != key.material {
        return Err(SnapshotError::KeyMismatch);
    }
    Ok(())
}
