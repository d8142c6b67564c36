//! `#[derive(Zeroable)]`: a struct is zeroable when each of its fields is.

use proc_macro::TokenStream;

use crate::parse::parse_struct;
use crate::template::{error, expand, tokens};

pub fn derive_zeroable(input: TokenStream, maybe: bool) -> TokenStream {
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
    if maybe {
        // Every field's type bounds the impl, so it holds exactly when they are all `Zeroable`. The
        // higher-ranked lifetime keeps a bound on a concrete type from being a (rejected) trivial one.
        let mut field_bounds = s.where_clause.clone();
        for f in &s.fields {
            field_bounds.extend(expand(
                "$ty: for<'__zeroable> ::pinit::Zeroable,",
                &[("ty", &f.ty)],
            ));
        }
        return expand(
            "// SAFETY: the bounds require every field to be `Zeroable`, so all-zero bytes are a valid value.
            unsafe impl<$ig> ::pinit::Zeroable for $name<$tg> where $bounds {}",
            &[
                ("ig", &s.impl_generics),
                ("tg", &s.type_generics),
                ("name", &name),
                ("bounds", &field_bounds),
            ],
        );
    }
    expand(
        "// SAFETY: every field is `Zeroable` (checked below), so all-zero bytes are a valid value.
        unsafe impl<$ig> ::pinit::Zeroable for $name<$tg> where $bounds {}
        #[allow(nonstandard_style, unused)]
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
