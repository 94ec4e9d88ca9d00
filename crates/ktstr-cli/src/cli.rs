//! The command line, as clap derives it: every subcommand and flag.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Test Linux process schedulers in small VMs: build the test kernel and
/// sched_ext schedulers, open a guest shell, run and judge a scenario.
///
/// Exit status: 0 success (or a passing verdict), 1 a failing verdict (or
/// `doctor` found something missing), 2 inconclusive (the guest ran but gave
/// no verdict), 3 an error: bad input, a missing prerequisite or a failed
/// build (the one-line message names the fix).
#[derive(Debug, Parser)]
#[command(name = "ktstr", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Say which backend would run and why, the KVM kind, QEMU, the kernel
    /// and schedulers found, cache sizes, and how to fix what is missing.
    Doctor,
    /// Show what Linux must report for a topology (CPUs, LLCs, nodes,
    /// domains); without one, list the topology presets.
    Topo(TopoArgs),
    /// List the built-in scenarios `ktstr run --scenario` accepts.
    Scenarios(JsonArg),
    /// Build, list and clean cached test kernels.
    #[command(subcommand)]
    Kernel(KernelCommand),
    /// Build the example sched_ext schedulers against the cached kernel.
    #[command(subcommand)]
    Sched(SchedCommand),
    /// Boot a guest and open a shell in it (Ctrl-] kills the VM), or run one
    /// command there and exit with its status.
    Shell(ShellArgs),
    /// Run a built-in scenario under a scheduler and judge it.
    Run(RunArgs),
    /// Run generated scenarios from a seed under a scheduler; shrink the
    /// first failure to the smallest scenario failing the same way and
    /// print it as a #[ktstr_test] to paste.
    Fuzz(FuzzArgs),
    /// Print a completion script for a shell.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TopoArgs {
    /// A shape `<nodes>n<llcs>l<cores>c<threads>t`, e.g. `1n2l4c2t`, or a
    /// preset name (omit it to list the presets).
    pub topology: Option<String>,
    /// Guest memory the node sizes are computed from (default: the
    /// preset's own, else 512).
    #[arg(long)]
    pub memory_mib: Option<u64>,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Debug, Subcommand)]
pub enum KernelCommand {
    /// Configure the kernel with kernel/ktstr.kconfig, build it and cache it.
    Build(KernelBuildArgs),
    /// List cached kernels (the first is the one tests use).
    List(JsonArg),
    /// Remove cached kernels (and their schedulers) and staging leftovers.
    Clean {
        /// Also the unpacked sources, scheduler build trees and logs.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Args)]
pub struct KernelBuildArgs {
    /// A Linux >= 6.12 source tree (default: Debian's linux-source-6.12,
    /// installed through apt and unpacked into the cache).
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Add kernel/slow-kvm.kconfig (for software-KVM hosts such as kvm-pvm).
    #[arg(long)]
    pub slow_kvm: bool,
    /// Parallel make jobs (default: all CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum SchedCommand {
    /// Build schedulers from the cached kernel's tools/sched_ext (default: all).
    Build(SchedBuildArgs),
}

#[derive(Debug, Args)]
pub struct SchedBuildArgs {
    /// Scheduler names, e.g. `scx_simple scx_qmap`.
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VmArgs {
    /// Guest shape `<nodes>n<llcs>l<cores>c<threads>t`, or a preset name
    /// (see `ktstr topo`).
    #[arg(long, default_value = "1n1l2c1t")]
    pub topology: String,
    /// Guest memory in MiB (default: the preset's own, else 512).
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// Fail instead of building a missing kernel or scheduler.
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    /// A scheduler (name or path) to attach before the shell starts.
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Run this command (through `sh -c`) instead of an interactive shell.
    #[arg(long, num_args = 1.., allow_hyphen_values = true)]
    pub exec: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct FuzzArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    /// The scheduler: a name or a path; `eevdf` for none.
    #[arg(long)]
    pub scheduler: String,
    /// Scheduler arguments, e.g. `--args=-t,100` (comma-separated).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// The generator's seed: the same seed gives the same scenarios.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Generated scenarios to try before giving up.
    #[arg(long, default_value_t = 10)]
    pub runs: u32,
    /// Most guest runs spent shrinking a failure.
    #[arg(long, default_value_t = 30)]
    pub shrink_budget: u32,
    /// Extra runs a passing scenario must also pass before it counts as
    /// passing (bugs that show only sometimes).
    #[arg(long, default_value_t = 1)]
    pub confirm_passes: u32,
    /// Most steps in a generated scenario.
    #[arg(long, default_value_t = 4)]
    pub max_steps: usize,
    /// Shortest step, ms (shrinking goes down to it). Longer than the
    /// scheduler's watchdog timeout, a stall is always caught in the run.
    #[arg(long, default_value_t = 200)]
    pub min_step_ms: u64,
    /// Longest generated step, ms.
    #[arg(long, default_value_t = 1500)]
    pub max_step_ms: u64,
    /// Write the #[ktstr_test] here as well as to stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    /// The scheduler: a name (see `ktstr doctor`) or a path; `eevdf` for none.
    #[arg(long)]
    pub scheduler: String,
    /// A built-in scenario (see `ktstr scenarios`).
    #[arg(long)]
    pub scenario: String,
    #[command(flatten)]
    pub json: JsonArg,
}
