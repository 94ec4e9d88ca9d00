//! The attribute's keys, their compile-time checks, and the runner call.

use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, ExprLit, Ident, Lit, LitStr};

use ktstr_topology::{NumaTopology, PRESETS};

use crate::expect::Expectations;
use crate::monitor::MonitorKeys;
use crate::{err, int, lit_str, str_array, value};

/// Gauntlet constraints: presets that do not meet them are not generated.
#[derive(Default)]
pub struct Constraints {
    pub min_cpus: Option<u32>,
    pub max_cpus: Option<u32>,
    pub min_llcs: Option<u32>,
    pub min_nodes: Option<u32>,
    pub needs_smt: bool,
}

impl Constraints {
    pub fn admits(&self, t: &NumaTopology) -> bool {
        let cpus = t.vcpus();
        let llcs: u32 = t.nodes.iter().map(|n| n.llcs).sum();
        let nodes = u32::try_from(t.nodes.len()).unwrap_or(u32::MAX);
        self.min_cpus.is_none_or(|m| cpus >= m)
            && self.max_cpus.is_none_or(|m| cpus <= m)
            && self.min_llcs.is_none_or(|m| llcs >= m)
            && self.min_nodes.is_none_or(|m| nodes >= m)
            && (!self.needs_smt || t.threads_per_core > 1)
    }
}

#[derive(Default)]
pub struct TestAttr {
    topology: Option<LitStr>,
    pub gauntlet: Option<(Span, Vec<LitStr>)>,
    scheduler: Option<LitStr>,
    args: Vec<LitStr>,
    pub flags: Vec<Vec<String>>,
    memory_mib: Option<u64>,
    step_ms: Option<u64>,
    timeout_s: Option<u64>,
    max_gap_ms: Option<u64>,
    max_spread_pct: Option<f64>,
    max_wake_p99_us: Option<u64>,
    require_isolation: Option<bool>,
    require_scheduler_attached: Option<bool>,
    monitor: MonitorKeys,
    constraints: Constraints,
    expect: Expectations,
    programs: Vec<LitStr>,
    files: Vec<(LitStr, LitStr)>,
    fresh_attach: bool,
}

fn float(meta: &ParseNestedMeta) -> syn::Result<f64> {
    match value(meta)? {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse(),
        other => Err(syn::Error::new_spanned(other, "expected a number")),
    }
}

fn boolean(meta: &ParseNestedMeta) -> syn::Result<bool> {
    match value(meta)? {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.value),
        other => Err(syn::Error::new_spanned(other, "expected true or false")),
    }
}

/// A preset name or the text form, checked; the name the test carries
/// (the preset's, or the normalised text form) and its shape.
fn parse_topology(lit: &LitStr) -> syn::Result<(String, NumaTopology)> {
    let text = lit.value();
    let shape = ktstr_topology::resolve(&text).map_err(|e| err(lit.span(), e))?;
    let name = match ktstr_topology::preset(text.trim()) {
        Some(p) => p.name.to_string(),
        None => text
            .trim()
            .parse::<ktstr_topology::Topology>()
            .map_err(|e| err(lit.span(), e))?
            .to_string(),
    };
    Ok((name, shape.topology))
}

/// `gauntlet = [..]` (those shapes) or `gauntlet = "presets"` (the catalogue).
fn gauntlet_list(v: &Expr) -> syn::Result<Vec<LitStr>> {
    match v {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if s.value() == "presets" => Ok(PRESETS
            .iter()
            .map(|p| LitStr::new(p.name, s.span()))
            .collect()),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Err(err(
            s.span(),
            "gauntlet takes a list of shapes or \"presets\" (every preset that meets the constraints)",
        )),
        other => str_array(other),
    }
}

impl TestAttr {
    pub fn parse_key(&mut self, meta: ParseNestedMeta) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(Ident::to_string)
            .unwrap_or_default();
        match key.as_str() {
            "topology" => self.topology = Some(lit_str(&value(&meta)?)?),
            "gauntlet" => {
                let v = value(&meta)?;
                self.gauntlet = Some((meta.path.span(), gauntlet_list(&v)?));
            }
            "scheduler" => self.scheduler = Some(lit_str(&value(&meta)?)?),
            "args" => self.args = str_array(&value(&meta)?)?,
            "flags" => {
                let v = value(&meta)?;
                let Expr::Array(ExprArray { elems, .. }) = &v else {
                    return Err(syn::Error::new_spanned(
                        v,
                        "expected an array of flag sets, e.g. [[], [\"-f\"]]",
                    ));
                };
                self.flags = elems
                    .iter()
                    .map(|e| Ok(str_array(e)?.iter().map(LitStr::value).collect()))
                    .collect::<syn::Result<_>>()?;
            }
            "memory_mib" => {
                let m = int(&meta)?;
                if m == 0 {
                    return Err(meta.error("memory_mib must be at least 1"));
                }
                self.memory_mib = Some(m);
            }
            "step_ms" => self.step_ms = Some(int(&meta)?),
            "timeout_s" => self.timeout_s = Some(int(&meta)?),
            "max_gap_ms" => self.max_gap_ms = Some(int(&meta)?),
            "max_spread_pct" => self.max_spread_pct = Some(float(&meta)?),
            "max_wake_p99_us" => self.max_wake_p99_us = Some(int(&meta)?),
            "require_isolation" => self.require_isolation = Some(boolean(&meta)?),
            "require_scheduler_attached" => self.require_scheduler_attached = Some(boolean(&meta)?),
            "monitor" | "monitor_stall" | "monitor_dsq" | "monitor_imbalance" => {
                self.monitor.parse_key(&key, &meta)?
            }
            "min_cpus" => self.constraints.min_cpus = Some(small(&meta)?),
            "max_cpus" => self.constraints.max_cpus = Some(small(&meta)?),
            "min_llcs" => self.constraints.min_llcs = Some(small(&meta)?),
            "min_nodes" => self.constraints.min_nodes = Some(small(&meta)?),
            "needs_smt" => self.constraints.needs_smt = boolean(&meta)?,
            "expect_fail" | "expect_scx_error" | "watchdog_timeout_ms" | "duration_ms" => {
                self.expect.parse_key(&key, &meta)?
            }
            "programs" => self.programs = crate::guest::programs(&value(&meta)?)?,
            "files" => self.files = crate::guest::files(&value(&meta)?)?,
            "fresh_attach" => self.fresh_attach = boolean(&meta)?,
            other => {
                return Err(meta.error(format!(
                    "unknown #[ktstr_test] key `{other}`; expected one of topology, gauntlet, \
                     scheduler, args, flags, memory_mib, step_ms, timeout_s, max_gap_ms, \
                     max_spread_pct, max_wake_p99_us, require_isolation, \
                     require_scheduler_attached, monitor, monitor_stall, monitor_dsq, \
                     monitor_imbalance, min_cpus, max_cpus, min_llcs, min_nodes, needs_smt, \
                     expect_fail, expect_scx_error, watchdog_timeout_ms, duration_ms, \
                     programs, files, fresh_attach"
                )));
            }
        }
        Ok(())
    }

    /// Checks between keys (each key's own value is checked as it is parsed).
    pub fn check(&self) -> syn::Result<()> {
        self.expect
            .check(self.scheduler.is_some(), self.step_ms.is_some())
    }

    /// The topologies to generate tests for, each checked and filtered.
    pub fn topologies(&self) -> syn::Result<Vec<String>> {
        match (&self.topology, &self.gauntlet) {
            (Some(t), Some(_)) => Err(err(
                t.span(),
                "give either `topology` (one test) or `gauntlet` (one test per preset)",
            )),
            (Some(t), None) => {
                let (name, topo) = parse_topology(t)?;
                if !self.constraints.admits(&topo) {
                    return Err(err(
                        t.span(),
                        format!("topology {name} does not meet this test's constraints"),
                    ));
                }
                Ok(vec![name])
            }
            (None, Some((span, list))) => {
                let mut out = Vec::new();
                for lit in list {
                    let (name, topo) = parse_topology(lit)?;
                    if self.constraints.admits(&topo) {
                        out.push(name);
                    }
                }
                if out.is_empty() {
                    return Err(err(
                        *span,
                        "no gauntlet topology meets this test's constraints",
                    ));
                }
                Ok(out)
            }
            (None, None) => Ok(vec!["1n1l2c1t".into()]),
        }
    }

    /// `ktstr_harness::test::run(&KtstrTest { .. })` for one generated test.
    /// The `KtstrTest` value (a constant expression) for one generated test.
    pub fn test_value(
        &self,
        test_name: &str,
        topology: &str,
        flags: &[String],
        scenario_fn: &Ident,
    ) -> Tokens {
        let scheduler = match &self.scheduler {
            Some(s) => quote!(::core::option::Option::Some(#s)),
            None => quote!(::core::option::Option::None),
        };
        let args: Vec<String> = self
            .args
            .iter()
            .map(LitStr::value)
            .chain(flags.iter().cloned())
            .collect();
        let opt_u64 = |v: Option<u64>| match v {
            Some(v) => quote!(::core::option::Option::Some(#v)),
            None => quote!(::core::option::Option::None),
        };
        let memory = opt_u64(self.memory_mib);
        let step = opt_u64(self.step_ms);
        let timeout = opt_u64(self.timeout_s);
        let expect_fields = self.expect.fields();
        let programs = &self.programs;
        let files = crate::guest::files_value(&self.files);
        let mut overrides = Vec::new();
        if let Some(v) = self.max_gap_ms {
            overrides.push(quote!(t.max_gap_ms = #v;));
        }
        if let Some(v) = self.max_spread_pct {
            overrides.push(quote!(t.max_spread_pct = #v;));
        }
        if let Some(v) = self.max_wake_p99_us {
            overrides.push(quote!(t.max_wake_p99_us = ::core::option::Option::Some(#v);));
        }
        if let Some(v) = self.require_isolation {
            overrides.push(quote!(t.require_isolation = #v;));
        }
        if let Some(v) = self.require_scheduler_attached {
            overrides.push(quote!(t.require_scheduler_attached = #v;));
        }
        let monitor = self.monitor.spec();
        let fresh_attach = self.fresh_attach;
        quote! {
            ::ktstr_harness::test::KtstrTest {
                name: #test_name,
                topology: #topology,
                scheduler: #scheduler,
                args: &[#(#args),*],
                memory_mib: #memory,
                step_ms: #step,
                timeout_s: #timeout,
                #expect_fields
                thresholds: {
                    fn thresholds(t: &mut ::ktstr_harness::workload::Thresholds) {
                        let _ = &t;
                        #(#overrides)*
                    }
                    thresholds
                },
                scenario: #scenario_fn,
                programs: &[#(#programs),*],
                files: #files,
                monitor: #monitor,
                fresh_attach: #fresh_attach,
            }
        }
    }
}

fn small(meta: &ParseNestedMeta) -> syn::Result<u32> {
    u32::try_from(int(meta)?).map_err(|_| meta.error("value too large"))
}
