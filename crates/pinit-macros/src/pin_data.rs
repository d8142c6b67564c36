//! `#[pin_data]`: field markers for `pin_init!`, pin projections, conditional `Unpin`, and the `Drop` rules.

use proc_macro::{Group, Ident, Span, TokenStream, TokenTree};

use crate::parse::{Field, Shape, Struct, is_punct, parse_struct};
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
    if has_second_pin_data(&input) {
        return error("`#[pin_data]` is given twice on this item");
    }
    if crate::enum_data::is_enum(&input) {
        return crate::enum_data::pin_data_enum(input, pinned_drop);
    }
    let s = match parse_struct(input) {
        Ok(s) => s,
        Err(e) => return error(&format!("`#[pin_data]`: {e}")),
    };
    if let Err(e) = crate::parse::check_phantom_pinned(&s.fields) {
        return error(&format!("`#[pin_data]`: {e}"));
    }
    if s.packed {
        return error(
            "`#[pin_data]` cannot be used on a `#[repr(packed)]` struct: its fields may be unaligned",
        );
    }
    if s.shape == Shape::Unit {
        return error("`#[pin_data]` needs a struct with fields");
    }
    let mut out = s.cleaned.clone();
    // The projection's field types go through the alias too, where a `Self` would name the projection.
    out.extend(projection(&inside_block(&s)));
    out.extend(pin_data_impls(&s, pinned_drop));
    out
}

/// Whether the item still carries a `#[pin_data]` (or `#[pinit::pin_data(..)]`) attribute.
fn has_second_pin_data(input: &TokenStream) -> bool {
    let tokens: Vec<TokenTree> = input.clone().into_iter().collect();
    tokens.windows(2).any(|w| {
        is_punct(&w[0], '#')
            && matches!(&w[1], TokenTree::Group(g) if g.delimiter() == proc_macro::Delimiter::Bracket && {
                let inner = crate::parse::attr_tokens(g);
                let path_end = inner
                    .iter()
                    .position(|t| matches!(t, TokenTree::Group(_)))
                    .unwrap_or(inner.len());
                inner[..path_end]
                    .last()
                    .is_some_and(|t| crate::parse::is_ident(t, "pin_data"))
            })
    })
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

/// The name of the alias, declared next to the type, through which the generated `const _` block names the
/// type: inside the block the type's own name belongs to the field-marker struct, so that errors about an
/// unknown field name the user's type rather than a helper.
pub fn outer_alias(name: &Ident) -> Ident {
    Ident::new(&format!("__pinit_outer_{name}"), name.span())
}

/// `type __pinit_outer_Name<..> = Name<..>;`, declared outside the `const _` block.
pub fn outer_alias_decl(s: &Struct) -> TokenStream {
    let name = TokenStream::from(TokenTree::Ident(s.name.clone()));
    let alias = TokenStream::from(TokenTree::Ident(outer_alias(&s.name)));
    expand(
        "#[doc(hidden)]
        #[allow(nonstandard_style, type_alias_bounds)]
        type $alias<$ig> = $name<$tg>;",
        &[
            ("alias", &alias),
            ("name", &name),
            ("ig", &s.impl_generics),
            ("tg", &s.type_generics),
        ],
    )
}

/// Replaces every mention of the type (its name, unless it follows `::`, and `Self`, which becomes the alias
/// with the type's generic arguments) with the alias, so that the user's field types and bounds mean the same
/// inside the `const _` block as outside it.
pub fn to_alias(stream: &TokenStream, s: &Struct) -> TokenStream {
    let alias = outer_alias(&s.name);
    let self_ty = expand(
        "$alias<$tg>",
        &[
            ("alias", &TokenStream::from(TokenTree::Ident(alias.clone()))),
            ("tg", &s.type_generics),
        ],
    );
    rewrite(stream.clone(), &s.name.to_string(), &alias, &self_ty)
}

fn rewrite(stream: TokenStream, name: &str, alias: &Ident, self_ty: &TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut out = TokenStream::new();
    for (k, t) in tokens.iter().enumerate() {
        match t {
            TokenTree::Ident(id) => {
                let text = id.to_string();
                let after_path =
                    k >= 2 && is_punct(&tokens[k - 1], ':') && is_punct(&tokens[k - 2], ':');
                let lifetime = k >= 1 && is_punct(&tokens[k - 1], '\'');
                if lifetime || after_path {
                    out.extend([t.clone()]);
                } else if text == "Self" {
                    // The alias at the span of `Self`, so that errors point there; the arguments keep theirs.
                    let self_ty: TokenStream = self_ty
                        .clone()
                        .into_iter()
                        .enumerate()
                        .map(|(i, mut t)| {
                            if i == 0 {
                                t.set_span(id.span());
                            }
                            t
                        })
                        .collect();
                    if tokens.get(k + 1).is_some_and(|t| is_punct(t, ':')) {
                        // `Self::Assoc` becomes `<Alias<..>>::Assoc`.
                        out.extend(expand("<$t>", &[("t", &self_ty)]));
                    } else {
                        out.extend(self_ty);
                    }
                } else if text == name {
                    out.extend([TokenTree::Ident(Ident::new(&alias.to_string(), id.span()))]);
                } else {
                    out.extend([t.clone()]);
                }
            }
            TokenTree::Group(g) => {
                let mut inner =
                    Group::new(g.delimiter(), rewrite(g.stream(), name, alias, self_ty));
                inner.set_span(g.span());
                out.extend([TokenTree::Group(inner)]);
            }
            other => out.extend([other.clone()]),
        }
    }
    out
}

/// A field with its type going through the alias (for use inside the `const _` block).
pub fn field_to_alias(f: &Field, s: &Struct) -> Field {
    Field {
        pinned: f.pinned,
        unpinned_phantom: f.unpinned_phantom,
        cfg: f.cfg.clone(),
        vis: f.vis.clone(),
        name: f.name.clone(),
        ty: to_alias(&f.ty, s),
    }
}

/// The struct as seen from inside the `const _` block: field types, generics and bounds through the alias.
fn inside_block(s: &Struct) -> Struct {
    Struct {
        vis: s.vis.clone(),
        name: s.name.clone(),
        impl_generics: to_alias(&s.impl_generics, s),
        type_generics: s.type_generics.clone(),
        type_params: s.type_params.clone(),
        where_clause: to_alias(&s.where_clause, s),
        shape: s.shape,
        fields: s.fields.iter().map(|f| field_to_alias(f, s)).collect(),
        packed: s.packed,
        cleaned: TokenStream::new(),
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
        #[allow(dead_code, missing_debug_implementations, nonstandard_style)]
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

fn pin_data_impls(outer: &Struct, pinned_drop: bool) -> TokenStream {
    let alias_decl = outer_alias_decl(outer);
    let inner = inside_block(outer);
    let s = &inner;
    // Inside the block the type is reached through the alias, and its name is the markers': an unknown
    // field is then reported "on type `_::Name`", which reads as the user's type.
    let name = TokenStream::from(TokenTree::Ident(outer_alias(&s.name)));
    let (ig, tg, w, vis) = (&s.impl_generics, &s.type_generics, &s.where_clause, &s.vis);
    let data = TokenStream::from(TokenTree::Ident(s.name.clone()));
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

    let drop_rules = drop_rules((ig, tg, w), &name, pinned_drop);

    expand(
        "$alias_decl
        #[allow(nonstandard_style, unused)]
        const _: () = {
            #[doc(hidden)]
            #[allow(dead_code, missing_debug_implementations, nonstandard_style)]
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
            ("alias_decl", &alias_decl),
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

/// Forbids a plain `Drop` impl (use `PinnedDrop`), or forwards `Drop` to `PinnedDrop`; `name` is how the
/// type is named where these impls go.
pub fn drop_rules(
    (ig, tg, w): (&TokenStream, &TokenStream, &TokenStream),
    name: &TokenStream,
    pinned_drop: bool,
) -> TokenStream {
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
            name,
        )
    } else {
        // The two traits live in `pinit` (with a blanket impl for every `Drop` / `PinnedDrop` type), not in the
        // generated block, so that no user item of the same name can stand in for them.
        tokens_with(
            "impl<$ig> ::pinit::ImplementPinnedDropInsteadOfDrop for $name<$tg> where $w {}
            impl<$ig> ::pinit::PinnedDropNeedsPinDataPinnedDrop for $name<$tg> where $w {}",
            ig,
            tg,
            w,
            name,
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
