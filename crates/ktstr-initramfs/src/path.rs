//! Guest path normalisation: archive names are relative, `/`-separated and
//! free of `.`/`..`, so every entry lands exactly where the caller named it.

use crate::error::Error;

/// Normalise `path` ("/a//b/" → "a/b"); reject empty, `.`, `..` and NUL.
pub(crate) fn normalize(path: &str) -> Result<String, Error> {
    let bad = |why| Error::InvalidPath {
        path: path.to_owned(),
        why,
    };
    if path.contains('\0') {
        return Err(bad("contains NUL"));
    }
    let mut parts = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if part == "." || part == ".." {
            return Err(bad("contains . or .."));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return Err(bad("empty"));
    }
    Ok(parts.join("/"))
}

/// Every proper ancestor of a normalised path, shortest first ("a/b/c" → "a", "a/b").
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(i, _)| &path[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_rejects() {
        assert_eq!(normalize("/a//b/").unwrap(), "a/b");
        assert_eq!(normalize("init").unwrap(), "init");
        for bad in ["", "/", "a/../b", "./a", "a\0b"] {
            assert!(
                matches!(normalize(bad), Err(Error::InvalidPath { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
