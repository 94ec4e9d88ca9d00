//! `ktstr shell`: a guest shell on this terminal, or one command run there
//! (`--exec`, through `sh -c`) whose exit status becomes ours.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ktstr_harness::{ExecResult, Session, SessionConfig, ShellEnd};

use crate::cli::{ShellArgs, VmArgs};
use crate::exit::{Inconclusive, Status};

/// How long `--exec` may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a scheduler may take to attach.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(args: &ShellArgs) -> anyhow::Result<Status> {
    let (cfg, scheduler) = session_config(&args.vm, args.scheduler.as_deref())?;
    let _slot = ktstr_testenv::VmSlot::acquire().context("take a VM slot")?;
    let mut session = Session::boot(&cfg).map_err(Inconclusive)?;
    if let Some(path) = &scheduler {
        session
            .start_scheduler(path, &[], ATTACH_TIMEOUT)
            .map_err(Inconclusive)?;
    }
    let status = match &args.exec {
        Some(argv) => {
            let command = argv.join(" ");
            let r = session
                .exec(&["sh", "-c", &command], EXEC_TIMEOUT)
                .map_err(Inconclusive)?;
            forward(&r)?;
            exec_status(&r)
        }
        None => {
            eprintln!("ktstr shell: Ctrl-] kills the VM\r");
            let stdin = std::io::stdin();
            match session
                .shell(stdin.as_fd(), &mut std::io::stdout())
                .map_err(Inconclusive)?
            {
                ShellEnd::Exited(exit) => exit_status(exit.code, exit.signal),
                ShellEnd::Escaped => {
                    eprintln!("ktstr shell: VM killed (Ctrl-])");
                    Status::Code(130)
                }
            }
        }
    };
    session.shutdown().map_err(Inconclusive)?;
    Ok(status)
}

/// The session `vm` describes, with `scheduler` (found or built) packed.
pub fn session_config(
    vm: &VmArgs,
    scheduler: Option<&str>,
) -> anyhow::Result<(SessionConfig, Option<PathBuf>)> {
    let (topology, memory_mib) = super::parse_topology(&vm.topology, vm.memory_mib)?;
    if let Some(s) = scheduler {
        super::check_scheduler(s)?;
    }
    super::backend()?;
    let kernel = super::kernel(!vm.no_build)?;
    let scheduler = scheduler
        .map(|s| super::scheduler(s, !vm.no_build))
        .transpose()?;
    let mut cfg = SessionConfig::new(kernel);
    cfg.topology = Some(topology);
    cfg.memory_mib = memory_mib;
    cfg.schedulers = scheduler.iter().cloned().collect();
    Ok((cfg, scheduler))
}

fn forward(r: &ExecResult) -> anyhow::Result<()> {
    std::io::stdout()
        .write_all(&r.stdout)
        .and_then(|()| std::io::stdout().flush())
        .context("write the command's stdout")?;
    std::io::stderr()
        .write_all(&r.stderr)
        .context("write the command's stderr")
}

fn exec_status(r: &ExecResult) -> Status {
    if r.timed_out {
        eprintln!("ktstr shell: the command ran past {EXEC_TIMEOUT:?} and was killed");
        // timeout(1)'s status.
        return Status::Code(124);
    }
    exit_status(r.code, r.signal)
}

/// A shell's convention: the code, or 128 + the killing signal.
fn exit_status(code: Option<i32>, signal: Option<i32>) -> Status {
    let raw = code.or(signal.map(|s| 128 + s)).unwrap_or(1);
    Status::Code(u8::try_from(raw & 0xff).unwrap_or(1))
}
