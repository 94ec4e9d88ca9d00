//! Snapshots of a running QEMU guest, and restores from them.
//!
//! Guest RAM already lives in shared memory files the host holds (memfds,
//! `memory-backend-file,share=on`), so a snapshot is: pause, QEMU migration with
//! `x-ignore-shared` (device and CPU state only, ~60 KiB), a sparse copy of each RAM
//! segment into the snapshot directory, and a manifest with a key and CRC32C of every
//! file. A restore starts QEMU with `-incoming defer` on fresh RAM filled from those
//! copies, loads the state and resumes; the guest continues where it paused. The key names
//! everything that shapes the booted machine, so a snapshot is never loaded into a
//! different one.
//!
//! A RAM file's CRC covers the pages that hold data, each with its offset ([`sparse_copy`]
//! computes it while copying), so a restore checks exactly what it loads as it loads it,
//! reading only those pages (~100 MiB of a 512 MiB guest at `SysReady`) once, instead of
//! reading and checksumming the whole file before copying it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::config::QemuConfig;
use crate::error::{Error, Result};

/// Bumped whenever the manifest or the set of files changes meaning (2: RAM CRCs cover
/// the data pages with their offsets).
pub const FORMAT_VERSION: u64 = 2;

const MANIFEST: &str = "manifest.json";
const STATE: &str = "state";
/// QMP `query-migrate` polling; migration of ~60 KiB of state takes milliseconds.
const MIGRATE_POLL: Duration = Duration::from_millis(5);
pub(crate) const MIGRATE_TIMEOUT: Duration = Duration::from_secs(60);

/// What the guest does once its snapshot is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSnapshot {
    /// Resume the guest.
    Continue,
    /// Leave it paused (e.g. to kill it next).
    StayPaused,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct RamFile {
    name: String,
    bytes: u64,
    crc: u32,
}

/// A verified snapshot directory.
#[derive(Clone, Debug)]
pub struct QemuSnapshot {
    dir: PathBuf,
    key: String,
    ram: Vec<RamFile>,
}

/// Length and CRC of an image file, remembered per process by the file's identity
/// (device, inode, size, mtime): a restore checks the key twice (opening the snapshot,
/// then before loading it), and a test process restores many times.
fn digest_file(path: &Path) -> Result<String> {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    use std::sync::Mutex;
    type Identity = (PathBuf, u64, u64, u64, i64, i64);
    static SEEN: Mutex<Option<HashMap<Identity, String>>> = Mutex::new(None);
    let m =
        std::fs::metadata(path).map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
    let id = (
        path.into(),
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
    );
    let remembered = SEEN.lock().ok().and_then(|s| s.as_ref()?.get(&id).cloned());
    if let Some(d) = remembered {
        return Ok(d);
    }
    let (len, crc) = crc_file(path)?;
    let digest = format!("{len}:{crc:08x}");
    if let Ok(mut s) = SEEN.lock() {
        s.get_or_insert_with(HashMap::new)
            .insert(id, digest.clone());
    }
    Ok(digest)
}

fn crc_file(path: &Path) -> Result<(u64, u32)> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    Ok((bytes.len() as u64, crc32c::crc32c(&bytes)))
}

/// Everything that shapes the booted machine: images (by content), command line, CPUs,
/// topology, memory, accelerator and the format version.
pub fn snapshot_key(cfg: &QemuConfig) -> Result<String> {
    let initramfs = match &cfg.initramfs {
        Some(p) => digest_file(p)?,
        None => "none".into(),
    };
    Ok(format!(
        "v{FORMAT_VERSION};kernel={};initramfs={initramfs};cmdline={:?};vcpus={};topology={:?};memory_mib={};accel={:?};extra={:?}",
        digest_file(&cfg.kernel)?,
        // The whole command line but the host's TSC rate (which `cpu MHz` may round
        // differently between reads), so a changed default boots a new snapshot.
        crate::command::kernel_cmdline(&cfg.cmdline_extra, None, cfg.accel),
        cfg.vcpus,
        cfg.topology,
        cfg.memory_mib,
        cfg.accel,
        cfg.extra_qemu_args,
    ))
}

impl QemuSnapshot {
    /// Opens `dir` and checks its manifest, its key against `key`, the state file's CRC
    /// and the RAM files' sizes (their data is checked as a restore loads it).
    pub fn open(dir: &Path, key: &str) -> Result<Self> {
        let corrupt = |why: String| Error::SnapshotInvalid {
            dir: dir.to_path_buf(),
            why,
        };
        let text = std::fs::read_to_string(dir.join(MANIFEST))
            .map_err(|e| corrupt(format!("manifest: {e}")))?;
        let m: Value =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("manifest: {e}")))?;
        let version = m["version"].as_u64().unwrap_or(0);
        if version != FORMAT_VERSION {
            return Err(corrupt(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let saved_key = m["key"].as_str().unwrap_or_default();
        if saved_key != key {
            return Err(Error::SnapshotKeyMismatch {
                dir: dir.to_path_buf(),
            });
        }
        let (bytes, crc) = crc_file(&dir.join(STATE))?;
        let (want_bytes, want_crc) = (m["state"]["bytes"].as_u64(), m["state"]["crc"].as_u64());
        if (Some(bytes), Some(u64::from(crc))) != (want_bytes, want_crc) {
            return Err(corrupt(format!(
                "{STATE}: {bytes} bytes crc {crc:08x}, manifest says {want_bytes:?} bytes crc {want_crc:?}"
            )));
        }
        let mut ram = Vec::new();
        for r in m["ram"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default();
            if name.is_empty() || name.contains('/') || name == STATE {
                return Err(corrupt(format!("bad file name {name:?}")));
            }
            let (Some(want_bytes), Some(crc)) = (
                r["bytes"].as_u64(),
                r["crc"].as_u64().and_then(|c| u32::try_from(c).ok()),
            ) else {
                return Err(corrupt(format!("{name}: no size or crc")));
            };
            let path = dir.join(name);
            let bytes = std::fs::metadata(&path)
                .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
                .len();
            if bytes != want_bytes {
                return Err(corrupt(format!(
                    "{name}: {bytes} bytes, manifest says {want_bytes}"
                )));
            }
            ram.push(RamFile {
                name: name.to_owned(),
                bytes,
                crc,
            });
        }
        if ram.is_empty() {
            return Err(corrupt("no RAM files".into()));
        }
        Ok(QemuSnapshot {
            dir: dir.to_path_buf(),
            key: key.to_string(),
            ram,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The device/CPU state stream QEMU loads with `migrate-incoming`.
    pub(crate) fn state_path(&self) -> PathBuf {
        self.dir.join(STATE)
    }

    /// Fills fresh RAM segments (`ram`, in guest-physical order, each with its length)
    /// from the snapshot's copies, checking each against the manifest as it goes: a
    /// corrupt file is [`Error::SnapshotInvalid`] before any guest runs on it.
    pub(crate) fn load_ram(&self, ram: &[(File, usize)]) -> Result<()> {
        if self.ram.len() != ram.len() {
            return Err(Error::SnapshotKeyMismatch {
                dir: self.dir.clone(),
            });
        }
        for (saved, (to, len)) in self.ram.iter().zip(ram) {
            if saved.bytes != *len as u64 {
                return Err(Error::SnapshotKeyMismatch {
                    dir: self.dir.clone(),
                });
            }
            let from = self.dir.join(&saved.name);
            let src =
                File::open(&from).map_err(|e| Error::io(format!("open {}", from.display()), e))?;
            let copied = sparse_copy(&src, to, &format!("restore RAM from {}", from.display()))?;
            if copied.crc != saved.crc {
                return Err(Error::SnapshotInvalid {
                    dir: self.dir.clone(),
                    why: format!(
                        "{}: data crc {:08x}, manifest says {:08x}",
                        saved.name, copied.crc, saved.crc
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What [`sparse_copy`] wrote: bytes, and CRC32C over each page holding data, preceded by
/// its offset (little-endian u64). Zero pages count as holes either way, so the guest's
/// RAM and its snapshot file give the same CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Copied {
    pub(crate) written: u64,
    pub(crate) crc: u32,
}

/// Copies `from` into `to` (resized to `from`'s length) writing only the pages that hold
/// data: guest RAM is mostly untouched, so snapshots stay small on disk and restores write
/// only what the guest had written. Holes are found with SEEK_DATA/SEEK_HOLE, then pages
/// of zeros inside data extents are skipped too; runs of data pages go in one write.
/// `what` names the copy in errors.
pub(crate) fn sparse_copy(from: &File, to: &File, what: &str) -> Result<Copied> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::FileExt;
    const PAGE: usize = 4096;
    const CHUNK: usize = 1 << 20;
    // Compared as a slice: a `memcmp`, fast in unoptimised builds too.
    static ZERO: [u8; PAGE] = [0; PAGE];
    let len = from
        .metadata()
        .map_err(|e| Error::io(format!("{what}: stat"), e))?
        .len();
    to.set_len(0)
        .and_then(|_| to.set_len(len))
        .map_err(|e| Error::io(format!("{what}: size"), e))?;
    let fd = from.as_raw_fd();
    let seek = |off: u64, whence: i32| -> Option<u64> {
        let off = i64::try_from(off).ok()?;
        // SAFETY: lseek on an fd we own; a negative result (ENXIO past the data) is handled.
        let r = unsafe { libc::lseek(fd, off, whence) };
        u64::try_from(r).ok()
    };
    let mut buf = vec![0u8; CHUNK];
    let mut out = Copied { written: 0, crc: 0 };
    let mut pos = 0u64;
    while pos < len {
        let Some(data) = seek(pos, libc::SEEK_DATA) else {
            break;
        };
        let end = seek(data, libc::SEEK_HOLE).unwrap_or(len).min(len);
        let mut at = data;
        while at < end {
            let n = ((end - at) as usize).min(CHUNK);
            from.read_exact_at(&mut buf[..n], at)
                .map_err(|e| Error::io(format!("{what}: read"), e))?;
            // The run of data pages not yet written: [run, i) in pages of `buf`.
            let mut run = None;
            let pages = n.div_ceil(PAGE);
            for i in 0..=pages {
                let page = (i < pages).then(|| &buf[i * PAGE..((i + 1) * PAGE).min(n)]);
                match page {
                    Some(p) if p != &ZERO[..p.len()] => {
                        let offset = at + (i * PAGE) as u64;
                        out.crc = crc32c::crc32c_append(out.crc, &offset.to_le_bytes());
                        out.crc = crc32c::crc32c_append(out.crc, p);
                        run.get_or_insert(i);
                    }
                    _ => {
                        if let Some(first) = run.take() {
                            let bytes = &buf[first * PAGE..(i * PAGE).min(n)];
                            to.write_all_at(bytes, at + (first * PAGE) as u64)
                                .map_err(|e| Error::io(format!("{what}: write"), e))?;
                            out.written += bytes.len() as u64;
                        }
                    }
                }
            }
            at += n as u64;
        }
        pos = end;
    }
    Ok(out)
}

/// `exec:` URIs run through `/bin/sh -c`; accept only paths that need no quoting.
pub(crate) fn shell_safe(path: &Path) -> Result<&str> {
    let s = path
        .to_str()
        .ok_or_else(|| Error::InvalidConfig(format!("{} is not UTF-8", path.display())))?;
    let ok = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
    if !ok {
        return Err(Error::InvalidConfig(format!(
            "snapshot path {s:?} may only hold letters, digits and /._-+"
        )));
    }
    Ok(s)
}

/// Polls `query-migrate` until the migration completes.
pub(crate) fn wait_migration(
    exec: &dyn Fn(&str, Value) -> Result<Value>,
    what: &str,
) -> Result<()> {
    let give_up = Instant::now() + MIGRATE_TIMEOUT;
    loop {
        let v = exec("query-migrate", Value::Null)?;
        match v["status"].as_str() {
            Some("completed") => return Ok(()),
            Some("failed") | Some("cancelled") => {
                return Err(Error::Qmp(format!(
                    "{what} failed: {}",
                    v.get("error-desc").unwrap_or(&v)
                )));
            }
            _ if Instant::now() > give_up => {
                return Err(Error::Qmp(format!(
                    "{what} did not finish within {MIGRATE_TIMEOUT:?}"
                )));
            }
            _ => std::thread::sleep(MIGRATE_POLL),
        }
    }
}

/// Skip RAM in the migration stream: it is in the shared memory files.
pub(crate) fn ignore_shared_args() -> Value {
    json!({ "capabilities": [ { "capability": "x-ignore-shared", "state": true } ] })
}

/// Writes the manifest last, so a directory with a manifest is complete. `ram`: each RAM
/// file with what [`sparse_copy`] reported writing it.
pub(crate) fn write_manifest(
    dir: &Path,
    key: &str,
    ram: &[(PathBuf, Copied)],
) -> Result<QemuSnapshot> {
    let (state_bytes, state_crc) = crc_file(&dir.join(STATE))?;
    let mut ram_entries = Vec::new();
    let mut ram_files = Vec::new();
    for (p, copied) in ram {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let bytes = std::fs::metadata(p)
            .map_err(|e| Error::io(format!("stat {}", p.display()), e))?
            .len();
        let crc = copied.crc;
        ram_entries.push(json!({ "name": name, "bytes": bytes, "crc": crc }));
        ram_files.push(RamFile { name, bytes, crc });
    }
    let manifest = json!({
        "version": FORMAT_VERSION,
        "key": key,
        "state": { "bytes": state_bytes, "crc": state_crc },
        "ram": ram_entries,
    });
    let tmp = dir.join(format!("{MANIFEST}.tmp"));
    std::fs::write(&tmp, manifest.to_string())
        .map_err(|e| Error::io("write snapshot manifest", e))?;
    std::fs::rename(&tmp, dir.join(MANIFEST)).map_err(|e| Error::io("rename manifest", e))?;
    Ok(QemuSnapshot {
        dir: dir.to_path_buf(),
        key: key.to_string(),
        ram: ram_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_copy_keeps_data_and_skips_zeros() {
        use std::io::{Seek, SeekFrom, Write};
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let mut f = std::fs::File::create(&a).unwrap();
        f.set_len(8 << 20).unwrap();
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(&[0u8; 4096]).unwrap(); // data extent, all zero
        f.write_all(b"payload").unwrap();
        drop(f);
        let from = File::open(&a).unwrap();
        // A longer stale destination is truncated first, so the copy is exact.
        std::fs::write(&b, vec![9u8; 9 << 20]).unwrap();
        let to = File::options().write(true).open(&b).unwrap();
        let copied = sparse_copy(&from, &to, "test copy").unwrap();
        assert_eq!(copied.written, 4096, "only the page with bytes is written");
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        // The copy reads back to the same CRC; a moved page does not.
        let back = sparse_copy(&File::open(&b).unwrap(), &to_scratch(&dir), "back").unwrap();
        assert_eq!(back, copied);
        let mut f = File::options().write(true).open(&b).unwrap();
        f.seek(SeekFrom::Start((3 << 20) + 4096)).unwrap();
        f.write_all(&[0u8; 7]).unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(b"payload").unwrap();
        drop(f);
        let moved = sparse_copy(&File::open(&b).unwrap(), &to_scratch(&dir), "moved").unwrap();
        assert_eq!(moved.written, copied.written);
        assert_ne!(moved.crc, copied.crc);
    }

    fn to_scratch(dir: &tempfile::TempDir) -> File {
        File::create(dir.path().join("scratch")).unwrap()
    }

    #[test]
    fn only_plain_paths_go_into_exec_uris() {
        assert!(shell_safe(Path::new("/tmp/ktstr-snap.1/state")).is_ok());
        for bad in ["/tmp/a b", "/tmp/a;rm", "/tmp/$x", "/tmp/'q'"] {
            assert!(shell_safe(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_manifest_detects_corruption_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STATE), b"state bytes").unwrap();
        let ram = dir.path().join("ram0");
        std::fs::write(&ram, vec![7u8; 4096]).unwrap();
        let copied = sparse_copy(&File::open(&ram).unwrap(), &to_scratch(&dir), "c").unwrap();
        write_manifest(dir.path(), "k1", &[(ram.clone(), copied)]).unwrap();
        let s = QemuSnapshot::open(dir.path(), "k1").unwrap();
        let want = RamFile {
            name: "ram0".into(),
            bytes: 4096,
            crc: copied.crc,
        };
        assert_eq!(s.ram, vec![want]);
        let guest = || [(crate::memory::create_ram(4096).unwrap(), 4096)];
        s.load_ram(&guest()).unwrap();
        assert!(matches!(
            QemuSnapshot::open(dir.path(), "k2"),
            Err(Error::SnapshotKeyMismatch { .. })
        ));
        let mut bytes = std::fs::read(&ram).unwrap();
        bytes[100] ^= 1;
        std::fs::write(&ram, bytes).unwrap();
        // Caught while loading, before any guest runs on it.
        let s = QemuSnapshot::open(dir.path(), "k1").unwrap();
        assert!(matches!(
            s.load_ram(&guest()),
            Err(Error::SnapshotInvalid { .. })
        ));
        // Wrong size or a corrupt state file: caught when opening.
        std::fs::write(dir.path().join(STATE), b"state byteZ").unwrap();
        assert!(matches!(
            QemuSnapshot::open(dir.path(), "k1"),
            Err(Error::SnapshotInvalid { .. })
        ));
    }
}
