//! Running one host command, with its failure named.

use std::process::{Command, Output};

use crate::error::Error;

/// Runs `cmd` to completion; a spawn error or a non-zero exit is
/// [`Error::Command`] with `what` and the tail of its stderr.
pub(crate) fn run(what: &'static str, cmd: &mut Command) -> Result<Output, Error> {
    let command = format!("{cmd:?}");
    tracing::debug!(%command, "running");
    let out = cmd.output().map_err(|e| Error::Command {
        what,
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        return Ok(out);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
    Err(Error::Command {
        what,
        command,
        detail: format!(
            "{}\n{}",
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ),
    })
}
