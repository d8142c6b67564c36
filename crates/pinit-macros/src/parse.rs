//! Hand-written parsing of the struct declarations the macros are applied to (no `syn`, for build speed).

use proc_macro::{Delimiter, Group, Ident, Spacing, TokenStream, TokenTree};

/// One field of a struct.
pub struct Field {
    /// Whether it carries `#[pin]`.
    pub pinned: bool,
    /// Whether it is a `PhantomPinned` without `#[pin]` (which `#[pin_data]` rejects).
    pub unpinned_phantom: bool,
    /// Its `#[cfg(..)]` attributes, repeated on everything generated for the field.
    pub cfg: TokenStream,
    pub vis: TokenStream,
    /// The name, or the tuple index.
    pub name: TokenTree,
    pub ty: TokenStream,
}

/// The shape of a struct's body.
#[derive(PartialEq, Eq, Clone, Copy)]
pub enum Shape {
    Named,
    Tuple,
    Unit,
}

/// A parsed struct declaration.
pub struct Struct {
    pub vis: TokenStream,
    pub name: Ident,
    /// Generic parameters with bounds, without defaults: `T: Clone, const N: usize`.
    pub impl_generics: TokenStream,
    /// Generic arguments: `T, N`.
    pub type_generics: TokenStream,
    /// Names of the type parameters (for added bounds).
    pub type_params: Vec<TokenStream>,
    /// Where-clause predicates with a trailing comma (possibly empty).
    pub where_clause: TokenStream,
    pub shape: Shape,
    pub fields: Vec<Field>,
    /// Whether a `#[repr(packed)]` is present.
    pub packed: bool,
    /// The declaration with every `#[pin]` attribute removed.
    pub cleaned: TokenStream,
}

pub fn is_punct(t: &TokenTree, c: char) -> bool {
    matches!(t, TokenTree::Punct(p) if p.as_char() == c)
}

pub fn is_ident(t: &TokenTree, s: &str) -> bool {
    matches!(t, TokenTree::Ident(i) if i.to_string() == s)
}

/// Splits at commas outside angle brackets (`->` is not a closing bracket).
pub fn split_commas(tokens: Vec<TokenTree>) -> Vec<Vec<TokenTree>> {
    let mut parts = vec![Vec::new()];
    let mut depth = 0i32;
    let mut prev_joint_minus = false;
    for t in tokens {
        let mut joint_minus = false;
        if let TokenTree::Punct(p) = &t {
            match p.as_char() {
                '<' => depth += 1,
                '>' if !prev_joint_minus => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(Vec::new());
                    prev_joint_minus = false;
                    continue;
                }
                '-' => joint_minus = p.spacing() == Spacing::Joint,
                _ => {}
            }
        }
        prev_joint_minus = joint_minus;
        parts.last_mut().expect("never empty").push(t);
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// The tokens of `stream` with invisible groups opened. Fragments passed through `macro_rules!` (`$m:meta`,
/// `$v:vis`, ...) arrive wrapped in such groups; looking only at the outer tokens would miss a `repr` or a
/// `cfg` inside one.
pub fn flatten_invisible(stream: TokenStream) -> Vec<TokenTree> {
    let mut out = Vec::new();
    for t in stream {
        match t {
            TokenTree::Group(g) if g.delimiter() == Delimiter::None => {
                out.extend(flatten_invisible(g.stream()));
            }
            other => out.push(other),
        }
    }
    out
}

/// An attribute's contents (inside `#[..]`), with invisible groups opened.
pub fn attr_tokens(group: &Group) -> Vec<TokenTree> {
    flatten_invisible(group.stream())
}

/// Whether an attribute's bracket group is exactly `pin`.
fn is_pin_attr(group: &Group) -> bool {
    let tokens = attr_tokens(group);
    tokens.len() == 1 && is_ident(&tokens[0], "pin")
}

/// Whether an attribute's bracket group is `cfg(..)` or `cfg_attr(..)`.
pub fn is_cfg_attr(group: &Group) -> bool {
    attr_tokens(group)
        .first()
        .is_some_and(|t| is_ident(t, "cfg") || is_ident(t, "cfg_attr"))
}

/// Whether an invisible group holds attributes or a visibility (empty, or starting with `#` or `pub`).
fn starts_field_prefix(group: &Group) -> bool {
    let inner = flatten_invisible(group.stream());
    inner
        .first()
        .is_none_or(|t| is_punct(t, '#') || is_ident(t, "pub"))
}

/// Whether a field's type is `PhantomPinned` (by any of its usual paths).
fn is_phantom_pinned(ty: &[TokenTree]) -> bool {
    let text: String = ty
        .iter()
        .map(|t| t.to_string())
        .collect::<Vec<_>>()
        .join("");
    let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    matches!(
        text.as_str(),
        "PhantomPinned"
            | "marker::PhantomPinned"
            | "core::marker::PhantomPinned"
            | "::core::marker::PhantomPinned"
            | "std::marker::PhantomPinned"
            | "::std::marker::PhantomPinned"
    )
}

/// Parses one field (`#[attr]* vis name: Type` or `#[attr]* vis Type`).
pub fn parse_field(tokens: Vec<TokenTree>, index: usize, shape: Shape) -> Result<Field, String> {
    // Attributes and visibility made by `macro_rules!` may come in invisible groups: open those (a type's
    // group is kept, so its tokens stay one type).
    let tokens: Vec<TokenTree> = tokens
        .into_iter()
        .flat_map(|t| match t {
            TokenTree::Group(g) if g.delimiter() == Delimiter::None && starts_field_prefix(&g) => {
                flatten_invisible(g.stream())
            }
            other => vec![other],
        })
        .collect();
    let mut i = 0;
    let mut pinned = false;
    let mut cfg = TokenStream::new();
    while i + 1 < tokens.len() && is_punct(&tokens[i], '#') {
        if let TokenTree::Group(g) = &tokens[i + 1] {
            if is_pin_attr(g) {
                if pinned {
                    return Err("`#[pin]` is given twice on one field".into());
                }
                pinned = true;
            } else if is_cfg_attr(g) {
                cfg.extend(tokens[i..i + 2].iter().cloned());
            }
            i += 2;
        } else {
            break;
        }
    }
    let mut vis = TokenStream::new();
    if i < tokens.len() && is_ident(&tokens[i], "pub") {
        vis.extend([tokens[i].clone()]);
        i += 1;
        if let Some(TokenTree::Group(g)) = tokens.get(i)
            && g.delimiter() == Delimiter::Parenthesis
        {
            vis.extend([tokens[i].clone()]);
            i += 1;
        }
    }
    let name = if shape == Shape::Named {
        let name = tokens.get(i).cloned().ok_or("expected a field name")?;
        if !tokens.get(i + 1).is_some_and(|t| is_punct(t, ':')) {
            return Err(format!("expected `:` after field `{name}`"));
        }
        i += 2;
        name
    } else {
        TokenTree::Literal(proc_macro::Literal::usize_unsuffixed(index))
    };
    let ty: TokenStream = tokens[i..].iter().cloned().collect();
    if ty.is_empty() {
        return Err(format!("field `{name}` has no type"));
    }
    let unpinned_phantom = !pinned && is_phantom_pinned(&tokens[i..]);
    Ok(Field {
        pinned,
        unpinned_phantom,
        cfg,
        vis,
        name,
        ty,
    })
}

/// Removes `#[pin]` attributes from a field list.
pub fn strip_pin_attrs(stream: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut out = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        if is_punct(&tokens[i], '#')
            && let Some(TokenTree::Group(g)) = tokens.get(i + 1)
            && g.delimiter() == Delimiter::Bracket
            && is_pin_attr(g)
        {
            i += 2;
            continue;
        }
        out.push(tokens[i].clone());
        i += 1;
    }
    out.into_iter().collect()
}

/// Parses generic parameters between `<` and `>` (exclusive).
fn parse_generics(params: Vec<TokenTree>, s: &mut Struct) {
    for param in split_commas(params) {
        // Drop a default (`= ...`) at depth zero: split_commas already isolated the parameter.
        let mut depth = 0i32;
        let mut cut = param.len();
        for (k, t) in param.iter().enumerate() {
            if let TokenTree::Punct(p) = t {
                match p.as_char() {
                    '<' => depth += 1,
                    '>' => depth -= 1,
                    '=' if depth == 0 => {
                        cut = k;
                        break;
                    }
                    _ => {}
                }
            }
        }
        let param = &param[..cut];
        let arg: TokenStream = if is_punct(&param[0], '\'') {
            param[..2].iter().cloned().collect()
        } else if is_ident(&param[0], "const") {
            param[1..2].iter().cloned().collect()
        } else {
            let name: TokenStream = param[..1].iter().cloned().collect();
            s.type_params.push(name.clone());
            name
        };
        s.impl_generics.extend(param.iter().cloned());
        s.impl_generics.extend(crate::template::tokens(","));
        s.type_generics.extend(arg);
        s.type_generics.extend(crate::template::tokens(","));
    }
}

/// Parses `#[attr]* vis struct Name<..> where .. { fields }` (or a tuple or unit struct).
pub fn parse_struct(input: TokenStream) -> Result<Struct, String> {
    let tokens: Vec<TokenTree> = input.into_iter().collect();
    let mut i = 0;
    let mut packed = false;
    while i + 1 < tokens.len() && is_punct(&tokens[i], '#') {
        if let TokenTree::Group(g) = &tokens[i + 1] {
            let inner = attr_tokens(g);
            if inner.first().is_some_and(|t| is_ident(t, "repr"))
                && let Some(TokenTree::Group(args)) = inner.get(1)
                && flatten_invisible(args.stream())
                    .iter()
                    .any(|t| is_ident(t, "packed"))
            {
                packed = true;
            }
        }
        i += 2;
    }
    let vis_start = i;
    while i < tokens.len() && !is_ident(&tokens[i], "struct") {
        if is_ident(&tokens[i], "enum") || is_ident(&tokens[i], "union") {
            return Err("only structs are supported here".into());
        }
        i += 1;
    }
    let vis: TokenStream = tokens[vis_start..i].iter().cloned().collect();
    let Some(TokenTree::Ident(name)) = tokens.get(i + 1).cloned() else {
        return Err("expected a struct declaration".into());
    };
    i += 2;
    let mut s = Struct {
        vis,
        name,
        impl_generics: TokenStream::new(),
        type_generics: TokenStream::new(),
        type_params: Vec::new(),
        where_clause: TokenStream::new(),
        shape: Shape::Unit,
        fields: Vec::new(),
        packed,
        cleaned: TokenStream::new(),
    };
    if tokens.get(i).is_some_and(|t| is_punct(t, '<')) {
        let start = i + 1;
        let mut depth = 1;
        let mut prev_joint_minus = false;
        i += 1;
        while i < tokens.len() {
            let mut joint_minus = false;
            if let TokenTree::Punct(p) = &tokens[i] {
                match p.as_char() {
                    '<' => depth += 1,
                    '>' if !prev_joint_minus => depth -= 1,
                    '-' => joint_minus = p.spacing() == Spacing::Joint,
                    _ => {}
                }
            }
            prev_joint_minus = joint_minus;
            if depth == 0 {
                break;
            }
            i += 1;
        }
        parse_generics(tokens[start..i].to_vec(), &mut s);
        i += 1;
    }
    let mut body_index = None;
    let mut where_tokens = Vec::new();
    let mut k = i;
    while k < tokens.len() {
        match &tokens[k] {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                body_index = Some(k);
                s.shape = Shape::Named;
                break;
            }
            TokenTree::Group(g)
                if g.delimiter() == Delimiter::Parenthesis && body_index.is_none() && k == i =>
            {
                body_index = Some(k);
                s.shape = Shape::Tuple;
            }
            t if is_punct(t, ';') => break,
            t if is_ident(t, "where") => {}
            t => where_tokens.push(t.clone()),
        }
        k += 1;
    }
    if !where_tokens.is_empty() {
        s.where_clause.extend(where_tokens);
        if !s.where_clause.to_string().trim_end().ends_with(',') {
            s.where_clause.extend(crate::template::tokens(","));
        }
    }
    let mut cleaned: Vec<TokenTree> = tokens.clone();
    if let Some(b) = body_index {
        let TokenTree::Group(g) = &tokens[b] else {
            unreachable!("checked above")
        };
        for (n, part) in split_commas(g.stream().into_iter().collect())
            .into_iter()
            .enumerate()
        {
            s.fields.push(parse_field(part, n, s.shape)?);
        }
        let mut stripped = Group::new(g.delimiter(), strip_pin_attrs(g.stream()));
        stripped.set_span(g.span());
        cleaned[b] = TokenTree::Group(stripped);
    }
    s.cleaned = cleaned.into_iter().collect();
    Ok(s)
}

/// `#[pin_data]`'s error for a `PhantomPinned` field without `#[pin]`, if there is one.
pub fn check_phantom_pinned(fields: &[Field]) -> Result<(), String> {
    match fields.iter().find(|f| f.unpinned_phantom) {
        Some(f) => Err(format!(
            "field `{}` of type `PhantomPinned` needs `#[pin]`: without it the field is not structurally \
             pinned, so it does not make the type `!Unpin` and the value could be moved out of its pin",
            f.name
        )),
        None => Ok(()),
    }
}
