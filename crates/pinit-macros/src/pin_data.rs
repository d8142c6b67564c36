//! `#[pin_data]`: field markers for `pin_init!`, pin projections, conditional `Unpin`, and the `Drop` rules.

use proc_macro::{Ident, Span, TokenStream, TokenTree};

use crate::parse::{Shape, Struct, parse_struct};
use crate::template::{error, expand, tokens};

pub fn pin_data(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = args.to_string();
    let pinned_drop = match args.trim() {
        "" => false,
        "PinnedDrop" => true,
        other => {
            return error(&format!(
                "`#[pin_data]` takes no argument or `PinnedDrop`, not `{other}`"
            ));
        }
    };
    if crate::enum_data::is_enum(&input) {
        return crate::enum_data::pin_data_enum(input, pinned_drop);
    }
    let s = match parse_struct(input) {
        Ok(s) => s,
        Err(e) => return error(&format!("`#[pin_data]`: {e}")),
    };
    if s.packed {
        return error(
            "`#[pin_data]` cannot be used on a `#[repr(packed)]` struct: its fields may be unaligned",
        );
    }
    if s.shape == Shape::Unit {
        return error("`#[pin_data]` needs a struct with fields");
    }
    let mut out = s.cleaned.clone();
    out.extend(projection(&s));
    out.extend(pin_data_impls(&s, pinned_drop));
    out
}

/// Builds `name: Marker<Type>,` (or `Marker<Type>,` for tuple structs) for every field.
fn field_list(s: &Struct, each: impl Fn(&crate::parse::Field) -> TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    for f in &s.fields {
        out.extend(f.cfg.clone());
        if s.shape == Shape::Named {
            out.extend(f.vis.clone());
            out.extend([f.name.clone()]);
            out.extend(tokens(":"));
        } else {
            out.extend(f.vis.clone());
        }
        out.extend(each(f));
        out.extend(tokens(","));
    }
    out
}

fn body(
    s: &Struct,
    fields: TokenStream,
    where_clause: &TokenStream,
    unit_end: bool,
) -> TokenStream {
    let w = where_clause;
    match s.shape {
        Shape::Named => expand("where $w { $fields }", &[("w", w), ("fields", &fields)]),
        _ if unit_end => expand("($fields) where $w;", &[("w", w), ("fields", &fields)]),
        _ => expand("($fields)", &[("fields", &fields)]),
    }
}

/// `Name` + suffix, at the struct name's span.
pub fn suffixed(s: &Struct, suffix: &str) -> TokenStream {
    TokenStream::from(TokenTree::Ident(Ident::new(
        &format!("{}{suffix}", s.name),
        s.name.span(),
    )))
}

fn projection(s: &Struct) -> TokenStream {
    let proj = suffixed(s, "Projection");
    let name = TokenStream::from(TokenTree::Ident(s.name.clone()));
    let (ig, tg, w, vis) = (&s.impl_generics, &s.type_generics, &s.where_clause, &s.vis);
    let fields = field_list(s, |f| {
        if f.pinned {
            expand("::core::pin::Pin<&'__pin mut $ty>", &[("ty", &f.ty)])
        } else {
            expand("&'__pin mut $ty", &[("ty", &f.ty)])
        }
    });
    let mut fields = fields;
    let mut values = TokenStream::new();
    for f in &s.fields {
        let n = TokenStream::from(f.name.clone());
        let value = if f.pinned {
            expand(
                "// SAFETY: `#[pin]` fields of a pinned value are pinned too.
                 unsafe { ::core::pin::Pin::new_unchecked(&mut this.$n) }",
                &[("n", &n)],
            )
        } else {
            expand("&mut this.$n", &[("n", &n)])
        };
        values.extend(f.cfg.clone());
        if s.shape == Shape::Named {
            values.extend(expand("$n: $v,", &[("n", &n), ("v", &value)]));
        } else {
            values.extend(expand("$v,", &[("v", &value)]));
        }
    }
    let phantom = tokens("::core::marker::PhantomData<&'__pin mut ()>");
    if s.shape == Shape::Named {
        fields.extend(expand(
            "#[doc(hidden)] pub __pin_lifetime: $p,",
            &[("p", &phantom)],
        ));
        values.extend(tokens("__pin_lifetime: ::core::marker::PhantomData,"));
    } else {
        fields.extend(expand("#[doc(hidden)] pub $p,", &[("p", &phantom)]));
        values.extend(tokens("::core::marker::PhantomData,"));
    }
    let decl_body = body(s, fields, w, true);
    let ctor = if s.shape == Shape::Named {
        expand("$proj { $values }", &[("proj", &proj), ("values", &values)])
    } else {
        expand("$proj($values)", &[("proj", &proj), ("values", &values)])
    };
    let doc = format!(
        "\"The pin projection of [`{}`]: `#[pin]` fields as `Pin<&mut T>`, others as `&mut T`.\"",
        s.name
    );
    let doc = tokens(&doc);
    expand(
        "#[doc = $doc]
        #[allow(dead_code, missing_debug_implementations)]
        $vis struct $proj<'__pin, $ig> $decl_body

        impl<$ig> $name<$tg> where $w {
            /// Splits a pinned reference into references to the fields, pinned only for `#[pin]` fields.
            #[allow(dead_code)]
            #[inline]
            $vis fn project<'__pin>(self: ::core::pin::Pin<&'__pin mut Self>) -> $proj<'__pin, $tg> {
                // SAFETY: no field is moved out; only `#[pin]` fields are handed out pinned.
                let this = unsafe { ::core::pin::Pin::get_unchecked_mut(self) };
                $ctor
            }
        }",
        &[
            ("doc", &doc),
            ("vis", vis),
            ("proj", &proj),
            ("ig", ig),
            ("tg", tg),
            ("w", w),
            ("name", &name),
            ("decl_body", &decl_body),
            ("ctor", &ctor),
        ],
    )
}

fn pin_data_impls(s: &Struct, pinned_drop: bool) -> TokenStream {
    let name = TokenStream::from(TokenTree::Ident(s.name.clone()));
    let (ig, tg, w, vis) = (&s.impl_generics, &s.type_generics, &s.where_clause, &s.vis);
    let data = suffixed(s, "PinFields");
    let phantom = expand(
        "::core::marker::PhantomData<fn($name<$tg>) -> $name<$tg>>",
        &[("name", &name), ("tg", tg)],
    );
    let mut markers = field_list(s, |f| {
        let marker = if f.pinned {
            "PinnedField"
        } else {
            "UnpinnedField"
        };
        expand(&format!("::pinit::field::{marker}<$ty>"), &[("ty", &f.ty)])
    });
    let mut values = TokenStream::new();
    for f in &s.fields {
        let n = TokenStream::from(f.name.clone());
        let v = tokens(
            "// SAFETY: the marker matches the field's `#[pin]` and type.
             unsafe { ::pinit::field::PinnedField::new() }",
        );
        let v = if f.pinned {
            v
        } else {
            tokens(
                "// SAFETY: the marker matches the field's `#[pin]` and type.
                 unsafe { ::pinit::field::UnpinnedField::new() }",
            )
        };
        values.extend(f.cfg.clone());
        if s.shape == Shape::Named {
            values.extend(expand("$n: $v,", &[("n", &n), ("v", &v)]));
        } else {
            values.extend(expand("$v,", &[("v", &v)]));
        }
    }
    // A named struct's markers use every generic parameter already (each one appears in some field's type, or
    // the struct itself would not compile), so it needs no extra field that an error could list; tuple
    // structs take one at the end, where it has no name.
    if s.shape != Shape::Named {
        markers.extend(expand("$p,", &[("p", &phantom)]));
        values.extend(tokens("::core::marker::PhantomData,"));
    }
    let data_body = body(s, markers, w, true);
    let data_ctor = if s.shape == Shape::Named {
        expand("$data { $values }", &[("data", &data), ("values", &values)])
    } else {
        expand("$data($values)", &[("data", &data), ("values", &values)])
    };

    let mut unpin_fields = (TokenStream::new(), TokenStream::new());
    for (k, f) in s.fields.iter().filter(|f| f.pinned).enumerate() {
        let (defs, ty) = unpin_bound_type(k, f);
        unpin_fields.0.extend(defs);
        unpin_fields.1.extend(ty);
    }

    let drop_rules = drop_rules(s, pinned_drop);

    expand(
        "const _: () = {
            #[doc(hidden)]
            #[allow(dead_code, missing_debug_implementations)]
            $vis struct $data<$ig> $data_body

            impl<$ig> ::core::clone::Clone for $data<$tg> where $w {
                fn clone(&self) -> Self {
                    *self
                }
            }
            impl<$ig> ::core::marker::Copy for $data<$tg> where $w {}

            // SAFETY: the markers describe `$name`.
            unsafe impl<$ig> ::pinit::field::PinDataOf for $data<$tg> where $w {
                type Datee = $name<$tg>;
            }

            // SAFETY: every field has the marker of its `#[pin]` status and its own type.
            unsafe impl<$ig> ::pinit::field::HasPinData for $name<$tg> where $w {
                type PinData = $data<$tg>;
                unsafe fn __pin_data() -> Self::PinData {
                    $data_ctor
                }
            }

            // `Unpin` exactly when every `#[pin]` field is (the lifetime keeps the bound from being a trivial,
            // global one when no field is generic).
            $unpin_fields_defs
            impl<'__pin, $ig> ::core::marker::Unpin for $name<$tg>
            where
                (::core::marker::PhantomData<&'__pin ()>, $unpin_fields_types): ::core::marker::Unpin,
                $w
            {}

            $drop_rules
        };",
        &[
            ("vis", vis),
            ("data", &data),
            ("ig", ig),
            ("tg", tg),
            ("w", w),
            ("name", &name),
            ("data_body", &data_body),
            ("data_ctor", &data_ctor),
            ("phantom", &phantom),
            ("unpin_fields_defs", &unpin_fields.0),
            ("unpin_fields_types", &unpin_fields.1),
            ("drop_rules", &drop_rules),
        ],
    )
}

fn tokens_with(
    t: &str,
    ig: &TokenStream,
    tg: &TokenStream,
    w: &TokenStream,
    name: &TokenStream,
) -> TokenStream {
    expand(t, &[("ig", ig), ("tg", tg), ("w", w), ("name", name)])
}

/// Forbids a plain `Drop` impl (use `PinnedDrop`), or forwards `Drop` to `PinnedDrop`.
pub fn drop_rules(s: &Struct, pinned_drop: bool) -> TokenStream {
    let name = TokenStream::from(TokenTree::Ident(s.name.clone()));
    let (ig, tg, w) = (&s.impl_generics, &s.type_generics, &s.where_clause);
    if pinned_drop {
        tokens_with(
            "impl<$ig> ::core::ops::Drop for $name<$tg> where $w {
                fn drop(&mut self) {
                    // SAFETY: the value is being dropped, so it is never used or moved after this.
                    let pinned = unsafe { ::core::pin::Pin::new_unchecked(self) };
                    // SAFETY: this is the `Drop` impl generated for `#[pin_data(PinnedDrop)]`.
                    let token = unsafe { ::pinit::OnlyCallFromDrop::new() };
                    ::pinit::PinnedDrop::drop(pinned, token);
                }
            }",
            ig,
            tg,
            w,
            &name,
        )
    } else {
        tokens_with(
            "trait ImplementPinnedDropInsteadOfDrop {}
            #[allow(drop_bounds)]
            impl<T: ::core::ops::Drop + ?::core::marker::Sized> ImplementPinnedDropInsteadOfDrop for T {}
            impl<$ig> ImplementPinnedDropInsteadOfDrop for $name<$tg> where $w {}

            trait PinnedDropNeedsPinDataPinnedDrop {}
            impl<T: ::pinit::PinnedDrop + ?::core::marker::Sized> PinnedDropNeedsPinDataPinnedDrop for T {}
            impl<$ig> PinnedDropNeedsPinDataPinnedDrop for $name<$tg> where $w {}",
            ig,
            tg,
            w,
            &name,
        )
    }
}

/// The type a `#[pin]` field adds to the tuple whose `Unpin` decides the struct's (`Ty,`), plus the items it
/// needs. A field under `#[cfg]` goes through a local macro that is `()` unless the field exists (a later
/// `macro_rules!` shadows an earlier one), since attributes are not allowed inside tuple types.
pub fn unpin_bound_type(k: usize, f: &crate::parse::Field) -> (TokenStream, TokenStream) {
    if f.cfg.is_empty() {
        return (TokenStream::new(), expand("$ty,", &[("ty", &f.ty)]));
    }
    let m = TokenStream::from(TokenTree::Ident(Ident::new(
        &format!("__pinit_cfg_field{k}"),
        Span::call_site(),
    )));
    let defs = expand(
        "macro_rules! $m { () => { () } }
        $cfg
        macro_rules! $m { () => { $ty } }",
        &[("m", &m), ("cfg", &f.cfg), ("ty", &f.ty)],
    );
    (defs, expand("$m!(),", &[("m", &m)]))
}
