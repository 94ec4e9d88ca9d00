//! An interactive guest shell on the user's terminal.
//!
//! Keystrokes go to the guest's `/bin/sh -i` (on a pty there) as `Stdin`
//! chunks, its output comes back as `Stdout` chunks. The terminal is raw
//! while the shell runs (see [`crate::terminal`]), so Ctrl-C reaches the
//! guest. **Escape key: Ctrl-] (0x1d) kills the VM at once.** End of input
//! (a pipe, not a terminal) sends Ctrl-D, which ends the shell the usual way.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::time::{Duration, Instant};

use ktstr_guest::proto::{ProcExit, Reply, Request};
use ktstr_wire::{ByteStr, Chunk, Command};

use crate::error::HarnessError;
use crate::events::{Event, NoEvent};
use crate::session::Session;
use crate::terminal::RawMode;

/// The byte that kills the VM: Ctrl-].
pub const ESCAPE: u8 = 0x1d;
/// How often the input thread checks whether the shell ended.
const INPUT_POLL_MS: i32 = 50;
/// Keystrokes per `Stdin` frame, at most.
const INPUT_CHUNK: usize = 4096;

/// How a shell ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShellEnd {
    /// The shell exited.
    Exited(ProcExit),
    /// The escape key was pressed: the VM is being killed.
    Escaped,
}

/// Keystroke batches; `None` at end of input.
type Keys = Receiver<Option<Vec<u8>>>;

/// Reads `fd` on a thread, polling so it can be stopped and joined.
fn spawn_input(
    fd: BorrowedFd<'_>,
    stop: Arc<AtomicBool>,
) -> Result<(Keys, std::thread::JoinHandle<()>), HarnessError> {
    let dup = fd
        .try_clone_to_owned()
        .map_err(|e| HarnessError::io("dup shell input", e))?;
    let (tx, rx) = channel();
    let handle = std::thread::Builder::new()
        .name("shell-input".into())
        .spawn(move || {
            let mut file = std::fs::File::from(dup);
            let mut buf = vec![0u8; INPUT_CHUNK];
            while !stop.load(Ordering::Relaxed) {
                let mut pfd = libc::pollfd {
                    fd: file.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for the duration of the call.
                let n = unsafe { libc::poll(&mut pfd, 1, INPUT_POLL_MS) };
                if n <= 0 {
                    continue;
                }
                match file.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        if tx
                            .send(Some(buf.get(..n).unwrap_or_default().to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        })
        .map_err(|e| HarnessError::io("start shell input thread", e))?;
    Ok((rx, handle))
}

impl Session {
    /// Run an interactive shell in the guest, reading keystrokes from
    /// `input` (raw mode if it is a terminal) and writing its output to
    /// `output`, until the shell exits or [`ESCAPE`] is typed.
    pub fn shell(
        &mut self,
        input: BorrowedFd<'_>,
        output: &mut dyn Write,
    ) -> Result<ShellEnd, HarnessError> {
        let _raw = RawMode::enable(input.as_raw_fd())
            .map_err(|e| HarnessError::io("terminal raw mode", e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (keys, reader) = spawn_input(input, stop.clone())?;
        let result = self.shell_loop(&keys, output);
        stop.store(true, Ordering::Relaxed);
        let _ = reader.join();
        result
    }

    fn stdin(&mut self, data: &[u8]) -> Result<(), HarnessError> {
        self.send(Command::Stdin(Chunk {
            pid: 0,
            data: ByteStr(data),
        }))
    }

    fn shell_loop(
        &mut self,
        keys: &Keys,
        output: &mut dyn Write,
    ) -> Result<ShellEnd, HarnessError> {
        let started = Instant::now();
        let step = self.send_request(&Request::Shell, Duration::ZERO)?;
        let mut input_open = true;
        loop {
            while input_open {
                match keys.try_recv() {
                    Ok(Some(bytes)) => {
                        if let Some(at) = bytes.iter().position(|&b| b == ESCAPE) {
                            self.stdin(bytes.get(..at).unwrap_or_default())?;
                            self.kill();
                            return Ok(ShellEnd::Escaped);
                        }
                        self.stdin(&bytes)?;
                    }
                    // End of input: Ctrl-D, as a user would type it.
                    Ok(None) | Err(TryRecvError::Disconnected) => {
                        self.stdin(b"\x04")?;
                        input_open = false;
                    }
                    Err(TryRecvError::Empty) => break,
                }
            }
            match self.next_event(Instant::now() + Duration::from_millis(20)) {
                Ok(Event::Stdout(pid, d) | Event::Stderr(pid, d)) => {
                    let _ = self.take_output(pid);
                    output
                        .write_all(&d)
                        .and_then(|()| output.flush())
                        .map_err(|e| HarnessError::io("write shell output", e))?;
                }
                Ok(Event::Result { step: s, text, .. }) if s == step => {
                    // The shell is gone: tell the guest loop we are done.
                    self.stdin(b"")?;
                    return match serde_json::from_slice::<Reply>(&text) {
                        Ok(Reply::Exec { exit, .. }) => Ok(ShellEnd::Exited(exit)),
                        Ok(Reply::Error { message }) => Err(HarnessError::Guest {
                            what: "shell".into(),
                            message,
                        }),
                        other => Err(HarnessError::Protocol {
                            what: "shell".into(),
                            detail: format!("{other:?}"),
                        }),
                    };
                }
                Ok(_) | Err(NoEvent::Timeout) => {}
                Err(NoEvent::Closed) => return Err(self.died("shell", started.elapsed())),
            }
        }
    }
}
