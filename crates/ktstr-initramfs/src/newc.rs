//! The newc ("070701") cpio wire format: 110-byte ASCII-hex header, NUL-
//! terminated name, data, each padded to 4 bytes; ends with `TRAILER!!!`.

/// File type bits for `c_mode`.
pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFLNK: u32 = 0o120000;
pub(crate) const S_IFCHR: u32 = 0o020000;

/// One header's variable fields; the rest (uid, gid, mtime, check) are 0.
pub(crate) struct Header<'a> {
    pub(crate) ino: u32,
    pub(crate) mode: u32,
    pub(crate) nlink: u32,
    pub(crate) rdev: (u32, u32),
    pub(crate) name: &'a str,
    pub(crate) data: &'a [u8],
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Append one entry. Callers guarantee `name.len() + 1` and `data.len()` fit u32.
pub(crate) fn write_entry(out: &mut Vec<u8>, h: &Header<'_>, data_len: u32, name_len: u32) {
    let fields = [
        h.ino, h.mode, 0, 0, h.nlink, 0, data_len, 0, 0, h.rdev.0, h.rdev.1, name_len, 0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08X}").as_bytes());
    }
    out.extend_from_slice(h.name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(h.data);
    pad4(out);
}

/// The end-of-archive marker entry.
pub(crate) fn write_trailer(out: &mut Vec<u8>) {
    const NAME: &str = "TRAILER!!!";
    let h = Header {
        ino: 0,
        mode: 0,
        nlink: 1,
        rdev: (0, 0),
        name: NAME,
        data: &[],
    };
    write_entry(out, &h, 0, NAME.len() as u32 + 1);
}
