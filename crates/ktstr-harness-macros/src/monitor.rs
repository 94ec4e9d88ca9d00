//! The monitor keys: `monitor` sets every detector's policy, and
//! `monitor_stall`, `monitor_dsq`, `monitor_imbalance` one each (the
//! specific key wins whatever the order). Values are checked here, so a
//! typo is a compile error.

use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::meta::ParseNestedMeta;

use crate::{lit_str, value};

#[derive(Clone, Copy)]
enum Policy {
    Off,
    Report,
    Fail,
}

impl Policy {
    fn tokens(self) -> Tokens {
        match self {
            Policy::Off => quote!(::ktstr_harness::test::MonitorPolicy::Off),
            Policy::Report => quote!(::ktstr_harness::test::MonitorPolicy::Report),
            Policy::Fail => quote!(::ktstr_harness::test::MonitorPolicy::Fail),
        }
    }
}

/// What the attribute said about the monitor.
#[derive(Default)]
pub struct MonitorKeys {
    all: Option<Policy>,
    stall: Option<Policy>,
    dsq: Option<Policy>,
    imbalance: Option<Policy>,
}

impl MonitorKeys {
    pub fn parse_key(&mut self, key: &str, meta: &ParseNestedMeta) -> syn::Result<()> {
        let lit = lit_str(&value(meta)?)?;
        let policy = match lit.value().as_str() {
            "off" => Policy::Off,
            "report" => Policy::Report,
            "fail" => Policy::Fail,
            _ => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("{key} must be \"fail\", \"report\" or \"off\""),
                ));
            }
        };
        let slot = match key {
            "monitor_stall" => &mut self.stall,
            "monitor_dsq" => &mut self.dsq,
            "monitor_imbalance" => &mut self.imbalance,
            _ => &mut self.all,
        };
        *slot = Some(policy);
        Ok(())
    }

    /// The `MonitorSpec` value: the harness's default where nothing was said.
    pub fn spec(&self) -> Tokens {
        let field = |specific: Option<Policy>, default: Tokens| {
            specific.or(self.all).map_or(default, Policy::tokens)
        };
        let d = quote!(::ktstr_harness::test::MonitorSpec::DEFAULT);
        let stall = field(self.stall, quote!(#d.stall));
        let dsq = field(self.dsq, quote!(#d.deep_dsq));
        let imbalance = field(self.imbalance, quote!(#d.imbalance));
        quote! {
            ::ktstr_harness::test::MonitorSpec {
                stall: #stall,
                deep_dsq: #dsq,
                imbalance: #imbalance,
            }
        }
    }
}
