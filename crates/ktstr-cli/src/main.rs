//! `ktstr`: the command-line face of ktstr (see `ktstr --help`).
//!
//! This binary is also the guest's `/init`: it links ktstr-harness, hence
//! ktstr-guest's PID-1 hook, which takes over before `main` when the kernel
//! starts it as PID 1 with `KTSTR_INIT=1`.

mod build;
mod cli;
mod cmd;
mod exit;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, KernelCommand, SchedCommand};
use crate::exit::Status;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and succeed; a usage
            // error is bad input.
            let bad = e.use_stderr();
            let _ = e.print();
            return if bad {
                Status::Error.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match dispatch(cli.command) {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("ktstr: {e:#}");
            exit::status_of(&e).into()
        }
    }
}

/// Commands that only print die quietly on a closed pipe (`ktstr topo
/// 2n2l2c2t | head`), as other command-line tools do. Commands that run a
/// VM keep Rust's default (SIGPIPE ignored): their pipes to QEMU must fail
/// with an error, not kill the process.
fn die_on_closed_pipe() {
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

fn dispatch(command: Command) -> anyhow::Result<Status> {
    if !matches!(
        command,
        Command::Shell(_) | Command::Run(_) | Command::Fuzz(_)
    ) {
        die_on_closed_pipe();
    }
    match command {
        Command::Doctor => cmd::doctor::run(),
        Command::Topo(args) => cmd::topo::run(&args),
        Command::Scenarios(args) => cmd::scenarios::run(args.json),
        Command::Kernel(KernelCommand::Build(args)) => cmd::kernel::build(&args),
        Command::Kernel(KernelCommand::List(args)) => cmd::kernel::list(args.json),
        Command::Kernel(KernelCommand::Clean { all }) => cmd::kernel::clean(all),
        Command::Sched(SchedCommand::Build(args)) => cmd::sched::build(&args.names),
        Command::Shell(args) => cmd::shell::run(&args),
        Command::Run(args) => cmd::run::run(&args),
        Command::Fuzz(args) => cmd::fuzz::run(&args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "ktstr", &mut std::io::stdout());
            Ok(Status::Success)
        }
    }
}
