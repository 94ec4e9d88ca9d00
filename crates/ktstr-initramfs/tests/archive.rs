//! Build archives, read them back with an independent newc reader, and pack
//! real host binaries.

use std::collections::BTreeMap;

use ktstr_initramfs::{Archive, Error};

/// One parsed newc member.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// Tiny newc reader: name → member, in archive order; checks the trailer.
fn read_newc(mut b: &[u8]) -> Vec<(String, Member)> {
    let total = b.len();
    let mut out = Vec::new();
    loop {
        let off = total - b.len();
        assert_eq!(&b[..6], b"070701", "magic at {off}");
        let field = |i: usize| {
            let s = std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).unwrap();
            u32::from_str_radix(s, 16).unwrap()
        };
        let (namesize, filesize) = (field(11) as usize, field(6) as usize);
        let name_end = 110 + namesize;
        let name = std::str::from_utf8(&b[110..name_end - 1])
            .unwrap()
            .to_owned();
        assert_eq!(b[name_end - 1], 0);
        let data_start = (off + name_end).next_multiple_of(4) - off;
        let data = b[data_start..data_start + filesize].to_vec();
        let next = (off + data_start + filesize).next_multiple_of(4) - off;
        let m = Member {
            ino: field(0),
            mode: field(1),
            uid: field(2),
            gid: field(3),
            mtime: field(5),
            rdev: (field(9), field(10)),
            data,
        };
        b = &b[next..];
        if name == "TRAILER!!!" {
            assert!(b.is_empty(), "bytes after trailer");
            return out;
        }
        out.push((name, m));
    }
}

fn as_map(v: Vec<(String, Member)>) -> BTreeMap<String, Member> {
    v.into_iter().collect()
}

fn entries_round_trip_sorted_and_deterministic() {
    let build = || {
        let mut a = Archive::new();
        a.add_file("/init", 0o755, b"#!/bin/sh\n".to_vec())
            .unwrap()
            .add_char_dev("dev/console", 0o600, 5, 1)
            .unwrap()
            .add_symlink("bin/sh", "busybox")
            .unwrap()
            .add_file("bin/busybox", 0o755, vec![1, 2, 3])
            .unwrap()
            .add_dir("tmp", 0o1777)
            .unwrap();
        a.to_bytes().unwrap()
    };
    let bytes = build();
    assert_eq!(bytes, build(), "same input, same bytes");
    assert_eq!(bytes.len() % 4, 0);
    let members = read_newc(&bytes);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/busybox",
            "bin/sh",
            "dev",
            "dev/console",
            "init",
            "tmp"
        ]
    );
    let m = as_map(members);
    assert_eq!(m["bin"].mode, 0o040755, "implicit parent");
    assert_eq!(m["bin/busybox"].mode, 0o100755);
    assert_eq!(m["bin/busybox"].data, [1, 2, 3]);
    assert_eq!(m["bin/sh"].mode, 0o120777);
    assert_eq!(m["bin/sh"].data, b"busybox");
    assert_eq!(m["dev/console"].mode, 0o020600);
    assert_eq!(m["dev/console"].rdev, (5, 1));
    assert_eq!(m["tmp"].mode, 0o041777);
    assert_eq!(m["init"].data, b"#!/bin/sh\n");
    for (name, e) in &m {
        assert_eq!((e.uid, e.gid, e.mtime), (0, 0, 0), "{name}");
    }
    let mut inos: Vec<u32> = m.values().map(|e| e.ino).collect();
    inos.sort();
    inos.dedup();
    assert_eq!(inos.len(), m.len(), "unique inodes");
}

fn typed_errors() {
    let mut a = Archive::new();
    a.add_file("bin/x", 0o755, vec![]).unwrap();
    assert!(
        matches!(a.add_file("/bin/x", 0o644, vec![1]), Err(Error::Duplicate(p)) if p == "bin/x")
    );
    assert!(matches!(
        a.add_symlink("bin/x", "y"),
        Err(Error::Duplicate(_))
    ));
    // An implicit parent may be claimed once as a directory, not twice.
    a.add_dir("bin", 0o700).unwrap();
    assert!(matches!(a.add_dir("bin", 0o700), Err(Error::Duplicate(_))));
    assert!(matches!(
        a.add_file("bin/x/y", 0o644, vec![]),
        Err(Error::ParentNotDir { .. })
    ));
    assert!(matches!(
        a.add_dir("../etc", 0o755),
        Err(Error::InvalidPath { .. })
    ));
    assert!(matches!(
        a.add_elf_with_libs("bin/none", "/nonexistent/ktstr-bin"),
        Err(Error::Missing(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("script");
    std::fs::write(&text, "#!/bin/sh\n").unwrap();
    assert!(matches!(
        a.add_elf_with_libs("bin/s", &text),
        Err(Error::NotElf { .. })
    ));
}

/// A copy of this test binary whose DT_NEEDED names a library that exists
/// nowhere: patch the first needed string in place to the same length.
fn missing_library_is_named() {
    let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let needle = b"libc.so.6\0";
    let Some(at) = exe.windows(needle.len()).position(|w| w == needle) else {
        panic!("test binary does not mention libc.so.6");
    };
    let mut patched = exe.clone();
    patched[at..at + needle.len()].copy_from_slice(b"libQ.so.9\0");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("patched");
    std::fs::write(&path, &patched).unwrap();
    let e = Archive::new()
        .add_elf_with_libs("bin/p", &path)
        .map(|_| ())
        .unwrap_err();
    match e {
        Error::LibraryNotFound { name, .. } => assert_eq!(name, "libQ.so.9"),
        other => panic!("{other:?}"),
    }
}

fn packs_this_test_binary_with_loader_and_libc() {
    let exe = std::env::current_exe().unwrap();
    let mut a = Archive::new();
    a.add_elf_with_libs("bin/selftest", &exe).unwrap();
    let m = as_map(read_newc(&a.to_bytes().unwrap()));
    let names: Vec<&String> = m.keys().collect();
    eprintln!("packed: {names:?}");
    assert_eq!(m["bin/selftest"].data, std::fs::read(&exe).unwrap());
    assert_eq!(m["bin/selftest"].mode & 0o111, 0o111);
    let libc = m
        .iter()
        .find(|(n, _)| n.ends_with("/libc.so.6"))
        .expect("libc packed");
    // Symlinks are followed: the member holds the real library's bytes.
    assert_eq!(libc.1.mode & 0o170000, 0o100000);
    assert_eq!(
        libc.1.data,
        std::fs::read(format!("/{}", libc.0)).unwrap(),
        "{}",
        libc.0
    );
    assert!(
        m.keys().any(|n| n.contains("ld-linux-x86-64.so.2")),
        "interpreter packed: {names:?}"
    );
    // A second binary sharing the same libraries packs without duplicates.
    a.add_elf_with_libs("bin/selftest2", &exe).unwrap();
}

fn static_binary_adds_only_itself() {
    let busybox = std::path::Path::new(ktstr_testenv::BUSYBOX);
    let mut a = Archive::new();
    a.add_elf_with_libs("bin/busybox", busybox).unwrap();
    let names: Vec<&str> = a.entries().map(|(n, _)| n).collect();
    assert_eq!(names, ["bin", "bin/busybox"]);
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[ktstr_testenv::Need::Busybox]; static_binary_adds_only_itself],
        ktstr_testenv::tests![&[]; entries_round_trip_sorted_and_deterministic, typed_errors, missing_library_is_named, packs_this_test_binary_with_loader_and_libc],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
