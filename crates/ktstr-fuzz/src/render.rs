//! A scenario written out as a `#[ktstr_test]` an author pastes into a
//! test file: the same topology, scheduler and arguments, the scenario as
//! Rust values (not JSON), using the names `ktstr_harness::workload`
//! exports.

use std::fmt::Write;

use ktstr_workload::{CgroupSpec, CpusetSpec, Op, Scenario, Step, WorkKind};

/// What the test declares besides the scenario.
#[derive(Clone, Debug)]
pub struct TestHeader<'a> {
    /// The function name.
    pub name: &'a str,
    pub topology: &'a str,
    /// Scheduler name or path; `None` for EEVDF.
    pub scheduler: Option<&'a str>,
    pub args: &'a [String],
    /// A comment line above the test (how it was found).
    pub comment: &'a str,
}

fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn cpuset(c: &CpusetSpec) -> String {
    match c {
        CpusetSpec::All => "CpusetSpec::All".into(),
        CpusetSpec::Llc(i) => format!("CpusetSpec::Llc({i})"),
        CpusetSpec::Node(i) => format!("CpusetSpec::Node({i})"),
        CpusetSpec::Range(a, b) => format!("CpusetSpec::Range({a}, {b})"),
        CpusetSpec::Slice { index, of } => {
            format!("CpusetSpec::Slice {{ index: {index}, of: {of} }}")
        }
        CpusetSpec::Overlap { index, of, extra } => {
            format!("CpusetSpec::Overlap {{ index: {index}, of: {of}, extra: {extra} }}")
        }
        CpusetSpec::List(l) => format!("CpusetSpec::List(vec!{l:?})"),
    }
}

fn work(w: &WorkKind) -> String {
    match w {
        WorkKind::Spin => "WorkKind::Spin".into(),
        WorkKind::Yield => "WorkKind::Yield".into(),
        WorkKind::PingPong => "WorkKind::PingPong".into(),
        WorkKind::Bursty { on_ms, off_ms } => {
            format!("WorkKind::Bursty {{ on_ms: {on_ms}, off_ms: {off_ms} }}")
        }
        WorkKind::Mixed => "WorkKind::Mixed".into(),
        WorkKind::ForkChurn => "WorkKind::ForkChurn".into(),
        WorkKind::Payload { path, args } => {
            let args: Vec<String> = args
                .iter()
                .map(|a| format!("{}.into()", quote(a)))
                .collect();
            format!(
                "WorkKind::Payload {{ path: {}.into(), args: vec![{}] }}",
                quote(path),
                args.join(", ")
            )
        }
    }
}

fn cgroup(c: &CgroupSpec, indent: &str) -> String {
    let weight = c.weight.map_or("None".into(), |w| format!("Some({w})"));
    let children: Vec<String> = c
        .children
        .iter()
        .map(|k| cgroup(k, &format!("{indent}    ")))
        .collect();
    let children = if children.is_empty() {
        "Vec::new()".to_string()
    } else {
        format!("vec![\n{}\n{indent}    ]", children.join(",\n"))
    };
    format!(
        "{indent}CgroupSpec {{\n\
         {indent}    name: {}.into(),\n\
         {indent}    workers: {},\n\
         {indent}    work: {},\n\
         {indent}    cpuset: {},\n\
         {indent}    weight: {weight},\n\
         {indent}    children: {children},\n\
         {indent}}}",
        quote(&c.name),
        c.workers,
        work(&c.work),
        cpuset(&c.cpuset),
    )
}

fn op(o: &Op, indent: &str) -> String {
    match o {
        Op::AddCgroup(c) => format!(
            "{indent}Op::AddCgroup(\n{}\n{indent})",
            cgroup(c, &format!("{indent}    "))
        ),
        Op::RemoveCgroup { name } => format!(
            "{indent}Op::RemoveCgroup {{ name: {}.into() }}",
            quote(name)
        ),
        Op::SetCpuset { cgroup, cpuset: c } => format!(
            "{indent}Op::SetCpuset {{ cgroup: {}.into(), cpuset: {} }}",
            quote(cgroup),
            cpuset(c)
        ),
        Op::MoveTasks { from, to } => format!(
            "{indent}Op::MoveTasks {{ from: {}.into(), to: {}.into() }}",
            quote(from),
            quote(to)
        ),
        Op::SetAffinity { cgroup, cpus } => format!(
            "{indent}Op::SetAffinity {{ cgroup: {}.into(), cpus: {} }}",
            quote(cgroup),
            cpuset(cpus)
        ),
        Op::CpuOffline { cpu } => format!("{indent}Op::CpuOffline {{ cpu: {cpu} }}"),
        Op::CpuOnline { cpu } => format!("{indent}Op::CpuOnline {{ cpu: {cpu} }}"),
        // Not generated; written out whole so a hand-edited plan still renders.
        Op::Payload(p) => format!(
            "{indent}Op::Payload(PayloadSpec {{ name: {}.into(), program: {}.into(), \
             args: vec![{}], cpuset: {}, timeout_ms: {}, figures: None }})",
            quote(&p.name),
            quote(&p.program),
            p.args
                .iter()
                .map(|a| format!("{}.into()", quote(a)))
                .collect::<Vec<_>>()
                .join(", "),
            cpuset(&p.cpuset),
            p.timeout_ms
        ),
    }
}

fn list(items: Vec<String>, indent: &str) -> String {
    if items.is_empty() {
        "Vec::new()".into()
    } else {
        format!("vec![\n{},\n{indent}]", items.join(",\n"))
    }
}

fn step(s: &Step) -> String {
    let i = "            ";
    let inner = format!("{i}    ");
    let items = format!("{inner}    ");
    let ops = list(s.ops_before.iter().map(|o| op(o, &items)).collect(), &inner);
    let cgroups = list(
        s.cgroups.iter().map(|c| cgroup(c, &items)).collect(),
        &inner,
    );
    format!(
        "{i}Step {{\n{i}    duration_ms: {},\n{i}    ops_before: {ops},\n{i}    cgroups: {cgroups},\n{i}}}",
        s.duration_ms
    )
}

/// `scenario` as a `#[ktstr_test]` function with `header`.
pub fn ktstr_test(header: &TestHeader, scenario: &Scenario) -> String {
    let mut keys = vec![format!("topology = {}", quote(header.topology))];
    if let Some(s) = header.scheduler {
        keys.push(format!("scheduler = {}", quote(s)));
    }
    if !header.args.is_empty() {
        let args: Vec<String> = header.args.iter().map(|a| quote(a)).collect();
        keys.push(format!("args = [{}]", args.join(", ")));
    }
    let steps: Vec<String> = scenario.steps.iter().map(step).collect();
    let mut out = String::new();
    let _ = writeln!(out, "// {}", header.comment);
    let _ = writeln!(
        out,
        "// use ktstr_harness::ktstr_test;\n// use ktstr_harness::workload::{{CgroupSpec, CpusetSpec, Op, Scenario, Step, WorkKind}};"
    );
    let _ = writeln!(out, "#[ktstr_test({})]", keys.join(", "));
    let _ = writeln!(out, "fn {}() -> Scenario {{", header.name);
    let _ = writeln!(out, "    Scenario {{");
    let _ = writeln!(out, "        name: {}.into(),", quote(&scenario.name));
    let _ = writeln!(
        out,
        "        steps: vec![\n{},\n        ],",
        steps.join(",\n")
    );
    let _ = writeln!(out, "    }}\n}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_value_renders_as_rust_that_parses() {
        let c = |name: &str, work: WorkKind, cpuset: CpusetSpec| CgroupSpec {
            name: name.into(),
            workers: 2,
            work,
            cpuset,
            weight: Some(50),
            children: Vec::new(),
        };
        let parent = CgroupSpec {
            name: "p".into(),
            workers: 0,
            work: WorkKind::Spin,
            cpuset: CpusetSpec::All,
            weight: None,
            children: vec![c("k", WorkKind::Mixed, CpusetSpec::Range(0, 1))],
        };
        let scenario = Scenario {
            name: "x".into(),
            steps: vec![
                Step {
                    duration_ms: 200,
                    ops_before: Vec::new(),
                    cgroups: vec![
                        c(
                            "a",
                            WorkKind::Bursty {
                                on_ms: 1,
                                off_ms: 2,
                            },
                            CpusetSpec::Llc(0),
                        ),
                        c(
                            "b",
                            WorkKind::PingPong,
                            CpusetSpec::Overlap {
                                index: 0,
                                of: 2,
                                extra: 1,
                            },
                        ),
                        parent,
                    ],
                },
                Step {
                    duration_ms: 300,
                    ops_before: vec![
                        Op::AddCgroup(c("d", WorkKind::ForkChurn, CpusetSpec::Node(0))),
                        Op::SetCpuset {
                            cgroup: "a".into(),
                            cpuset: CpusetSpec::Slice { index: 1, of: 2 },
                        },
                        Op::SetAffinity {
                            cgroup: "b".into(),
                            cpus: CpusetSpec::List(vec![0, 1]),
                        },
                        Op::MoveTasks {
                            from: "a".into(),
                            to: "d".into(),
                        },
                        Op::RemoveCgroup { name: "d".into() },
                    ],
                    cgroups: vec![c(
                        "e",
                        WorkKind::Payload {
                            path: "/bin/true".into(),
                            args: vec!["-x".into()],
                        },
                        CpusetSpec::All,
                    )],
                },
            ],
        };
        let text = ktstr_test(
            &TestHeader {
                name: "fuzz_qmap_seed1",
                topology: "1n1l2c1t",
                scheduler: Some("scx_qmap"),
                args: &["-t".into(), "2".into()],
                comment: "found",
            },
            &scenario,
        );
        let f: syn::ItemFn = syn::parse_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(f.sig.ident, "fuzz_qmap_seed1");
        assert!(text.contains(r#"#[ktstr_test(topology = "1n1l2c1t", scheduler = "scx_qmap", args = ["-t", "2"])]"#), "{text}");
        for piece in [
            "CpusetSpec::Overlap { index: 0, of: 2, extra: 1 }",
            "Op::MoveTasks { from: \"a\".into(), to: \"d\".into() }",
            "CpusetSpec::List(vec![0, 1])",
            "duration_ms: 300",
        ] {
            assert!(text.contains(piece), "{piece} missing:\n{text}");
        }
    }
}
