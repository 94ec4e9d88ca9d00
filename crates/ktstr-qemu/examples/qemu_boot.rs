//! Boot-to-init time under QEMU TCG: median of 5 boots of the kernel in KTSTR_KERNEL.
//!
//! `KTSTR_KERNEL=/work/shared/kernels/bzImage cargo run --release -p ktstr-qemu --example qemu_boot`
//! Time is from spawning QEMU until /init's first line arrives on COM1.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{TestEnv, Watch, builder, initramfs};

fn main() -> anyhow::Result<()> {
    let env = TestEnv {
        kernel: ktstr_testenv::find_kernel()?,
    };
    let vcpus: u32 = std::env::var("VCPUS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let initrd = initramfs("echo KTSTR-BOOT-TOKEN");
    let mut times = Vec::new();
    for i in 0..5 {
        let (mut com1, sink) = Watch::new();
        let vm = builder(&env, initrd.path())
            .vcpus(vcpus)
            .com1_sink(Box::new(sink))
            .spawn()?;
        let started = vm.started_at();
        let seen = com1.wait_for("KTSTR-BOOT-TOKEN", Duration::from_secs(120));
        let boot = started.elapsed();
        let out = vm.wait()?;
        anyhow::ensure!(seen.is_some(), "boot {i}: no token\n{}", out.com1_text());
        println!(
            "boot {i}: init at {:.3} s, QEMU exit at {:.3} s ({})",
            boot.as_secs_f64(),
            out.timings.total.as_secs_f64(),
            out.exit.name()
        );
        times.push(boot);
    }
    times.sort();
    println!(
        "TCG vcpus={vcpus} kernel={} boot-to-init median of 5: {:.3} s",
        env.kernel.display(),
        times[2].as_secs_f64()
    );
    Ok(())
}
