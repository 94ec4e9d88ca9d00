//! An interactive shell for the host's terminal: busybox `sh` on a pty,
//! its output streamed as `Stdout` chunks, the host's keystrokes arriving
//! as `Stdin` chunks.
//!
//! Ending: when the shell exits, a watcher sends the request's reply; the
//! host then sends one empty `Stdin` chunk ("done"), which ends the loop.
//! If the host says done first (its input ended), the shell is hung up and
//! the watcher replies once it is gone. Either way one reply, one "done".

use std::ffi::CStr;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ktstr_wire::{Command as WireCommand, Message};

use crate::error::Error;
use crate::outbox::Outbox;
use crate::proto::{ProcExit, Reply};
use crate::reaper;
use crate::relay::{self, Stream, Tail};
use crate::transport::Port;

/// A pty pair: the master stays here, the slave becomes the shell's tty.
fn open_pty() -> Result<(File, File), Error> {
    // SAFETY: posix_openpt takes flags only; the fd is owned by `master`.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("posix_openpt", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let master = unsafe { File::from_raw_fd(fd) };
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: fd is a valid pty master; `name` is writable for its length.
    let ok = unsafe {
        libc::grantpt(fd) == 0
            && libc::unlockpt(fd) == 0
            && libc::ptsname_r(fd, name.as_mut_ptr(), name.len()) == 0
    };
    if !ok {
        return Err(Error::io("prepare pty", std::io::Error::last_os_error()));
    }
    // SAFETY: ptsname_r NUL-terminated `name` on success.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&path)
        .map_err(|e| Error::io(format!("open {path}"), e))?;
    Ok((master, slave))
}

/// Run the shell until the host says done; the reply goes out from the
/// watcher, so this returns nothing to send.
pub fn run<T: Read + Write>(
    step: u32,
    rx: &mut Port<T>,
    out: &Outbox,
    reply: impl Fn(u32, &Reply) + Send + 'static,
) -> Result<(), Error> {
    let (master, slave) = open_pty()?;
    // busybox `setsid -c` makes a new session with the pty (stdin) as its
    // controlling terminal, then execs sh in the same process (it is not a
    // group leader, so setsid does not fork and `pid` stays the shell's).
    // Not `pre_exec`: std's fork-based spawn path that it forces fails
    // with EAFNOSUPPORT on kernels without AF_UNIX (the lean test kernel).
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["setsid", "-c", "/bin/sh", "-i"])
        .env("TERM", "linux")
        .env("PS1", "ktstr# ")
        .stdin(Stdio::from(
            slave.try_clone().map_err(|e| Error::io("dup pty", e))?,
        ))
        .stdout(Stdio::from(
            slave.try_clone().map_err(|e| Error::io("dup pty", e))?,
        ))
        .stderr(Stdio::from(slave));
    let child =
        reaper::spawn(&mut cmd).map_err(|e| Error::io("spawn busybox setsid -c /bin/sh", e))?;
    drop(cmd);
    let pid = child.pid;
    let reader = master
        .try_clone()
        .map_err(|e| Error::io("dup pty master", e))?;
    let relay = relay::start(reader, Stream::Stdout, pid, out.clone(), Tail::default())
        .map_err(|e| Error::io("start pty relay", e))?;
    let watcher = std::thread::Builder::new()
        .name("shell-watch".into())
        .spawn(move || {
            let status = loop {
                if let Some(s) = reaper::wait(pid, Instant::now() + Duration::from_secs(3600)) {
                    break s;
                }
            };
            // The master reads EIO once the last slave fd closes: hang up
            // what is left of the shell's process group so that happens.
            reaper::kill(-i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGHUP);
            let _ = relay.join();
            reply(
                step,
                &Reply::Exec {
                    pid,
                    exit: ProcExit::from_wait_status(status),
                    timed_out: false,
                },
            );
        })
        .map_err(|e| Error::io("start shell watcher", e))?;
    let mut master = master;
    // Until the host says done (or the channel fails: then clean up too).
    let served = loop {
        let frame = match rx.recv() {
            Ok(Some(f)) => f,
            Ok(None) => break Err(Error::Closed),
            Err(e) => break Err(e),
        };
        match frame.message() {
            Ok(Message::Command(WireCommand::Stdin(c))) if c.data.0.is_empty() => break Ok(()),
            Ok(Message::Command(WireCommand::Stdin(c))) => {
                let _ = master.write_all(c.data.0);
            }
            _ => {}
        }
    };
    // Done: hang up a shell that is still running (its whole session).
    if !watcher.is_finished() {
        reaper::kill(-i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGHUP);
        reaper::kill(-i32::try_from(pid).unwrap_or(i32::MAX), libc::SIGKILL);
    }
    drop(master);
    let _ = watcher.join();
    served
}
