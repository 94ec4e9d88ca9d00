//! The guest's view of its topology, from two sources: a busybox probe that
//! prints sysfs (needs guest user space) and the kernel log (`sched_verbose`
//! domain dumps, SRAT lines), which works even where user space cannot run.
//! Both are compared with what `LinuxView::expected` derives from the
//! requested topology.

use std::collections::BTreeMap;

use ktstr_topology::{LinuxView, NumaTopology, format_cpu_list, parse_cpu_list};

/// Prints one `KTSTR-TOPO` line per fact, then reboots.
pub const PROBE_INIT: &str = r#"#!/bin/sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t debugfs debugfs /sys/kernel/debug
echo "KTSTR-TOPO online $($B cat /sys/devices/system/cpu/online)"
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  n=${c##*/cpu}
  node=-1
  for d in $c/node[0-9]*; do [ -e "$d" ] && node=${d##*/node}; done
  echo "KTSTR-TOPO cpu $n sib=$($B cat $c/topology/thread_siblings_list) core=$($B cat $c/topology/core_cpus_list) pkg=$($B cat $c/topology/physical_package_id) l3=$($B cat $c/cache/index3/shared_cpu_list 2>/dev/null) node=$node"
  for d in /sys/kernel/debug/sched/domains/cpu$n/domain[0-9]*; do
    [ -e "$d/name" ] && echo "KTSTR-TOPO dom $n ${d##*/domain} $($B cat $d/name)"
  done
done
for d in /sys/devices/system/node/node[0-9]*; do
  kb=$($B awk '/MemTotal/ {print $4}' $d/meminfo)
  echo "KTSTR-TOPO node ${d##*/node} cpus=$($B cat $d/cpulist) memkb=$kb dist=$($B cat $d/distance)"
done
echo "KTSTR-TOPO bulk $($B cat /sys/class/virtio-ports/vport0p1/name 2>/dev/null)"
echo "KTSTR-TOPO end"
$B reboot -f
"#;

/// Kernel arguments the checks rely on: domain dumps in debugfs and, at KERN_DEBUG, in the log.
pub const CMDLINE: &str = "rdinit=/init sched_verbose loglevel=8";

#[derive(Debug, Default)]
pub struct ProbeCpu {
    pub sib: String,
    pub core: String,
    pub pkg: u32,
    pub l3: String,
    pub node: i64,
    pub domains: BTreeMap<u32, String>,
}

#[derive(Debug, Default)]
pub struct Probe {
    pub online: String,
    pub cpus: BTreeMap<u32, ProbeCpu>,
    /// node -> (cpulist, MemTotal kB, distances)
    pub nodes: BTreeMap<u32, (String, u64, String)>,
    pub complete: bool,
    /// The name of the virtio-serial port the wire runs on (empty if the
    /// device did not come up).
    pub bulk: String,
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .unwrap_or("")
}

/// Parses the probe's lines out of COM1 (kernel messages may interleave).
pub fn parse_probe(com1: &str) -> Probe {
    let mut p = Probe::default();
    for line in com1.lines() {
        let Some(rest) = line.trim_end_matches('\r').split("KTSTR-TOPO ").nth(1) else {
            continue;
        };
        let mut words = rest.split_whitespace();
        match words.next() {
            Some("online") => p.online = words.next().unwrap_or("").to_string(),
            Some("cpu") => {
                let Some(n) = words.next().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let c = p.cpus.entry(n).or_default();
                c.sib = field(rest, "sib=").to_string();
                c.core = field(rest, "core=").to_string();
                c.pkg = field(rest, "pkg=").parse().unwrap_or(u32::MAX);
                c.l3 = field(rest, "l3=").to_string();
                c.node = field(rest, "node=").parse().unwrap_or(-1);
            }
            Some("dom") => {
                let (Some(cpu), Some(level), Some(name)) = (
                    words.next().and_then(|n| n.parse().ok()),
                    words.next().and_then(|n| n.parse().ok()),
                    words.next(),
                ) else {
                    continue;
                };
                p.cpus
                    .entry(cpu)
                    .or_default()
                    .domains
                    .insert(level, name.to_string());
            }
            Some("node") => {
                let Some(n) = words.next().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                let dist = rest.split("dist=").nth(1).unwrap_or("").trim().to_string();
                let kb = field(rest, "memkb=").parse().unwrap_or(0);
                p.nodes
                    .insert(n, (field(rest, "cpus=").to_string(), kb, dist));
            }
            Some("bulk") => p.bulk = words.next().unwrap_or("").to_string(),
            Some("end") => p.complete = true,
            _ => {}
        }
    }
    p
}

/// Domain names per CPU from the kernel's `sched_verbose` dump
/// (`CPU0 attaching sched-domain(s):` then ` domain-0: span=0-1 level=MC`).
pub fn log_domains(com1: &str) -> BTreeMap<u32, Vec<(String, String)>> {
    let mut out: BTreeMap<u32, Vec<(String, String)>> = BTreeMap::new();
    let mut current = None;
    for line in com1.lines() {
        let text = line.split("] ").nth(1).unwrap_or(line).trim();
        if let Some(rest) = text.strip_prefix("CPU") {
            current = rest
                .strip_suffix(" attaching sched-domain(s):")
                .and_then(|n| n.parse().ok());
            if let Some(cpu) = current {
                out.insert(cpu, Vec::new());
            }
            continue;
        }
        if let (Some(cpu), true) = (current, text.starts_with("domain-")) {
            let span = field(text, "span=").to_string();
            let level = field(text, "level=").to_string();
            out.entry(cpu).or_default().push((level, span));
        }
    }
    out
}

/// Bytes of memory per node from the kernel's `ACPI: SRAT: Node N PXM P [mem a-b]` lines.
pub fn srat_node_memory(com1: &str) -> BTreeMap<u32, u64> {
    let mut out = BTreeMap::new();
    for line in com1.lines() {
        let Some(rest) = line.split("ACPI: SRAT: Node ").nth(1) else {
            continue;
        };
        let node: Option<u32> = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        let range = rest
            .split("[mem ")
            .nth(1)
            .and_then(|r| r.split(']').next())
            .and_then(|r| r.split_once('-'));
        let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
        if let (Some(node), Some((a, b))) = (node, range) {
            if let (Some(a), Some(b)) = (hex(a), hex(b)) {
                *out.entry(node).or_insert(0) += b + 1 - a;
            }
        }
    }
    out
}

fn list(cpus: &[u32]) -> String {
    format_cpu_list(cpus)
}

/// Mismatches between the sysfs probe and the topology (empty = exact match).
pub fn compare_probe(probe: &Probe, topo: &NumaTopology, memory_mib: u64) -> Vec<String> {
    let want = LinuxView::expected(topo, memory_mib);
    let mut bad = Vec::new();
    let mut check = |what: String, got: &str, expected: &str| {
        if got != expected {
            bad.push(format!("{what}: guest {got:?}, topology {expected:?}"));
        }
    };
    if !probe.complete {
        check("probe".into(), "incomplete", "complete");
    }
    // The wire's port exists: the virtio-mmio device's interrupt is routed
    // whichever firmware tables (MP table or ACPI) the shape needs.
    check(
        "virtio bulk port".into(),
        &probe.bulk,
        ktstr_wire::BULK_PORT_NAME,
    );
    check(
        "online".into(),
        &probe.online,
        &list(&(0..want.cpus.len() as u32).collect::<Vec<_>>()),
    );
    check(
        "cpu count".into(),
        &probe.cpus.len().to_string(),
        &want.cpus.len().to_string(),
    );
    for (i, w) in want.cpus.iter().enumerate() {
        let Some(g) = probe.cpus.get(&(i as u32)) else {
            continue;
        };
        check(
            format!("cpu{i} thread_siblings_list"),
            &g.sib,
            &list(&w.thread_siblings),
        );
        check(
            format!("cpu{i} core_cpus_list"),
            &g.core,
            &list(&w.core_cpus),
        );
        check(
            format!("cpu{i} package"),
            &g.pkg.to_string(),
            &w.package.to_string(),
        );
        check(
            format!("cpu{i} L3 shared_cpu_list"),
            &g.l3,
            &list(&w.llc_cpus),
        );
        check(
            format!("cpu{i} node"),
            &g.node.to_string(),
            &w.node.to_string(),
        );
        let names: Vec<&str> = g.domains.values().map(String::as_str).collect();
        check(
            format!("cpu{i} sched domains"),
            &names.join(","),
            &w.domains.join(","),
        );
    }
    check(
        "node count".into(),
        &probe.nodes.len().to_string(),
        &want.nodes.len().to_string(),
    );
    for (n, w) in want.nodes.iter().enumerate() {
        let Some((cpus, kb, dist)) = probe.nodes.get(&(n as u32)) else {
            continue;
        };
        check(format!("node{n} cpulist"), cpus, &list(&w.cpus));
        let want_dist: Vec<String> = w.distances.iter().map(|d| d.to_string()).collect();
        check(format!("node{n} distance"), dist, &want_dist.join(" "));
        // MemTotal is the node's RAM minus what firmware and the kernel keep.
        let want_kb = w.memory_mib * 1024;
        if *kb > want_kb || *kb < want_kb / 2 {
            check(
                format!("node{n} MemTotal within (50%, 100%] of the assigned memory"),
                &format!("{kb} kB"),
                &format!("{want_kb} kB"),
            );
        }
    }
    bad
}

/// Mismatches between the kernel log and the topology: domain names and spans
/// per CPU, CPU and node counts, and (with several nodes) SRAT memory per node.
pub fn compare_log(com1: &str, topo: &NumaTopology, memory_mib: u64) -> Vec<String> {
    let want = LinuxView::expected(topo, memory_mib);
    let mut bad = Vec::new();
    let nodes = want.nodes.len();
    let cpus = want.cpus.len();
    let node_word = if nodes == 1 { "node" } else { "nodes" };
    let cpu_word = if cpus == 1 { "CPU" } else { "CPUs" };
    let brought_up = format!("smp: Brought up {nodes} {node_word}, {cpus} {cpu_word}");
    if !com1.contains(&brought_up) {
        bad.push(format!("kernel log lacks {brought_up:?}"));
    }
    let domains = log_domains(com1);
    for (i, w) in want.cpus.iter().enumerate() {
        let got: Vec<&str> = domains
            .get(&(i as u32))
            .map(|d| d.iter().map(|(level, _)| level.as_str()).collect())
            .unwrap_or_default();
        if got != w.domains {
            bad.push(format!(
                "cpu{i} domains in the kernel log {got:?}, topology {:?}",
                w.domains
            ));
        }
        if w.domains.last() == Some(&"NUMA") {
            let span = domains
                .get(&(i as u32))
                .and_then(|d| d.last())
                .map(|(_, span)| parse_cpu_list(span).ok());
            let all: Vec<u32> = (0..cpus as u32).collect();
            if span != Some(Some(all.clone())) {
                bad.push(format!(
                    "cpu{i} top NUMA domain span {span:?}, want {all:?}"
                ));
            }
        }
    }
    if nodes > 1 {
        let srat = srat_node_memory(com1);
        for (n, w) in want.nodes.iter().enumerate() {
            let got = srat.get(&(n as u32)).copied().unwrap_or(0);
            let want_bytes = w.memory_mib << 20;
            // Node 0 loses the legacy 640 KiB-1 MiB hole (and firmware's pages).
            if got > want_bytes || got + (1 << 20) < want_bytes {
                bad.push(format!(
                    "node{n} SRAT memory {got:#x} bytes, topology {want_bytes:#x}"
                ));
            }
        }
    }
    bad
}
