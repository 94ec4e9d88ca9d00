//! A minimal cpio "newc" writer for the initramfs the kernel-tier tests boot.

pub enum Entry<'a> {
    Dir(&'a str),
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    Symlink {
        path: &'a str,
        target: &'a str,
    },
    CharDev {
        path: &'a str,
        major: u32,
        minor: u32,
    },
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, name: &str, rdev: (u32, u32)) {
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        size as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

pub fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        let (mode, name, data, rdev): (u32, &str, &[u8], _) = match e {
            Entry::Dir(p) => (0o040755, p, &[], (0, 0)),
            Entry::File { path, mode, data } => (0o100000 | mode, path, data, (0, 0)),
            Entry::Symlink { path, target } => (0o120777, path, target.as_bytes(), (0, 0)),
            Entry::CharDev { path, major, minor } => (0o020600, path, &[], (*major, *minor)),
        };
        header(&mut out, ino, mode, data.len(), name, rdev);
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    header(&mut out, 0, 0, 0, "TRAILER!!!", (0, 0));
    out
}
