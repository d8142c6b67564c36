//! `#[pin_data]` on enums with a primitive representation (`#[repr(u8)]`, ...): in-place variant initialisers.
//!
//! For such enums the language guarantees the layout: each variant is laid out like a `#[repr(C)]`
//! struct of the tag followed by the variant's fields (named or, for tuple variants, positional). We declare that struct per variant, initialise the
//! fields through it, and write the tag last; until then the slot is not a valid enum value and the
//! initialised fields are dropped again on failure.

use proc_macro::{Delimiter, Group, Ident, TokenStream, TokenTree};

use crate::parse::{
    Shape, Struct, attr_tokens, flatten_invisible, is_ident, is_punct, parse_field, parse_struct,
    split_commas, strip_pin_attrs,
};
use crate::pin_data::{
    drop_rules, field_to_alias, outer_alias, outer_alias_decl, suffixed, to_alias,
};
use crate::template::{error, expand};

const INTS: &[&str] = &[
    "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
];

/// Whether the item is an `enum` (looking past attributes and visibility).
pub fn is_enum(input: &TokenStream) -> bool {
    flatten_invisible(input.clone())
        .into_iter()
        .find(|t| is_ident(t, "enum") || is_ident(t, "struct") || is_ident(t, "union"))
        .is_some_and(|t| is_ident(&t, "enum"))
}

struct Variant {
    name: Ident,
    fields: Vec<crate::parse::Field>,
    /// `Named` for `V { .. }` and unit variants, `Tuple` for `V(..)`.
    shape: Shape,
    discriminant: TokenStream,
}

/// The single primitive integer of `#[repr(..)]`, rejecting `repr(C)` (a different layout).
fn repr_int(tokens: &[TokenTree]) -> Result<TokenStream, String> {
    let mut found = None;
    let mut i = 0;
    while i + 1 < tokens.len() && is_punct(&tokens[i], '#') {
        if let TokenTree::Group(g) = &tokens[i + 1] {
            let inner = attr_tokens(g);
            if inner.first().is_some_and(|t| is_ident(t, "repr"))
                && let Some(TokenTree::Group(args)) = inner.get(1)
            {
                for arg in flatten_invisible(args.stream()) {
                    if let TokenTree::Ident(id) = &arg {
                        let text = id.to_string();
                        if INTS.contains(&text.as_str()) {
                            found = Some(TokenStream::from(arg.clone()));
                        } else {
                            return Err(format!(
                                "`#[repr({text})]` is not supported on a `#[pin_data]` enum: use only a primitive \
                                 representation such as `#[repr(u8)]`"
                            ));
                        }
                    }
                }
            }
        }
        i += 2;
    }
    found.ok_or_else(|| {
        "a `#[pin_data]` enum needs a primitive representation such as `#[repr(u8)]`, which fixes its layout"
            .to_string()
    })
}

fn parse_variants(body: &Group, int: &TokenStream) -> Result<Vec<Variant>, String> {
    let mut out: Vec<Variant> = Vec::new();
    for part in split_commas(flatten_invisible(body.stream())) {
        let mut i = 0;
        while i + 1 < part.len() && is_punct(&part[i], '#') {
            if let TokenTree::Group(g) = &part[i + 1]
                && crate::parse::is_cfg_attr(g)
            {
                return Err("`#[cfg]` on a variant of a `#[pin_data]` enum is not supported: it would shift \
                            the implicit discriminants"
                    .into());
            }
            i += 2;
        }
        let Some(TokenTree::Ident(name)) = part.get(i).cloned() else {
            return Err("expected a variant name".into());
        };
        i += 1;
        let mut fields = Vec::new();
        let mut shape = Shape::Named;
        if let Some(TokenTree::Group(g)) = part.get(i)
            && g.delimiter() != Delimiter::Bracket
        {
            if g.delimiter() == Delimiter::Parenthesis {
                shape = Shape::Tuple;
            }
            for (n, f) in split_commas(g.stream().into_iter().collect())
                .into_iter()
                .enumerate()
            {
                let field = parse_field(f, n, shape)?;
                if shape == Shape::Tuple && !field.cfg.is_empty() {
                    return Err(format!(
                        "`#[cfg]` on a field of the tuple variant `{name}` is not supported: it would shift the \
                         fields' indices"
                    ));
                }
                fields.push(field);
            }
            crate::parse::check_phantom_pinned(&fields)?;
            i += 1;
        }
        // Each discriminant is a constant of the enum's integer type, as the compiler evaluates it: an
        // explicit expression is typed as that integer (`!0 / 16` is 15 in a `u8`, not 0 as an `i32`), and an
        // implicit one is the previous one plus one in that type.
        let discriminant = if part.get(i).is_some_and(|t| is_punct(t, '=')) {
            let explicit: TokenStream = part[i + 1..].iter().cloned().collect();
            expand(
                "{ const __PINIT_DISCRIMINANT: $int = $d; __PINIT_DISCRIMINANT }",
                &[("d", &explicit), ("int", int)],
            )
        } else if let Some(prev) = out.last() {
            expand(
                "{ const __PINIT_DISCRIMINANT: $int = $p + 1; __PINIT_DISCRIMINANT }",
                &[("p", &prev.discriminant), ("int", int)],
            )
        } else {
            expand(
                "{ const __PINIT_DISCRIMINANT: $int = 0; __PINIT_DISCRIMINANT }",
                &[("int", int)],
            )
        };
        out.push(Variant {
            name,
            fields,
            shape,
            discriminant,
        });
    }
    Ok(out)
}

pub fn pin_data_enum(input: TokenStream, pinned_drop: bool) -> TokenStream {
    match build(input, pinned_drop) {
        Ok(out) => out,
        Err(e) => error(&format!("`#[pin_data]`: {e}")),
    }
}

fn build(input: TokenStream, pinned_drop: bool) -> Result<TokenStream, String> {
    let tokens_in: Vec<TokenTree> = input.into_iter().collect();
    let int = repr_int(&tokens_in)?;
    let body_at = tokens_in
        .iter()
        .rposition(|t| matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Brace))
        .ok_or("expected an enum body")?;
    let TokenTree::Group(body) = tokens_in[body_at].clone() else {
        unreachable!("found above")
    };
    // Parse the header as if it were a field-less struct.
    let mut header = tokens_in.clone();
    for t in &mut header {
        if is_ident(t, "enum") {
            *t = TokenTree::Ident(Ident::new("struct", t.span()));
            break;
        }
    }
    header[body_at] = TokenTree::Group(Group::new(Delimiter::Brace, TokenStream::new()));
    let s: Struct = parse_struct(header.into_iter().collect())?;
    let variants = parse_variants(&body, &int)?;

    let mut cleaned = tokens_in.clone();
    let mut stripped = Group::new(Delimiter::Brace, strip_variant_pins(body.stream()));
    stripped.set_span(body.span());
    cleaned[body_at] = TokenTree::Group(stripped);

    // Inside the `const _` block the enum is reached through an alias, and its name is the markers' (see
    // `pin_data_impls`).
    let alias_decl = outer_alias_decl(&s);
    let name = TokenStream::from(TokenTree::Ident(outer_alias(&s.name)));
    let (ig, w) = (
        &to_alias(&s.impl_generics, &s),
        &to_alias(&s.where_clause, &s),
    );
    let (tg, vis) = (&s.type_generics, &s.vis);
    let phantom = expand(
        "::core::marker::PhantomData<fn($name<$tg>) -> $name<$tg>>",
        &[("name", &name), ("tg", tg)],
    );
    let data = TokenStream::from(TokenTree::Ident(s.name.clone()));
    let mut items = TokenStream::new();
    let mut data_fields = TokenStream::new();
    let mut data_values = TokenStream::new();
    let mut pinned_types = TokenStream::new();
    let mut pinned_defs = TokenStream::new();
    let mut pinned_count = 0;
    for v in &variants {
        let fields: Vec<_> = v.fields.iter().map(|f| field_to_alias(f, &s)).collect();
        let tuple = v.shape == Shape::Tuple;
        let vname = TokenStream::from(TokenTree::Ident(v.name.clone()));
        let repr = suffixed(&s, &format!("{}VariantLayout", v.name));
        let markers = suffixed(&s, &format!("{}VariantFields", v.name));
        let repr_tg = expand("$repr<$tg>", &[("repr", &repr), ("tg", tg)]);
        let mut repr_fields = TokenStream::new();
        let mut marker_fields = TokenStream::new();
        let mut marker_values = TokenStream::new();
        for (k, f) in fields.iter().enumerate() {
            let n = TokenStream::from(f.name.clone());
            let pinned = if f.pinned { "Pinned" } else { "Unpinned" };
            repr_fields.extend(f.cfg.clone());
            marker_fields.extend(f.cfg.clone());
            marker_values.extend(f.cfg.clone());
            if tuple {
                // The layout's field 0 is the tag, so the variant's field `k` is the layout's `k + 1`.
                let at = TokenStream::from(TokenTree::Literal(
                    proc_macro::Literal::usize_unsuffixed(k + 1),
                ));
                repr_fields.extend(expand("pub $ty,", &[("ty", &f.ty)]));
                marker_fields.extend(expand(
                    &format!("pub ::pinit::field::{pinned}VariantField<$ty, $repr>,"),
                    &[("ty", &f.ty), ("repr", &repr_tg)],
                ));
                marker_values.extend(expand(
                    &format!(
                        "// SAFETY: the marker matches the field's `#[pin]` and type, and `at` projects a
                         // pointer to the variant's layout to this field.
                         unsafe {{ ::pinit::field::{pinned}VariantField::new(|at| &raw mut (*at).$at) }},"
                    ),
                    &[("at", &at)],
                ));
            } else {
                repr_fields.extend(expand("pub $n: $ty,", &[("n", &n), ("ty", &f.ty)]));
                marker_fields.extend(expand(
                    &format!("pub $n: ::pinit::field::{pinned}Field<$ty>,"),
                    &[("n", &n), ("ty", &f.ty)],
                ));
                marker_values.extend(expand(
                    &format!(
                        "// SAFETY: the marker matches the field's `#[pin]` and type.
                         $n: unsafe {{ ::pinit::field::{pinned}Field::new() }},"
                    ),
                    &[("n", &n)],
                ));
            }
            if f.pinned {
                let (defs, ty) = crate::pin_data::unpin_bound_type(pinned_count, f);
                pinned_defs.extend(defs);
                pinned_types.extend(ty);
                pinned_count += 1;
            }
        }
        // The layout ends with a zero-sized phantom (no change to its `repr(C)` layout) so that it uses every
        // generic parameter; the markers then do through it, unless there is no field at all. No phantom
        // among the markers' positions, where a wrong index could reach it.
        let marker_phantom = if fields.is_empty() {
            phantom.clone()
        } else {
            TokenStream::new()
        };
        // Inside the `const _` block the enum's name belongs to the markers: reach it through the alias.
        let discr = to_alias(&v.discriminant, &s);
        let vars: &[(&str, &TokenStream)] = &[
            ("marker_phantom", &marker_phantom),
            ("vis", vis),
            ("repr", &repr),
            ("markers", &markers),
            ("ig", ig),
            ("tg", tg),
            ("w", w),
            ("int", &int),
            ("repr_fields", &repr_fields),
            ("marker_fields", &marker_fields),
            ("phantom", &phantom),
            ("name", &name),
            ("discr", &discr),
        ];
        let (decls, tag) = if tuple {
            (
                "#[repr(C)]
                #[allow(dead_code, nonstandard_style, missing_debug_implementations)]
                $vis struct $repr<$ig>(pub $int, $repr_fields $phantom) where $w;

                #[allow(dead_code, nonstandard_style, missing_debug_implementations)]
                $vis struct $markers<$ig>($marker_fields $marker_phantom) where $w;",
                "0",
            )
        } else {
            (
                "#[repr(C)]
                #[allow(dead_code, nonstandard_style, missing_debug_implementations)]
                $vis struct $repr<$ig> where $w {
                    pub __tag: $int,
                    $repr_fields
                    __phantom: $phantom,
                }

                #[allow(dead_code, nonstandard_style, missing_debug_implementations)]
                $vis struct $markers<$ig> where $w {
                    $marker_fields
                    __phantom: $phantom,
                }",
                "__tag",
            )
        };
        items.extend(expand(decls, vars));
        items.extend(expand(
            &format!(
                "impl<$ig> ::core::clone::Clone for $markers<$tg> where $w {{
                fn clone(&self) -> Self {{
                    *self
                }}
            }}
            impl<$ig> ::core::marker::Copy for $markers<$tg> where $w {{}}

            impl<$ig> $markers<$tg> where $w {{
                /// The variant's layout at the start of the enum's slot.
                pub fn cast(self, slot: *mut $name<$tg>) -> *mut $repr<$tg> {{
                    slot.cast()
                }}

                /// Writes the variant's tag: the last step, after every field is initialised.
                ///
                /// # Safety
                ///
                /// `slot` came from `cast` on a slot under initialisation.
                pub unsafe fn write_tag(self, slot: *mut $repr<$tg>) {{
                    // SAFETY: forwarded from the caller; the tag is the first field of the layout.
                    unsafe {{ (&raw mut (*slot).{tag}).write($discr) }}
                }}
            }}"
            ),
            vars,
        ));
        data_fields.extend(expand(
            "pub $v: $m<$tg>,",
            &[("v", &vname), ("m", &markers), ("tg", tg)],
        ));
        let data_value = if tuple && !fields.is_empty() {
            "$v: $m($mv),"
        } else if tuple {
            "$v: $m(::core::marker::PhantomData),"
        } else {
            "$v: $m { $mv __phantom: ::core::marker::PhantomData },"
        };
        data_values.extend(expand(
            data_value,
            &[("v", &vname), ("m", &markers), ("mv", &marker_values)],
        ));
        // Check at compile time that the layout struct matches the enum's size bound.
        items.extend(expand(
            "const _: () = ::core::assert!(
                ::core::mem::size_of::<$repr<$tg>>() <= ::core::mem::size_of::<$name<$tg>>()
            );",
            &[("repr", &repr), ("tg", tg), ("name", &name)],
        ));
    }
    if !s.impl_generics.is_empty() {
        // The size check above is only possible without generics; drop it rather than fail.
        items = strip_size_checks(items);
    }
    let drop = drop_rules((ig, tg, w), &name, pinned_drop);
    let mut out: TokenStream = cleaned.into_iter().collect();
    out.extend(alias_decl);
    out.extend(expand(
        "#[allow(nonstandard_style, unused)]
        const _: () = {
            $items

            #[allow(dead_code, nonstandard_style, missing_debug_implementations)]
            $vis struct $data<$ig> where $w {
                $data_fields
                __phantom: $phantom,
            }
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

            // SAFETY: every variant's markers match its fields' `#[pin]` and types, and its layout
            // struct is the one the primitive representation guarantees.
            unsafe impl<$ig> ::pinit::field::HasPinData for $name<$tg> where $w {
                type PinData = $data<$tg>;
                unsafe fn __pin_data() -> Self::PinData {
                    $data { $data_values __phantom: ::core::marker::PhantomData }
                }
            }

            // `Unpin` exactly when every `#[pin]` field is (the lifetime keeps the bound from being a trivial,
            // global one when no field is generic).
            $pinned_defs
            impl<'__pin, $ig> ::core::marker::Unpin for $name<$tg>
            where
                (::core::marker::PhantomData<&'__pin ()>, $pinned_types): ::core::marker::Unpin,
                $w
            {}

            $drop
        };",
        &[
            ("items", &items),
            ("vis", vis),
            ("data", &data),
            ("ig", ig),
            ("tg", tg),
            ("w", w),
            ("data_fields", &data_fields),
            ("data_values", &data_values),
            ("phantom", &phantom),
            ("name", &name),
            ("pinned_defs", &pinned_defs),
            ("pinned_types", &pinned_types),
            ("drop", &drop),
        ],
    ));
    Ok(out)
}

/// Removes `#[pin]` inside the variants' field lists.
fn strip_variant_pins(body: TokenStream) -> TokenStream {
    body.into_iter()
        .map(|t| match t {
            TokenTree::Group(g)
                if g.delimiter() == Delimiter::Brace || g.delimiter() == Delimiter::Parenthesis =>
            {
                let mut inner = Group::new(g.delimiter(), strip_pin_attrs(g.stream()));
                inner.set_span(g.span());
                TokenTree::Group(inner)
            }
            other => other,
        })
        .collect()
}

/// Drops the `const _: () = assert!(..);` items (generic layouts cannot be checked in a constant).
fn strip_size_checks(items: TokenStream) -> TokenStream {
    let all: Vec<TokenTree> = items.into_iter().collect();
    let mut out = Vec::with_capacity(all.len());
    let mut i = 0;
    while i < all.len() {
        if is_ident(&all[i], "const")
            && all
                .get(1 + i)
                .is_some_and(|t| matches!(t, TokenTree::Ident(id) if id.to_string() == "_"))
        {
            // const _ : ( ) = :: core :: assert ! ( ... ) ;
            while i < all.len() && !is_punct(&all[i], ';') {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(all[i].clone());
        i += 1;
    }
    out.into_iter().collect()
}
