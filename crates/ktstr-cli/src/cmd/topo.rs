//! `ktstr topo T`: what Linux must report for a shape or preset; without
//! `T`, the preset catalogue.

use ktstr_topology::{LinuxView, PRESETS, PresetTier, format_cpu_list};
use serde_json::json;

use crate::cli::TopoArgs;
use crate::exit::Status;

pub fn run(args: &TopoArgs) -> anyhow::Result<Status> {
    let Some(text) = &args.topology else {
        return Ok(list_presets());
    };
    let (topo, memory_mib) = super::parse_topology(text, args.memory_mib)?;
    let view = LinuxView::expected(&topo, memory_mib);
    if args.json.json {
        let cpus: Vec<_> = view
            .cpus
            .iter()
            .enumerate()
            .map(|(i, c)| {
                json!({
                    "cpu": i,
                    "node": c.node,
                    "package": c.package,
                    "thread_siblings": c.thread_siblings,
                    "core_cpus": c.core_cpus,
                    "llc_cpus": c.llc_cpus,
                    "domains": c.domains,
                })
            })
            .collect();
        let nodes: Vec<_> = view
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| json!({ "node": i, "cpus": n.cpus, "distances": n.distances, "memory_mib": n.memory_mib }))
            .collect();
        let out =
            json!({ "topology": text, "memory_mib": memory_mib, "cpus": cpus, "nodes": nodes });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Status::Success);
    }
    println!(
        "{}: {} CPUs, {} node(s), {} MiB",
        text,
        view.cpus.len(),
        view.nodes.len(),
        memory_mib
    );
    println!(
        "{:<5} {:<5} {:<10} {:<10} domains",
        "cpu", "node", "siblings", "llc"
    );
    for (i, c) in view.cpus.iter().enumerate() {
        println!(
            "{:<5} {:<5} {:<10} {:<10} {}",
            i,
            c.node,
            format_cpu_list(&c.thread_siblings),
            format_cpu_list(&c.llc_cpus),
            c.domains.join(" ")
        );
    }
    for (i, n) in view.nodes.iter().enumerate() {
        let d: Vec<String> = n.distances.iter().map(u8::to_string).collect();
        println!(
            "node {i}: cpus {}, {} MiB, distances {}",
            format_cpu_list(&n.cpus),
            n.memory_mib,
            d.join(" ")
        );
    }
    Ok(Status::Success)
}

/// `ktstr topo` without a shape: the preset catalogue.
fn list_presets() -> Status {
    println!("{:<14} {:<5} {:>5}  about", "preset", "tier", "cpus");
    for p in PRESETS {
        let cpus = p
            .resolve()
            .map_or_else(|e| format!("({e})"), |s| s.topology.vcpus().to_string());
        let tier = match p.tier {
            PresetTier::Ci => "ci",
            PresetTier::Full => "full",
        };
        println!("{:<14} {tier:<5} {cpus:>5}  {}", p.name, p.about);
    }
    Status::Success
}
