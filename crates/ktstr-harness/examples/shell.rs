//! An interactive shell in a ktstr guest (busybox `sh` on QEMU TCG).
//! Ctrl-] kills the VM; `exit` ends the shell and powers the guest off.
//!
//! `KTSTR_KERNEL=/path/to/vmlinux cargo run -p ktstr-harness --example shell`

use std::os::fd::AsFd;

use anyhow::Context;
use ktstr_harness::{Session, SessionConfig, ShellEnd};

fn main() -> anyhow::Result<()> {
    let kernel = std::env::var("KTSTR_KERNEL").context("set KTSTR_KERNEL")?;
    let mut session = Session::boot(&SessionConfig::new(kernel))?;
    eprintln!("ktstr shell: Ctrl-] kills the VM\r");
    let stdin = std::io::stdin();
    let end = session.shell(stdin.as_fd(), &mut std::io::stdout())?;
    match end {
        ShellEnd::Exited(exit) => {
            let run = session.shutdown()?;
            eprintln!("shell exited {exit:?}; guest {:?}", run.exit);
        }
        ShellEnd::Escaped => {
            let run = session.shutdown()?;
            eprintln!("escaped; guest {:?}", run.exit);
        }
    }
    Ok(())
}
