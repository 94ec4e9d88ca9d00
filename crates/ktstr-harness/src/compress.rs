//! Optional initramfs compression, by the kernel-supported formats.
//!
//! Measured on this project's host (QEMU TCG, 6.12 vmlinux, 2 vCPUs,
//! `examples/initramfs_compression.rs`, 8 interleaved rounds, median VM
//! start → `SysReady`): a 33 MiB archive (unstripped debug init) boots in
//! 3.78 s uncompressed, 3.88 s as lz4 (15.8 MiB), 4.02 s as zstd (9.7 MiB);
//! a 15 MiB one in 2.69 / 2.64 / 2.71 s (a tie within noise). QEMU hands
//! the file to the guest for free while the decompressor runs emulated, so
//! [`Compression::None`] is the default: never slower beyond noise, and no
//! external tool. What does pay is a smaller archive: see
//! [`GuestImage::strip_debug`](crate::GuestImage::strip_debug). The others
//! shell out to the `zstd` / `lz4` tools.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::error::HarnessError;

/// How the cached archive is stored and handed to the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain newc cpio (fastest boot, measured).
    #[default]
    None,
    /// zstd (kernel needs `CONFIG_RD_ZSTD`).
    Zstd,
    /// lz4 legacy frame (kernel needs `CONFIG_RD_LZ4`).
    Lz4,
}

impl Compression {
    /// File suffix of the cached archive.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "cpio",
            Compression::Zstd => "cpio.zst",
            Compression::Lz4 => "cpio.lz4",
        }
    }

    /// Compress `data` (identity for `None`).
    pub fn apply(self, data: Vec<u8>) -> Result<Vec<u8>, HarnessError> {
        let (tool, args): (&'static str, &[&str]) = match self {
            Compression::None => return Ok(data),
            Compression::Zstd => ("zstd", &["-q", "-c", "-3"]),
            // The kernel's unlz4 reads only the legacy frame format (-l).
            Compression::Lz4 => ("lz4", &["-q", "-c", "-l"]),
        };
        let fail = |detail: String| HarnessError::Compress { tool, detail };
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        let stdin = child.stdin.take();
        let writer = std::thread::spawn(move || {
            stdin
                .map(|mut s| s.write_all(&data))
                .transpose()
                .map(|_| ())
        });
        let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
        let wrote = writer
            .join()
            .map_err(|_| fail("writer thread panicked".into()))?;
        wrote.map_err(|e| fail(format!("write input: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(out.stdout)
    }
}
