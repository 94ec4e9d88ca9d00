//! `ktstr scenarios`: the built-in catalogue.

use ktstr_workload::catalogue;
use serde_json::json;

use crate::exit::Status;

pub fn run(as_json: bool) -> anyhow::Result<Status> {
    let all = catalogue::all();
    let total_ms =
        |s: &ktstr_workload::Scenario| -> u64 { s.steps.iter().map(|st| st.duration_ms).sum() };
    if as_json {
        let entries: Vec<_> = all
            .iter()
            .map(|s| json!({ "name": s.name, "duration_ms": total_ms(s), "steps": s.steps.len(), "spec": s }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Status::Success);
    }
    for s in &all {
        let cgroups: Vec<&str> = s
            .steps
            .iter()
            .flat_map(|st| st.cgroups.iter().map(|c| c.name.as_str()))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        println!(
            "{:<20} {:>2} step(s) {:>6} ms  cgroups {}",
            s.name,
            s.steps.len(),
            total_ms(s),
            cgroups.join(" ")
        );
    }
    Ok(Status::Success)
}
