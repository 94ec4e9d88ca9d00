//! The one kernel rule: `KTSTR_KERNEL`, else the user's kernel cache.

use std::path::PathBuf;

/// A prerequisite that is not there: what, and how to get it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("missing {what}: {how}")]
pub struct Missing {
    /// What was looked for, e.g. `the test kernel`.
    pub what: String,
    /// How to provide it.
    pub how: String,
}

impl Missing {
    /// `what` is missing; `how` says how to get it.
    pub fn new(what: impl Into<String>, how: impl Into<String>) -> Self {
        Missing {
            what: what.into(),
            how: how.into(),
        }
    }
}

/// ktstr's cache directory: `$XDG_CACHE_HOME/ktstr`, else `~/.cache/ktstr`
/// (`None` without either variable).
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ktstr"))
}

/// Where the kernel is looked for after `KTSTR_KERNEL`: `vmlinux` in
/// [`cache_dir`].
pub fn kernel_cache_path() -> Option<PathBuf> {
    cache_dir().map(|d| d.join("vmlinux"))
}

/// `KTSTR_KERNEL` (which must then exist), else [`kernel_cache_path`]. An
/// empty `KTSTR_KERNEL` counts as unset (`.ci/run` exports it empty when it
/// found no kernel).
pub fn find_kernel() -> Result<PathBuf, Missing> {
    const HOW: &str = "set KTSTR_KERNEL to a sched_ext-capable vmlinux/bzImage \
                       (build one with `kernel/build.sh SRC OUT`)";
    if let Some(k) = std::env::var_os("KTSTR_KERNEL").filter(|k| !k.is_empty()) {
        let k = PathBuf::from(k);
        return if k.is_file() {
            Ok(k)
        } else {
            Err(Missing::new(
                format!("the test kernel {} (KTSTR_KERNEL)", k.display()),
                HOW,
            ))
        };
    }
    match kernel_cache_path() {
        Some(p) if p.is_file() => Ok(p),
        cached => Err(Missing::new(
            format!(
                "the test kernel (KTSTR_KERNEL is unset and {} does not exist)",
                cached.map_or("the cache location (no HOME)".into(), |p| p
                    .display()
                    .to_string())
            ),
            HOW,
        )),
    }
}
