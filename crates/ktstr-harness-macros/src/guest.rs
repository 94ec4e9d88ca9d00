//! The `programs` and `files` keys: host programs and files packed into the
//! test's guest (`ktstr_harness::guest_files`). Syntax and guest paths are
//! checked here; whether a program is installed is a run-time question
//! (the test is then reported ignored, or fails naming the package).

use proc_macro2::TokenStream as Tokens;
use quote::quote;
use syn::{Expr, ExprArray, ExprTuple, LitStr};

use crate::{err, lit_str, str_array};

/// `programs = ["stress-ng", "/opt/bench/bin/x"]`.
pub fn programs(v: &Expr) -> syn::Result<Vec<LitStr>> {
    let list = str_array(v)?;
    for p in &list {
        let name = p.value();
        if name.is_empty() || name.chars().any(char::is_whitespace) || name.ends_with('/') {
            return Err(err(
                p.span(),
                "a program is a name on PATH (e.g. \"stress-ng\") or a path to one, without spaces",
            ));
        }
    }
    Ok(list)
}

/// `files = [("data/input.txt", "/opt/input.txt")]`: host path (relative to
/// the package's `Cargo.toml` directory, or absolute) and absolute guest path.
pub fn files(v: &Expr) -> syn::Result<Vec<(LitStr, LitStr)>> {
    const HOW: &str = "expected an array of (host path, guest path) pairs, e.g. [(\"data/in.txt\", \"/opt/in.txt\")]";
    let Expr::Array(ExprArray { elems, .. }) = v else {
        return Err(syn::Error::new_spanned(v, HOW));
    };
    let mut out: Vec<(LitStr, LitStr)> = Vec::new();
    for e in elems {
        let Expr::Tuple(ExprTuple { elems: pair, .. }) = e else {
            return Err(syn::Error::new_spanned(e, HOW));
        };
        let [host, guest] = [pair.first(), pair.get(1)];
        let (Some(host), Some(guest), 2) = (host, guest, pair.len()) else {
            return Err(syn::Error::new_spanned(e, HOW));
        };
        let (host, guest) = (lit_str(host)?, lit_str(guest)?);
        if host.value().is_empty() {
            return Err(err(host.span(), "the host path is empty"));
        }
        let g = guest.value();
        if !g.starts_with('/') || g.len() < 2 {
            return Err(err(
                guest.span(),
                "the guest path must be absolute, e.g. \"/opt/in.txt\"",
            ));
        }
        if out.iter().any(|(_, seen)| seen.value() == g) {
            return Err(err(guest.span(), format!("guest path {g} is given twice")));
        }
        out.push((host, guest));
    }
    Ok(out)
}

/// The `files` value of `KtstrTest`: relative host paths made absolute
/// against the declaring package, so the test finds them from any cwd.
pub fn files_value(files: &[(LitStr, LitStr)]) -> Tokens {
    let pairs = files.iter().map(|(host, guest)| {
        let host = if host.value().starts_with('/') {
            quote!(#host)
        } else {
            quote!(::core::concat!(::core::env!("CARGO_MANIFEST_DIR"), "/", #host))
        };
        quote!((#host, #guest))
    });
    quote!(&[#(#pairs),*])
}
