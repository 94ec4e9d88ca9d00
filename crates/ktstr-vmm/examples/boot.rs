//! Boots a kernel, streams COM1 to stdout, ends with one JSON line:
//! `{"exit":"reboot","setup_ms":…,"run_ms":…,"vcpus":…}`.
//!
//! cargo run --release --example boot -- --kernel K [--initramfs I] [--cmdline ...]
//!     [--vcpus N] [--memory-mib M] [--deadline-s S] [--profile-ms MS]

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Report when COM1 first shows this text (host time since build start).
    #[arg(long, default_value = "Run /init as init process")]
    mark: String,
    /// Profile window width in seconds.
    #[arg(long, default_value_t = 10)]
    window_s: u64,
}

/// Copies COM1 to stdout and notes when `mark` first appears.
struct MarkingSink {
    mark: String,
    tail: Vec<u8>,
    started: Instant,
    seen_at: Arc<Mutex<Option<Duration>>>,
}

impl Write for MarkingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write_all(buf)?;
        let mut seen = self
            .seen_at
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        if seen.is_none() {
            self.tail.extend_from_slice(buf);
            if self
                .tail
                .windows(self.mark.len())
                .any(|w| w == self.mark.as_bytes())
            {
                *seen = Some(self.started.elapsed());
            }
            let keep = self.tail.len().saturating_sub(self.mark.len());
            self.tail.drain(..keep);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let seen_at = Arc::new(Mutex::new(None));
    let sink = MarkingSink {
        mark: args.mark.clone(),
        tail: Vec::new(),
        started,
        seen_at: seen_at.clone(),
    };
    let mut builder = VmBuilder::new()
        .kernel(&args.kernel)
        .cmdline(&args.cmdline)
        .vcpus(args.vcpus)
        .memory_mib(args.memory_mib)
        .deadline(Duration::from_secs(args.deadline_s))
        .slow_host_boot_cuts(!args.no_boot_cuts)
        .com1_sink(Box::new(sink));
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
    let mark_ms = seen_at
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .map_or("null".to_string(), |d| d.as_millis().to_string());
    let shims: Vec<String> = outcome
        .shims
        .iter()
        .map(|s| format!(r#""{}":{}"#, s.name, s.count))
        .collect();
    println!(
        r#"{{"exit":"{}","setup_ms":{},"run_ms":{},"mark_ms":{mark_ms},"vcpus":{},"shims":{{{}}}{detail}}}"#,
        outcome.exit.name(),
        outcome.timings.setup.as_millis(),
        outcome.timings.run.as_millis(),
        outcome.vcpus,
        shims.join(",")
    );
    Ok(())
}
