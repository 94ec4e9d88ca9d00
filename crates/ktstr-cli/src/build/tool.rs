//! Running build tools: output to a log file (a failure names it), and
//! for long steps each stdout line to a callback that drives the progress bar.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::BuildError;

/// A log file that every command of one build appends to.
pub struct Log {
    path: PathBuf,
    file: File,
}

impl Log {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<Log, BuildError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(BuildError::io(format!("create {}", dir.display())))?;
        }
        let file =
            File::create(path).map_err(BuildError::io(format!("create {}", path.display())))?;
        Ok(Log {
            path: path.to_owned(),
            file,
        })
    }

    fn handle(&self) -> Result<File, BuildError> {
        self.file
            .try_clone()
            .map_err(BuildError::io(format!("reopen {}", self.path.display())))
    }

    /// Runs `cmd` (`what` names it), its output appended to the log.
    pub fn run(&self, what: &str, cmd: &mut Command) -> Result<(), BuildError> {
        self.run_lines(what, cmd, |_| {})
    }

    /// Runs `cmd`, calling `line` with each line of its stdout; stdout and
    /// stderr are appended to the log.
    pub fn run_lines(
        &self,
        what: &str,
        cmd: &mut Command,
        mut line: impl FnMut(&str),
    ) -> Result<(), BuildError> {
        let mut log = self.handle()?;
        let _ = writeln!(log, "$ {cmd:?}");
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(self.handle()?))
            .spawn()
            .map_err(|source| BuildError::Spawn { program, source })?;
        if let Some(out) = child.stdout.take() {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{l}");
                line(&l);
            }
        }
        let status = child
            .wait()
            .map_err(BuildError::io(format!("wait for {what}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(BuildError::Command {
                what: what.into(),
                status,
                log: self.path.clone(),
            })
        }
    }

    /// Runs `cmd` and returns its stdout, trimmed.
    pub fn output(&self, what: &str, cmd: &mut Command) -> Result<String, BuildError> {
        let mut text = String::new();
        self.run_lines(what, cmd, |l| {
            text.push_str(l);
            text.push('\n');
        })?;
        Ok(text.trim().to_owned())
    }
}
