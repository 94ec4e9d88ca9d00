//! `ktstr sched build`.

use crate::build::sched::{self, resolve_names};
use crate::exit::Status;
use crate::progress::{Progress, clock};

pub fn build(names: &[String]) -> anyhow::Result<Status> {
    let names = resolve_names(names)?;
    build_and_report(&names)?;
    Ok(Status::Success)
}

/// Builds `names` against the newest cached kernel and says where they are.
pub fn build_and_report(names: &[&str]) -> anyhow::Result<()> {
    let progress = Progress::new("schedulers");
    let built = sched::build(names, super::jobs(None), &progress)?;
    eprintln!(
        "ktstr: built {} in {} against kernel {}",
        names.join(" "),
        clock(progress.elapsed()),
        built.kernel.key,
    );
    for b in &built.binaries {
        eprintln!("  {}", b.display());
    }
    Ok(())
}
