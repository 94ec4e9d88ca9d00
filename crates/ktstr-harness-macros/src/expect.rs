//! The keys for what a test expects and how long it runs: `expect_fail`,
//! `expect_scx_error`, `watchdog_timeout_ms`, `duration_ms`, checked here
//! so a misuse is a compile error.

use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::LitStr;
use syn::meta::ParseNestedMeta;

use ktstr_workload::FailureKind;

use crate::{int, lit_str, value};

/// sched_ext's upper bound on `ops.timeout_ms` (`SCX_WATCHDOG_MAX_TIMEOUT`);
/// ktstr_harness::test::watchdog says how a scheduler may take it.
const MAX_WATCHDOG_MS: u64 = 30_000;

#[derive(Default)]
pub struct Expectations {
    fail: Option<(LitStr, FailureKind)>,
    scx_error: Option<LitStr>,
    watchdog_timeout_ms: Option<u64>,
    duration_ms: Option<u64>,
}

impl Expectations {
    pub fn parse_key(&mut self, key: &str, meta: &ParseNestedMeta) -> syn::Result<()> {
        match key {
            "expect_fail" => {
                let lit = lit_str(&value(meta)?)?;
                let kind = FailureKind::from_name(&lit.value())
                    .map_err(|e| syn::Error::new(lit.span(), e))?;
                self.fail = Some((lit, kind));
            }
            "expect_scx_error" => {
                let lit = lit_str(&value(meta)?)?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(
                        lit.span(),
                        "expect_scx_error needs the text the kernel's reason or scx_bpf_error() \
                         message must contain",
                    ));
                }
                self.scx_error = Some(lit);
            }
            "watchdog_timeout_ms" => {
                let ms = int(meta)?;
                if !(1..=MAX_WATCHDOG_MS).contains(&ms) {
                    return Err(meta.error(format!(
                        "watchdog_timeout_ms must be in 1..={MAX_WATCHDOG_MS} (sched_ext's limit)"
                    )));
                }
                self.watchdog_timeout_ms = Some(ms);
            }
            "duration_ms" => {
                let ms = int(meta)?;
                if ms == 0 {
                    return Err(meta.error("duration_ms must be at least 1"));
                }
                self.duration_ms = Some(ms);
            }
            _ => return Err(meta.error(format!("not an expectation key: {key}"))),
        }
        Ok(())
    }

    /// Checks between keys.
    pub fn check(&self, has_scheduler: bool, has_step_ms: bool) -> syn::Result<()> {
        let span = proc_macro2::Span::call_site();
        if !has_scheduler && (self.scx_error.is_some() || self.watchdog_timeout_ms.is_some()) {
            return Err(syn::Error::new(
                span,
                "expect_scx_error and watchdog_timeout_ms need a sched_ext `scheduler`",
            ));
        }
        if let (Some((lit, kind)), Some(_)) = (&self.fail, &self.scx_error)
            && *kind != FailureKind::SchedulerKicked
        {
            return Err(syn::Error::new(
                lit.span(),
                "expect_scx_error means expect_fail = \"scheduler_kicked\"; drop expect_fail",
            ));
        }
        if self.duration_ms.is_some() && has_step_ms {
            return Err(syn::Error::new(
                span,
                "give either `duration_ms` (overall) or `step_ms` (each step)",
            ));
        }
        Ok(())
    }

    /// The `KtstrTest` fields these keys set.
    pub fn fields(&self) -> Tokens {
        let some = |t: Tokens| quote!(::core::option::Option::Some(#t));
        let none = quote!(::core::option::Option::None);
        let fail = self.fail.as_ref().map_or(none.clone(), |(_, k)| {
            let variant = format_ident!("{k:?}");
            some(quote!(::ktstr_harness::workload::FailureKind::#variant))
        });
        let scx_error = self
            .scx_error
            .as_ref()
            .map_or(none.clone(), |l| some(quote!(#l)));
        let u64_opt = |v: Option<u64>| v.map_or(none.clone(), |v| some(quote!(#v)));
        let watchdog = u64_opt(self.watchdog_timeout_ms);
        let duration = u64_opt(self.duration_ms);
        quote! {
            duration_ms: #duration,
            watchdog_timeout_ms: #watchdog,
            expect: ::ktstr_harness::test::Expect {
                fail: #fail,
                scx_error: #scx_error,
            },
        }
    }
}
