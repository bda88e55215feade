//! `?` in a differentiable body, written out before the rewrite as a
//! `match` with an early `return`, both of which the rewrite lowers:
//!
//! ```text
//! match ::cps::__private::QuestionMark::branch(e) {
//!     ::core::ops::ControlFlow::Continue(v) => v,
//!     ::core::ops::ControlFlow::Break(r) => return ::cps::__private::early_return::<Output, _>(r),
//! }
//! ```
//!
//! (the runtime's traits stand in for the standard library's unstable
//! `Try`), where `Output` is the function's declared result type: the
//! lowered `return` hands its value on generically, so the type is named. A `?` inside a closure or a nested item belongs to that closure
//! or item, which is ordinary code, and is left as it is.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Ident, Type};

/// `block`, the body of a function returning `output`, with every `?` of
/// its own written out.
pub fn desugar(block: &Block, output: &Type) -> Block {
    let mut block = block.clone();
    QuestionMarks { output }.visit_block_mut(&mut block);
    block
}

struct QuestionMarks<'o> {
    output: &'o Type,
}

impl VisitMut for QuestionMarks<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) | Expr::TryBlock(_) => {}
            Expr::Try(question) => {
                self.visit_expr_mut(&mut question.expr);
                // Errors about the early return point at the `?`, the
                // function's result type included.
                let span = question.question_token.span();
                let (operand, output) = (&question.expr, respanned(self.output, span));
                let value = Ident::new("__cps_continue", Span::mixed_site());
                let residual = Ident::new("__cps_break", Span::mixed_site());
                *expr = syn::parse2(quote_spanned! {span=>
                    match ::cps::__private::QuestionMark::branch(#operand) {
                        ::core::ops::ControlFlow::Continue(#value) => #value,
                        ::core::ops::ControlFlow::Break(#residual) => {
                            return ::cps::__private::early_return::<#output, _>(#residual)
                        }
                    }
                })
                .expect("a match expression");
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// The tokens of `ty`, every one placed at `span`.
fn respanned(ty: &Type, span: Span) -> TokenStream {
    fn walk(tokens: TokenStream, span: Span) -> TokenStream {
        tokens
            .into_iter()
            .map(|token| match token {
                TokenTree::Group(group) => {
                    let mut inner =
                        proc_macro2::Group::new(group.delimiter(), walk(group.stream(), span));
                    inner.set_span(span);
                    TokenTree::Group(inner)
                }
                mut other => {
                    other.set_span(span);
                    other
                }
            })
            .collect()
    }
    walk(ty.to_token_stream(), span)
}
