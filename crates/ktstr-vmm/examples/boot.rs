//! Boots a kernel, streams COM1 to stdout, ends with one JSON line:
//! `{"exit":"reboot","setup_ms":…,"run_ms":…,"vcpus":…}`.
//!
//! cargo run --release --example boot -- --kernel K [--initramfs I] [--cmdline ...]
//!     [--vcpus N] [--memory-mib M] [--deadline-s S] [--profile-ms MS]

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ktstr_vmm::profile::Symbolizer;
use ktstr_vmm::{ExitKind, VmBuilder};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    kernel: PathBuf,
    #[arg(long)]
    initramfs: Option<PathBuf>,
    /// Appended to the default kernel command line.
    #[arg(long, default_value = "")]
    cmdline: String,
    #[arg(long, default_value_t = 1)]
    vcpus: usize,
    #[arg(long, default_value_t = 256)]
    memory_mib: u64,
    #[arg(long, default_value_t = 900)]
    deadline_s: u64,
    /// Sample guest RIPs every MS milliseconds and print a per-window profile
    /// to stderr (symbols from --kernel when it is an ELF vmlinux, or --symbols).
    #[arg(long)]
    profile_ms: Option<u64>,
    #[arg(long)]
    symbols: Option<PathBuf>,
    /// Leave out the compat layer's boot-time cuts (to measure them).
    #[arg(long)]
    no_boot_cuts: bool,
    /// Profile window width in seconds.
    #[arg(long, default_value_t = 10)]
    window_s: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut builder = VmBuilder::new()
        .kernel(&args.kernel)
        .cmdline(&args.cmdline)
        .vcpus(args.vcpus)
        .memory_mib(args.memory_mib)
        .deadline(Duration::from_secs(args.deadline_s))
        .slow_host_boot_cuts(!args.no_boot_cuts)
        .com1_sink(Box::new(std::io::stdout()));
    if let Some(i) = &args.initramfs {
        builder = builder.initramfs(i);
    }
    if let Some(ms) = args.profile_ms {
        builder = builder.profile(Duration::from_millis(ms));
    }
    let vm = builder.build()?;
    eprintln!("cmdline: {}", vm.cmdline());
    let outcome = vm.run()?;
    if let Some(profile) = &outcome.profile {
        let symbols = Symbolizer::from_vmlinux(args.symbols.as_ref().unwrap_or(&args.kernel))?;
        for w in profile.histogram(&symbols, Duration::from_secs(args.window_s), 4) {
            let top: Vec<String> = w
                .top
                .iter()
                .map(|(name, n)| format!("{name} {}%", n * 100 / w.samples.max(1)))
                .collect();
            eprintln!(
                "profile +{:>4}s [{:>4} samples] {}",
                w.start.as_secs(),
                w.samples,
                top.join(", ")
            );
        }
    }
    let detail = match &outcome.exit {
        ExitKind::EmulationFailure { vcpu, rip, bytes } => {
            format!(r#","vcpu":{vcpu},"rip":"{rip:#x}","bytes":"{bytes:02x?}""#)
        }
        ExitKind::InternalError { vcpu, detail }
        | ExitKind::VcpuPanicked {
            vcpu,
            message: detail,
        } => format!(r#","vcpu":{vcpu},"detail":{detail:?}"#),
        _ => String::new(),
    };
    let shims: Vec<String> = outcome
        .shims
        .iter()
        .map(|s| format!(r#""{}":{}"#, s.name, s.count))
        .collect();
    println!(
        r#"{{"exit":"{}","setup_ms":{},"run_ms":{},"vcpus":{},"shims":{{{}}}{detail}}}"#,
        outcome.exit.name(),
        outcome.timings.setup.as_millis(),
        outcome.timings.run.as_millis(),
        outcome.vcpus,
        shims.join(",")
    );
    Ok(())
}
