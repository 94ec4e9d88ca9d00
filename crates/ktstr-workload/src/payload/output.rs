//! A payload's stdout and stderr go to files in its scratch directory (no
//! pipe to drain, so no thread in the runner, which forks workers); after
//! it ends the runner reads back a bounded part of each.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How much of the end of each stream the report keeps.
pub const TAIL_BYTES: u64 = 2048;
/// How much of the end of each stream figure parsers see: a cyclictest
/// histogram of 50 000 buckets is ~1 MiB; a chattier program is cut.
pub const PARSE_BYTES: u64 = 8 << 20;

/// The last `max` bytes of `path` as text (lossy UTF-8, starting at a line
/// when it was cut); empty if the file cannot be read.
pub fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let start = len.saturating_sub(max);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    match (start > 0, text.find('\n')) {
        (true, Some(i)) => text[i + 1..].to_owned(),
        _ => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_tail_starts_at_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        std::fs::write(&p, "first line\nsecond\nthird\n").unwrap();
        assert_eq!(tail(&p, 1000), "first line\nsecond\nthird\n");
        assert_eq!(tail(&p, 10), "third\n");
        assert_eq!(tail(&dir.path().join("none"), 10), "");
    }
}
