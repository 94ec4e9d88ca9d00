//! L1's QEMU: by default a newer one than the system's, fetched once from
//! Debian bookworm-backports by package name and cached; the rest of the
//! project keeps the system QEMU.
//!
//! Why: QEMU 7.2's TCG sometimes leaves a pending interrupt undelivered in
//! L1 (docs/performance.md: L1 spins with IF=1 and its timer vector in
//! IRR), about once in 17 back-to-back 2-vCPU L2 boots. The packages'
//! binary runs on bookworm's libraries; its firmware comes from the
//! unpacked tree through `-L`.
//!
//! Trust: the index comes over HTTPS from deb.debian.org and each `.deb`
//! must match the SHA256 the index gives for it. Cache layout under
//! `<cache>/nested/qemu-backports/`: `Packages`, `debs/*.deb`, and
//! `unpacked/` (renamed into place only when complete; reused without the
//! network afterwards; `unpacked/VERSIONS` says what it holds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::deb;
use crate::error::Error;
use crate::host_command::run;

/// Overrides L1's QEMU: `system` for `qemu-system-x86_64` on PATH, or the
/// path of another `qemu-system-x86_64` (which then finds its own firmware).
pub const ENV: &str = "KTSTR_NESTED_QEMU";

/// The Debian archive the packages come from.
pub const MIRROR: &str = "https://deb.debian.org/debian";

/// The package index, relative to [`MIRROR`].
pub const INDEX: &str = "dists/bookworm-backports/main/binary-amd64/Packages.xz";

/// The packages unpacked together: the binary, its common and data files
/// (the option ROMs `-kernel` boots through), and the SeaBIOS it was built
/// against (microvm's `bios-microvm.bin`).
pub const PACKAGES: [&str; 4] = [
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "seabios",
];

/// The QEMU L1 runs under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L1Qemu {
    /// `None`: `qemu-system-x86_64` on PATH.
    pub binary: Option<PathBuf>,
    /// Firmware directories passed as `-L`, searched in order.
    pub firmware_dirs: Vec<PathBuf>,
    /// What it is, for progress lines: `system`, a path, or the versions.
    pub label: String,
}

impl L1Qemu {
    /// The system QEMU on PATH, as every other tier uses.
    pub fn system() -> Self {
        L1Qemu {
            binary: None,
            firmware_dirs: Vec::new(),
            label: "system qemu-system-x86_64".to_owned(),
        }
    }

    /// QEMU's arguments for the firmware directories.
    pub fn firmware_args(&self) -> Vec<String> {
        self.firmware_dirs
            .iter()
            .flat_map(|d| ["-L".to_owned(), d.display().to_string()])
            .collect()
    }
}

/// What `choice` (the `--l1-qemu` option, else [`ENV`]) selects: `system`,
/// `backports` (the default: fetched once, cached under
/// `<ktstr cache>/nested/qemu-backports`), or the path of a QEMU binary.
pub fn resolve(choice: Option<&str>, progress: &mut dyn FnMut(&str)) -> Result<L1Qemu, Error> {
    let env = std::env::var(ENV).ok();
    match choice.or(env.as_deref()).filter(|c| !c.is_empty()) {
        Some("system") => Ok(L1Qemu::system()),
        None | Some("backports") => {
            let cache = ktstr_testenv::cache_root().ok_or_else(|| {
                ktstr_testenv::Missing::new("a cache directory", "set HOME or XDG_CACHE_HOME")
            })?;
            fetch(&cache.join("nested").join("qemu-backports"), progress)
        }
        Some(path) => Ok(L1Qemu {
            binary: Some(PathBuf::from(path)),
            firmware_dirs: Vec::new(),
            label: path.to_owned(),
        }),
    }
}

/// The cached backports QEMU in `dir`, fetched and unpacked first when the
/// cache lacks it.
pub fn fetch(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<L1Qemu, Error> {
    let unpacked = dir.join("unpacked");
    if !unpacked.is_dir() {
        let debs = download(dir, progress)?;
        progress(&format!("unpack {} packages", debs.len()));
        deb::unpack(
            &debs.iter().map(|(d, _)| d.clone()).collect::<Vec<_>>(),
            &unpacked,
        )?;
        let versions: Vec<String> = debs.iter().map(|(_, v)| v.clone()).collect();
        let file = unpacked.join("VERSIONS");
        std::fs::write(&file, versions.join("\n") + "\n")
            .map_err(|e| Error::io("write", &file, e))?;
    }
    let binary = unpacked.join("usr/bin/qemu-system-x86_64");
    if !binary.is_file() {
        return Err(Error::QemuFetch {
            what: format!("no {} in the unpacked packages", binary.display()),
            fix: format!("remove {} to fetch again", dir.display()),
        });
    }
    let versions = std::fs::read_to_string(unpacked.join("VERSIONS")).unwrap_or_default();
    let qemu = L1Qemu {
        binary: Some(binary.clone()),
        firmware_dirs: vec![
            unpacked.join("usr/share/qemu"),
            unpacked.join("usr/share/seabios"),
        ],
        label: format!(
            "{} ({})",
            binary.display(),
            versions.lines().collect::<Vec<_>>().join(", ")
        ),
    };
    // The binary links bookworm's libraries: one missing says so here,
    // not as an L1 that never starts.
    run(
        "run L1's QEMU (a library it needs may be missing; see ldd)",
        Command::new(&binary).arg("--version"),
    )?;
    Ok(qemu)
}

/// One package as the index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    version: String,
    filename: String,
    sha256: String,
}

/// Downloads the index and every [`PACKAGES`] `.deb` into `dir`, each
/// checked against the index's SHA256; `(deb, "package version")`.
fn download(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<Vec<(PathBuf, String)>, Error> {
    let debs_dir = dir.join("debs");
    std::fs::create_dir_all(&debs_dir).map_err(|e| Error::io("create", &debs_dir, e))?;
    let index_xz = dir.join("Packages.xz");
    progress(&format!("download {MIRROR}/{INDEX}"));
    curl(&format!("{MIRROR}/{INDEX}"), &index_xz)?;
    let index = run(
        "decompress the backports package index",
        Command::new("xz").arg("-dc").arg(&index_xz),
    )?;
    let entries = parse_index(&String::from_utf8_lossy(&index.stdout));
    let mut out = Vec::new();
    for package in PACKAGES {
        let entry = entries.get(package).ok_or_else(|| Error::QemuFetch {
            what: format!("the index {MIRROR}/{INDEX} lists no package {package}"),
            fix: format!("point {ENV} at a qemu-system-x86_64 (or `system` for the one on PATH)"),
        })?;
        let name = entry.filename.rsplit('/').next().unwrap_or(package);
        let deb = debs_dir.join(name);
        if sha256_of(&deb).as_deref() != Some(entry.sha256.as_str()) {
            progress(&format!("download {package} {}", entry.version));
            curl(&format!("{MIRROR}/{}", entry.filename), &deb)?;
            let got = sha256_of(&deb).unwrap_or_default();
            if got != entry.sha256 {
                return Err(Error::QemuFetch {
                    what: format!(
                        "{} has SHA256 {got}, the index says {}",
                        deb.display(),
                        entry.sha256
                    ),
                    fix: "a proxy or mirror altered it; run again, or set the QEMU with \
                          KTSTR_NESTED_QEMU"
                        .to_owned(),
                });
            }
        }
        out.push((deb, format!("{package} {}", entry.version)));
    }
    Ok(out)
}

/// `curl` of `url` into `to`; a failure says whether the network is the
/// cause and how to run without it.
fn curl(url: &str, to: &Path) -> Result<(), Error> {
    let out = Command::new("curl")
        .args(["-sSfL", "--retry", "2", "--connect-timeout", "20", "-o"])
        .arg(to)
        .arg(url)
        .output()
        .map_err(|e| Error::QemuFetch {
            what: format!("cannot run curl to download {url}: {e}"),
            fix: format!("install curl, or point {ENV} at a qemu-system-x86_64"),
        })?;
    if out.status.success() {
        return Ok(());
    }
    // curl's exit codes 5-7 and 28: no proxy, no DNS, no connection, timeout.
    let network = matches!(out.status.code(), Some(5..=7 | 28));
    Err(Error::QemuFetch {
        what: format!(
            "download {url}{}: {}",
            if network { " (no network?)" } else { "" },
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        fix: format!(
            "L1's QEMU comes from deb.debian.org once, then from the cache; without \
             network set {ENV}=system (QEMU 7.2's TCG stalls L1 about once in 17 \
             2-vCPU L2 boots) or a path to another qemu-system-x86_64"
        ),
    })
}

/// Hex SHA256 of `file`, `None` when it cannot be read.
fn sha256_of(file: &Path) -> Option<String> {
    std::fs::read(file)
        .ok()
        .map(|bytes| format!("{:x}", Sha256::digest(bytes)))
}

/// The [`PACKAGES`] stanzas of a Debian `Packages` index; a package listed
/// more than once keeps its last stanza with all fields present.
fn parse_index(text: &str) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
        };
        let Some(package) = field("Package").filter(|p| PACKAGES.contains(&p.as_str())) else {
            continue;
        };
        if let (Some(version), Some(filename), Some(sha256)) =
            (field("Version"), field("Filename"), field("SHA256"))
        {
            out.insert(
                package,
                Entry {
                    version,
                    filename,
                    sha256,
                },
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_yields_each_wanted_package_with_its_file_and_checksum() {
        let index = "Package: qemu-system-x86\nVersion: 1:10.0.2\nDepends: seabios\n\
                     Filename: pool/main/q/qemu/qemu-system-x86_10.0.2_amd64.deb\n\
                     SHA256: ab12\n\nPackage: qemu-system-x86-xen\nVersion: 1\n\
                     Filename: x.deb\nSHA256: 00\n\nPackage: seabios\nVersion: 1.16.3\n\
                     Filename: pool/main/s/seabios/seabios_1.16.3_all.deb\n";
        let entries = parse_index(index);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(
            entries["qemu-system-x86"],
            Entry {
                version: "1:10.0.2".to_owned(),
                filename: "pool/main/q/qemu/qemu-system-x86_10.0.2_amd64.deb".to_owned(),
                sha256: "ab12".to_owned(),
            }
        );
    }

    #[test]
    fn system_and_paths_are_taken_as_given_and_firmware_becomes_dash_l() {
        let mut quiet = |_: &str| {};
        assert_eq!(
            resolve(Some("system"), &mut quiet).expect("system"),
            L1Qemu::system()
        );
        let other = resolve(Some("/opt/q/qemu-system-x86_64"), &mut quiet).expect("path");
        assert_eq!(
            other.binary.as_deref(),
            Some(Path::new("/opt/q/qemu-system-x86_64"))
        );
        let with_fw = L1Qemu {
            firmware_dirs: vec!["/a".into(), "/b".into()],
            ..L1Qemu::system()
        };
        assert_eq!(with_fw.firmware_args(), ["-L", "/a", "-L", "/b"]);
    }

    #[test]
    fn a_refused_download_says_the_network_may_be_missing_and_how_to_do_without() {
        let d = tempfile::tempdir().expect("tempdir");
        // Port 9 (discard) on loopback: nothing listens, curl exits 7.
        let e = curl("http://127.0.0.1:9/Packages.xz", &d.path().join("p"))
            .expect_err("nothing listens there");
        let text = e.to_string();
        assert!(text.contains("(no network?)"), "{text}");
        assert!(text.contains(&format!("{ENV}=system")), "{text}");
    }

    #[test]
    fn a_checksum_is_lowercase_hex_of_the_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join("x");
        std::fs::write(&f, b"abc").expect("write");
        assert_eq!(
            sha256_of(&f).as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(sha256_of(&d.path().join("missing")), None);
    }
}
