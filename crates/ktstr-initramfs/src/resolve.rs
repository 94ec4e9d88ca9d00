//! Pack an ELF binary with its interpreter and shared libraries, found by
//! the dynamic loader's rules: `DT_RPATH` (only without `DT_RUNPATH`), then
//! `DT_RUNPATH`, then the default directories. `$ORIGIN` expands to the
//! directory of the object that carries the path.
//!
//! Invariant: a library lands in the guest at the path the guest's loader
//! will look it up (for default directories that is the host path), with the
//! contents of the host file after following symlinks.

use std::collections::{HashSet, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::archive::Archive;
use crate::elf::{self, ElfInfo};
use crate::error::Error;

/// Searched after the object's own paths (Debian multiarch first; no
/// ld.so.cache lookup).
pub const DEFAULT_LIB_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// One object to place: where it comes from and where it goes.
struct Placed {
    host: PathBuf,
    guest: String,
    mode: u32,
    data: Vec<u8>,
    info: ElfInfo,
}

fn load(host: &Path, guest: String) -> Result<Placed, Error> {
    let data = std::fs::read(host).map_err(|e| Error::io(host, e))?;
    let mode = std::fs::metadata(host)
        .map_err(|e| Error::io(host, e))?
        .permissions()
        .mode()
        & 0o7777;
    let info = elf::parse(host, &data)?;
    Ok(Placed {
        host: host.to_owned(),
        guest,
        mode,
        data,
        info,
    })
}

/// Directory part of a `/`-path, "/" for top-level names.
fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// Collapse `.` and `..` lexically, as the loader's string-based lookup
/// does: `$ORIGIN/../lib` from `/opt/x/bin` is `/opt/x/lib` in the guest.
fn lexical(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `$ORIGIN` / `${ORIGIN}` → `origin`. Other tokens stay, so they match nothing.
fn expand(dir: &str, origin: &str) -> String {
    dir.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
}

/// Search directories for `obj`'s direct dependencies as (host, guest) pairs.
fn search_dirs(obj: &Placed) -> Vec<(String, String)> {
    let host_origin = obj.host.to_string_lossy();
    let host_origin = dir_of(&host_origin).to_owned();
    let guest_abs = format!("/{}", obj.guest.trim_start_matches('/'));
    let guest_origin = dir_of(&guest_abs).to_owned();
    let own = if obj.info.runpath.is_empty() {
        &obj.info.rpath
    } else {
        &obj.info.runpath
    };
    let mut dirs: Vec<(String, String)> = own
        .iter()
        .map(|d| (expand(d, &host_origin), expand(d, &guest_origin)))
        .collect();
    dirs.extend(
        DEFAULT_LIB_DIRS
            .iter()
            .map(|d| ((*d).to_owned(), (*d).to_owned())),
    );
    dirs
}

/// Find `name` for `user`; wrong-machine candidates are skipped like the
/// loader does (e.g. an i386 library in /lib).
fn find(name: &str, user: &Placed, machine: u16) -> Result<Placed, Error> {
    let candidates = if name.contains('/') {
        vec![(name.to_owned(), lexical(name))]
    } else {
        search_dirs(user)
            .into_iter()
            .map(|(h, g)| (format!("{h}/{name}"), lexical(&format!("{g}/{name}"))))
            .collect()
    };
    for (host, guest) in &candidates {
        let host = Path::new(host);
        if !host.is_file() {
            continue;
        }
        match load(host, guest.clone()) {
            Ok(p) if p.info.machine == machine => return Ok(p),
            Ok(_) | Err(Error::NotElf { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::LibraryNotFound {
        name: name.to_owned(),
        needed_by: user.host.clone(),
        searched: candidates
            .iter()
            .map(|(h, _)| dir_of(h))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The binary, its interpreter and the transitive closure of its needs.
fn plan(guest: &str, host: &Path) -> Result<Vec<Placed>, Error> {
    let main = load(host, guest.to_owned())?;
    let machine = main.info.machine;
    let mut out = Vec::new();
    let mut queue = VecDeque::new();
    let mut seen_names: HashSet<String> = HashSet::new();
    if let Some(interp) = &main.info.interp {
        let p = load(Path::new(interp), interp.clone())?;
        seen_names.insert(file_name(interp).to_owned());
        queue.push_back(p);
    }
    queue.push_front(main);
    while let Some(obj) = queue.pop_front() {
        for name in &obj.info.needed {
            // The loader loads each soname once, whoever asks for it.
            if seen_names.insert(name.clone()) {
                queue.push_back(find(name, &obj, machine)?);
            }
        }
        out.push(obj);
    }
    Ok(out)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The host files [`Archive::add_elf_with_libs`] packs for `host`: the
/// binary, its interpreter and every library it needs, in that order (what
/// a cache of archives must watch to know one is still current).
pub fn elf_closure(host: &Path) -> Result<Vec<PathBuf>, Error> {
    Ok(plan("", host)?.into_iter().map(|p| p.host).collect())
}

impl Archive {
    /// Add the host ELF binary `host` at `guest`, plus its `PT_INTERP` and
    /// every `DT_NEEDED` library (recursively) at the paths the guest's
    /// loader will search. A static binary adds just itself. Libraries
    /// already present with identical contents are shared, so several
    /// binaries can be packed into one archive.
    pub fn add_elf_with_libs(
        &mut self,
        guest: &str,
        host: impl AsRef<Path>,
    ) -> Result<&mut Self, Error> {
        let mut placed = plan(guest, host.as_ref())?.into_iter();
        if let Some(main) = placed.next() {
            self.add_file(&main.guest, main.mode, main.data)?;
        }
        for p in placed {
            self.add_file_once(&p.guest, p.mode, p.data)?;
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_and_dirs() {
        assert_eq!(dir_of("/a/b/c"), "/a/b");
        assert_eq!(dir_of("/init"), "/");
        assert_eq!(expand("$ORIGIN/../lib", "/x/bin"), "/x/bin/../lib");
        assert_eq!(expand("${ORIGIN}/l", "/o"), "/o/l");
        assert_eq!(
            file_name("/lib64/ld-linux-x86-64.so.2"),
            "ld-linux-x86-64.so.2"
        );
    }
}
