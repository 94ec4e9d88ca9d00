//! `#[ktstr_test(...)]` turns a function returning a
//! `ktstr_harness::workload::Scenario` into a `#[test]` that boots a VM with
//! the requested topology, loads the scheduler, runs the scenario and checks
//! the verdict (see `ktstr_harness::test`).
//!
//! ```ignore
//! #[ktstr_test(topology = "1n1l2c1t", scheduler = "scx_simple", max_gap_ms = 3000)]
//! fn two_cgroups() -> Scenario { catalogue::steady() }
//!
//! #[ktstr_test(gauntlet = ["1n1l2c1t", "1n2l2c1t"], scheduler = "scx_qmap",
//!              flags = [[], ["-f"]], min_cpus = 2)]
//! fn steady() -> Scenario { catalogue::steady() }
//!
//! #[ktstr_test(gauntlet = "presets", min_nodes = 2)]
//! fn across_nodes() -> Scenario { catalogue::steady() }
//! ```
//!
//! A topology is a shape (`1n2l4c2t`) or a preset name from
//! `ktstr_topology::PRESETS` (`numa_asym_2n`); `gauntlet = "presets"` takes
//! every preset that meets the constraints.
//!
//! The first is the test `two_cgroups`; the second expands to
//! `gauntlet_steady::t1n1l2c1t`, `gauntlet_steady::t1n1l2c1t_f`, ... (one
//! test per topology and flag set, filterable as usual: `cargo test
//! gauntlet_steady`). Unknown keys, malformed or impossible topologies, a
//! zero memory size and gauntlets where no preset meets the constraints are
//! compile errors.
//!
//! `programs = ["stress-ng", "cyclictest"]` packs host programs (names on
//! `PATH`, or paths) with their shared libraries into the guest at
//! `/usr/bin/<name>`, for the scenario's payloads to run;
//! `files = [("data/in.txt", "/opt/in.txt")]` packs host files (relative to
//! the package's `Cargo.toml`) at guest paths. A program that is not
//! installed makes the test ignored (or, run directly, fail) naming the
//! package that installs it.
//!
//! # Tests whose prerequisites are missing
//!
//! Under the default test harness a `#[ktstr_test]` without a kernel (or its
//! scheduler, or QEMU/KVM) fails, saying how to get one. Every test is also
//! registered with `ktstr_harness::test::KTSTR_TESTS`; a test target that
//! sets `harness = false` and runs them with
//! `fn main() -> std::process::ExitCode { ktstr_harness::test::test_main() }`
//! reports such a test as *ignored* by name instead (still failing under
//! `CI=true`). Nothing else changes: names, filters and `--list` are libtest's.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::{format_ident, quote};
use syn::parse::Parser;
use syn::{Expr, ExprArray, ExprLit, ItemFn, Lit, LitStr, meta::ParseNestedMeta};

mod expect;
mod guest;
mod monitor;
mod spec;

#[cfg(test)]
use spec::Constraints;
use spec::TestAttr;

#[proc_macro_attribute]
pub fn ktstr_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand(attr.into(), item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(attr: Tokens, item: Tokens) -> syn::Result<Tokens> {
    let mut spec = TestAttr::default();
    let parser = syn::meta::parser(|meta| spec.parse_key(meta));
    parser.parse2(attr)?;
    spec.check()?;
    let mut func: ItemFn = syn::parse2(item)?;
    if !func.sig.inputs.is_empty() {
        return Err(syn::Error::new_spanned(
            &func.sig.inputs,
            "a #[ktstr_test] function takes no arguments and returns the Scenario to run",
        ));
    }
    let name = func.sig.ident.clone();
    let scenario_fn = format_ident!("__ktstr_scenario_{}", name);
    func.sig.ident = scenario_fn.clone();
    let topologies = spec.topologies()?;
    let flag_sets = if spec.flags.is_empty() {
        vec![Vec::new()]
    } else {
        spec.flags.clone()
    };
    let single = spec.gauntlet.is_none();
    let mut tests = Vec::new();
    for topo in &topologies {
        for flags in &flag_sets {
            let (test_ident, test_name) = if single {
                (name.clone(), name.to_string())
            } else {
                let suffix = flag_suffix(flags);
                (
                    format_ident!("t{}{}", topo, suffix),
                    format!(
                        "gauntlet/{name}/{topo}{}",
                        if flags.is_empty() {
                            String::new()
                        } else {
                            format!("/{}", flags.join(" "))
                        }
                    ),
                )
            };
            let value = spec.test_value(&test_name, topo, flags, &scenario_fn);
            let decl = format_ident!("__KTSTR_TEST_{}", test_ident);
            let registered = format_ident!("__KTSTR_REGISTERED_{}", test_ident);
            tests.push(quote! {
                #[allow(non_upper_case_globals)]
                const #decl: ::ktstr_harness::test::KtstrTest = #value;
                #[test]
                fn #test_ident() { ::ktstr_harness::test::run(&#decl) }
                #[::ktstr_harness::__linkme::distributed_slice(::ktstr_harness::test::KTSTR_TESTS)]
                #[linkme(crate = ::ktstr_harness::__linkme)]
                #[allow(non_upper_case_globals)]
                static #registered: ::ktstr_harness::test::Registered =
                    ::ktstr_harness::test::Registered {
                        path: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#test_ident)),
                        test: #decl,
                    };
            });
        }
    }
    let vis = &func.vis;
    let out = if single {
        quote! {
            #[allow(non_snake_case)]
            #func
            #(#tests)*
        }
    } else {
        let module = format_ident!("gauntlet_{}", name);
        quote! {
            #[allow(non_snake_case)]
            #func
            #[allow(non_snake_case)]
            #vis mod #module {
                use super::*;
                #(#tests)*
            }
        }
    };
    Ok(out)
}

/// `["-f", "-s", "100"]` → `_f_s_100`: identifier-safe, readable.
fn flag_suffix(flags: &[String]) -> String {
    flags
        .iter()
        .map(|f| {
            let clean: String = f
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            format!("_{}", clean.trim_matches('_'))
        })
        .collect()
}

fn lit_str(e: &Expr) -> syn::Result<LitStr> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}

fn str_array(e: &Expr) -> syn::Result<Vec<LitStr>> {
    match e {
        Expr::Array(ExprArray { elems, .. }) => elems.iter().map(lit_str).collect(),
        other => Err(syn::Error::new_spanned(
            other,
            "expected an array of string literals, e.g. [\"-s\", \"20000\"]",
        )),
    }
}

fn value(meta: &ParseNestedMeta) -> syn::Result<Expr> {
    meta.value()?.parse()
}

fn int(meta: &ParseNestedMeta) -> syn::Result<u64> {
    match value(meta)? {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse(),
        other => Err(syn::Error::new_spanned(other, "expected an integer")),
    }
}

fn err(span: Span, msg: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(span, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(attr: &str) -> Result<String, String> {
        let attr: Tokens = attr.parse().unwrap();
        let item: Tokens = "fn t() -> Scenario { todo!() }".parse().unwrap();
        expand(attr, item)
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn one_topology_is_one_test_named_after_the_function() {
        let out = expand_str(r#"topology = "1n2l2c1t", scheduler = "scx_simple""#).unwrap();
        assert!(out.contains("fn __ktstr_scenario_t"), "{out}");
        assert!(out.contains("# [test] fn t ()"), "{out}");
        assert!(out.contains("\"1n2l2c1t\""), "{out}");
    }

    #[test]
    fn a_gauntlet_expands_over_presets_and_flags_within_constraints() {
        let out = expand_str(
            r#"gauntlet = ["1n1l1c1t", "1n1l2c1t", "1n1l1c2t"], flags = [[], ["-f"]], min_cpus = 2"#,
        )
        .unwrap();
        assert!(out.contains("mod gauntlet_t"), "{out}");
        for t in ["t1n1l2c1t", "t1n1l2c1t_f", "t1n1l1c2t", "t1n1l1c2t_f"] {
            assert!(out.contains(&format!("fn {t} ()")), "{t} missing: {out}");
        }
        assert!(
            !out.contains("fn t1n1l1c1t"),
            "1 CPU is below min_cpus: {out}"
        );
        assert!(out.contains("gauntlet/t/1n1l2c1t/-f"), "{out}");
    }

    #[test]
    fn gauntlet_presets_takes_every_preset_meeting_the_constraints() {
        let out = expand_str(r#"gauntlet = "presets", min_nodes = 2, max_cpus = 8"#).unwrap();
        for t in ["t2n2l1c1t", "tnuma_asym_2n", "t2n2l2c1t", "t2n4l2c1t"] {
            assert!(out.contains(&format!("fn {t} ()")), "{t} missing: {out}");
        }
        for t in ["t1n1l2c1t", "t2n2l4c2t", "t4n8l4c2t"] {
            assert!(!out.contains(&format!("fn {t} ()")), "{t} admitted: {out}");
        }
        let one = expand_str(r#"topology = "numa_asym_2n""#).unwrap();
        assert!(one.contains("\"numa_asym_2n\""), "{one}");
    }

    #[test]
    fn misuse_is_a_compile_error() {
        let cases = [
            (r#"topology = "1n2x4c1t""#, "LLC count"),
            (r#"topology = "2n3l1c1t""#, "cannot be split"),
            (
                r#"topolgy = "1n1l1c1t""#,
                "unknown #[ktstr_test] key `topolgy`",
            ),
            (r#"memory_mib = 0"#, "memory_mib must be at least 1"),
            (
                r#"topology = "1n1l1c1t", gauntlet = ["1n1l1c1t"]"#,
                "either",
            ),
            (
                r#"gauntlet = ["1n1l1c1t"], min_cpus = 4"#,
                "no gauntlet topology",
            ),
            (
                r#"topology = "1n1l1c1t", needs_smt = true"#,
                "does not meet",
            ),
            (r#"max_spread_pct = "x""#, "expected a number"),
            (
                r#"expect_fail = "stuk""#,
                "unknown verdict kind \"stuk\"; one of",
            ),
            (
                r#"scheduler = "scx_qmap", expect_scx_error = """#,
                "expect_scx_error needs the text",
            ),
            (r#"expect_scx_error = "x""#, "need a sched_ext `scheduler`"),
            (
                r#"scheduler = "s", expect_fail = "stuck", expect_scx_error = "x""#,
                "scheduler_kicked",
            ),
            (
                r#"scheduler = "s", watchdog_timeout_ms = 30001"#,
                "1..=30000",
            ),
            (
                r#"watchdog_timeout_ms = 1000"#,
                "need a sched_ext `scheduler`",
            ),
            (r#"duration_ms = 0"#, "at least 1"),
            (r#"duration_ms = 10, step_ms = 5"#, "either"),
            (r#"programs = ["stress ng"]"#, "without spaces"),
            (r#"programs = "stress-ng""#, "array of string literals"),
            (r#"files = [("a", "opt/a")]"#, "must be absolute"),
            (r#"files = ["a"]"#, "(host path, guest path) pairs"),
            (
                r#"files = [("a", "/opt/a"), ("b", "/opt/a")]"#,
                "given twice",
            ),
            (
                r#"monitor = "loud""#,
                "monitor must be \"fail\", \"report\" or \"off\"",
            ),
            (r#"monitor_stall = 1"#, "expected a string literal"),
            (r#"topology = "numa_asym_9n""#, "no topology preset"),
            (r#"gauntlet = "everything""#, "\"presets\""),
        ];
        for (attr, want) in cases {
            let e = expand_str(attr).expect_err(attr);
            assert!(e.contains(want), "{attr}: {e}");
        }
    }

    #[test]
    fn expectations_and_knobs_reach_the_test() {
        let out = expand_str(
            r#"scheduler = "scx_qmap", expect_scx_error = "test triggering error", duration_ms = 3000"#,
        )
        .unwrap();
        assert!(
            out.contains(
                "scx_error : :: core :: option :: Option :: Some (\"test triggering error\")"
            ),
            "{out}"
        );
        assert!(
            out.contains("duration_ms : :: core :: option :: Option :: Some (3000u64)"),
            "{out}"
        );
        assert!(out.contains("fresh_attach : false"), "{out}");
        let out = expand_str(r#"expect_fail = "stuck""#).unwrap();
        assert!(out.contains("FailureKind :: Stuck"), "{out}");
        let out = expand_str(r#"scheduler = "scx_simple", fresh_attach = true"#).unwrap();
        assert!(out.contains("fresh_attach : true"), "{out}");
    }

    #[test]
    fn programs_and_files_reach_the_test_with_host_paths_made_absolute() {
        let out = expand_str(
            r#"programs = ["stress-ng"], files = [("data/in.txt", "/opt/in.txt"), ("/etc/hostname", "/opt/h")]"#,
        )
        .unwrap();
        assert!(out.contains(r#"programs : & ["stress-ng"]"#), "{out}");
        assert!(out.contains("CARGO_MANIFEST_DIR"), "{out}");
        assert!(out.contains(r#"("/etc/hostname" , "/opt/h")"#), "{out}");
    }

    #[test]
    fn a_specific_monitor_key_wins_over_monitor_in_any_order() {
        let policy = |p: &str| format!(":: ktstr_harness :: test :: MonitorPolicy :: {p}");
        let out = expand_str(r#"monitor_stall = "fail", monitor = "off""#).unwrap();
        assert!(
            out.contains(&format!("stall : {}", policy("Fail"))),
            "{out}"
        );
        assert!(
            out.contains(&format!("deep_dsq : {}", policy("Off"))),
            "{out}"
        );
        assert!(
            out.contains(&format!("imbalance : {}", policy("Off"))),
            "{out}"
        );
        // Nothing said: the harness's defaults.
        let out = expand_str(r#"topology = "1n1l2c1t""#).unwrap();
        assert!(out.contains("MonitorSpec :: DEFAULT . stall"), "{out}");
    }

    #[test]
    fn constraints_filter_shapes() {
        let c = Constraints {
            min_cpus: Some(2),
            needs_smt: true,
            ..Default::default()
        };
        let shape = |s: &str| ktstr_topology::resolve(s).unwrap().topology;
        assert!(c.admits(&shape("1n1l1c2t")));
        assert!(!c.admits(&shape("1n1l2c1t")));
        let numa = Constraints {
            min_nodes: Some(2),
            min_llcs: Some(3),
            ..Default::default()
        };
        assert!(numa.admits(&shape("numa_asym_2n")));
        assert!(!numa.admits(&shape("2n2l1c1t")));
    }
}
