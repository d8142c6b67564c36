//! `#[derive(Zeroable)]`: a struct is zeroable when each of its fields is.

use proc_macro::TokenStream;

use crate::parse::parse_struct;
use crate::template::{error, expand, tokens};

pub fn derive_zeroable(input: TokenStream) -> TokenStream {
    let s = match parse_struct(input) {
        Ok(s) => s,
        Err(e) => return error(&format!("`#[derive(Zeroable)]`: {e}")),
    };
    let name = TokenStream::from(proc_macro::TokenTree::Ident(s.name.clone()));
    let mut bounds = s.where_clause.clone();
    for p in &s.type_params {
        bounds.extend(expand("$p: ::pinit::Zeroable,", &[("p", p)]));
    }
    let mut checks = TokenStream::new();
    for f in &s.fields {
        checks.extend(expand(
            "each_field_must_be_zeroable::<$ty>();",
            &[("ty", &f.ty)],
        ));
    }
    let _ = tokens;
    expand(
        "// SAFETY: every field is `Zeroable` (checked below), so all-zero bytes are a valid value.
        unsafe impl<$ig> ::pinit::Zeroable for $name<$tg> where $bounds {}
        const _: () = {
            fn each_field_must_be_zeroable<T: ?::core::marker::Sized + ::pinit::Zeroable>() {}
            #[allow(dead_code)]
            fn every_field_is_zeroable<$ig>() where $bounds {
                $checks
            }
        };",
        &[
            ("ig", &s.impl_generics),
            ("tg", &s.type_generics),
            ("name", &name),
            ("bounds", &bounds),
            ("checks", &checks),
        ],
    )
}
