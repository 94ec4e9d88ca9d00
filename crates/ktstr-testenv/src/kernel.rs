//! The one kernel rule: `KTSTR_KERNEL`, else the newest cached kernel.

use std::path::PathBuf;

use crate::cache::{kernels_dir, newest_kernel};

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

/// The command that builds and caches the test kernel.
pub const KERNEL_BUILD_COMMAND: &str = "ktstr kernel build";
/// The command that builds and caches the example schedulers.
pub const SCHED_BUILD_COMMAND: &str = "ktstr sched build";
/// How to run the `ktstr` command from a checkout.
pub const FROM_CHECKOUT: &str = "cargo run --release -p ktstr-cli --";

/// `KTSTR_KERNEL` (which must then exist), else the newest kernel in the
/// cache ([`crate::cache`]). An empty `KTSTR_KERNEL` counts as unset
/// (`.ci/run` exports it empty when it found no kernel).
pub fn find_kernel() -> Result<PathBuf, Missing> {
    let how = format!(
        "run `{KERNEL_BUILD_COMMAND}` (in a checkout: `{FROM_CHECKOUT} kernel build`), \
         or set KTSTR_KERNEL to a sched_ext-capable vmlinux/bzImage"
    );
    if let Some(k) = std::env::var_os("KTSTR_KERNEL").filter(|k| !k.is_empty()) {
        let k = PathBuf::from(k);
        return if k.is_file() {
            Ok(k)
        } else {
            Err(Missing::new(
                format!("the test kernel {} (KTSTR_KERNEL)", k.display()),
                how,
            ))
        };
    }
    match newest_kernel() {
        Some(k) => Ok(k.vmlinux()),
        None => Err(Missing::new(
            format!(
                "the test kernel (KTSTR_KERNEL is unset and the cache {} holds none)",
                kernels_dir().map_or("(no HOME)".into(), |p| p.display().to_string())
            ),
            how,
        )),
    }
}
