//! Build a Linux initramfs (newc cpio) on the host.
//!
//! * [`Archive`] collects directories, files, symlinks and character devices
//!   and writes a deterministic archive: entries sorted by path, mtime 0,
//!   uid/gid 0, inode numbers assigned in order. Parents are created
//!   implicitly (mode 0755); adding the same path twice is
//!   [`Error::Duplicate`].
//! * [`Archive::add_elf_with_libs`] packs a host binary together with its
//!   ELF interpreter and every `DT_NEEDED` library, resolved recursively the
//!   way the dynamic loader would.
//!
//! ```no_run
//! use ktstr_initramfs::Archive;
//!
//! let mut a = Archive::new();
//! a.add_file("bin/busybox", 0o755, std::fs::read("/bin/busybox")?)?;
//! a.add_symlink("bin/sh", "busybox")?;
//! a.add_char_dev("dev/console", 0o600, 5, 1)?;
//! a.add_elf_with_libs("bin/agent", "/usr/bin/true")?;
//! a.add_file("init", 0o755, b"#!/bin/sh\nexec /bin/agent\n".to_vec())?;
//! std::fs::write("initramfs.cpio", a.to_bytes()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod archive;
mod elf;
mod error;
mod newc;
mod path;
mod resolve;

pub use archive::{Archive, Entry};
pub use error::Error;
pub use resolve::{DEFAULT_LIB_DIRS, elf_closure};
