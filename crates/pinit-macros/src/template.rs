//! A tiny `quote`: parse a template string and splice token streams in place of `$name`.
//!
//! Spliced user tokens keep their spans, so errors in them point at the user's code.

use proc_macro::{Delimiter, Group, Spacing, TokenStream, TokenTree};

/// Expands `template`, replacing every `$name` with the stream bound to `name` in `vars`.
pub fn expand(template: &str, vars: &[(&str, &TokenStream)]) -> TokenStream {
    let parsed: TokenStream = template
        .parse()
        .unwrap_or_else(|_| panic!("pinit-macros: bad template {template}"));
    substitute(parsed, vars)
}

fn substitute(stream: TokenStream, vars: &[(&str, &TokenStream)]) -> TokenStream {
    let mut out = TokenStream::new();
    let mut tokens = stream.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Punct(p) if p.as_char() == '$' => {
                let name = match tokens.peek() {
                    Some(TokenTree::Ident(name)) => name.to_string(),
                    _ => {
                        out.extend([TokenTree::Punct(p)]);
                        continue;
                    }
                };
                tokens.next();
                let (_, value) = vars
                    .iter()
                    .find(|(n, _)| *n == name)
                    .unwrap_or_else(|| panic!("pinit-macros: no template variable {name}"));
                out.extend((*value).clone());
            }
            TokenTree::Group(g) => {
                let mut inner = Group::new(g.delimiter(), substitute(g.stream(), vars));
                inner.set_span(g.span());
                out.extend([TokenTree::Group(inner)]);
            }
            other => out.extend([other]),
        }
    }
    out
}

/// A `compile_error!` carrying `message`.
pub fn error(message: &str) -> TokenStream {
    let text = proc_macro::Literal::string(message);
    let mut out: TokenStream = "::core::compile_error!".parse().expect("valid tokens");
    out.extend([TokenTree::Group(Group::new(
        Delimiter::Parenthesis,
        TokenStream::from(TokenTree::Literal(text)),
    ))]);
    out.extend([TokenTree::Punct(proc_macro::Punct::new(
        ';',
        Spacing::Alone,
    ))]);
    out
}

/// Parses a fixed snippet.
pub fn tokens(s: &str) -> TokenStream {
    s.parse()
        .unwrap_or_else(|_| panic!("pinit-macros: bad snippet {s}"))
}
