//! Statements lowered into staged values.
//!
//! A statement's bind points become a chain of
//! `Stage::new(value).__cps_stage().__cps_then(|t| ..)` (see the runtime's
//! `private::stage`) that ends in `Now(value)`; the chain is evaluated in a
//! `let` of its own, so that its plain temporaries are dropped there, as
//! in plain Rust, and then run with the rest of the function:
//!
//! ```text
//! let s = <chain>;
//! ::cps::__private::Staged::__cps_run(s, |v| { <the rest of the function> });
//! ```
//!
//! Statements with control flow inside their operands (an `if` as an
//! argument, say), and those whose later steps hold a variable the rest of
//! the function may still want, keep the continuation-passing lowering of
//! [`super::expr`].

use proc_macro2::{TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, Result};

use super::{Cont, Lowerer, Mode};
use crate::analyse::{is_compound_assignment, needs_lowering};

impl Lowerer {
    /// Lowers `expr`, a statement or the value of one (a `let`'s
    /// initialiser, a condition, a returned value); `k` generates the rest
    /// of the function from an atom naming its value.
    pub(super) fn value<'a>(&mut self, expr: &'a Expr, k: Cont<'a>) -> Result<TokenStream> {
        if !needs_lowering(expr) {
            self.annotation = None;
            return k(self, expr.to_token_stream());
        }
        // `x = value` on a `mut` local is a new binding of `x` (see the
        // assignment in `Lowerer::expr`), with the rest inside.
        let rebinding =
            matches!(expr, Expr::Assign(assign) if self.rebound_local(&assign.left).is_some());
        if self.mode == Mode::Statement || rebinding || !is_stageable(expr) {
            return self.expr(expr, k);
        }
        let annotation = self.annotation.clone();
        let rest_span = self.rest_span.take();
        let outer_hoisted = std::mem::take(&mut self.hoisted);
        self.mode = Mode::Statement;
        self.prefix_open = true;
        self.staging_refused = false;
        let start = self.unchecked_count();
        let mut end = start;
        let end_slot = &mut end;
        let (staged, _) = self.measured_from(start, |this| {
            this.expr(
                expr,
                Box::new(move |this: &mut Lowerer, atom| {
                    // A statement has one way through: where it ends, the
                    // rest of the function begins.
                    *end_slot = this.unchecked_count();
                    Ok(quote!(::cps::__private::Now(#atom)))
                }),
            )
        });
        self.mode = Mode::Rest;
        self.prefix_open = false;
        let lent = std::mem::replace(&mut self.hoisted, outer_hoisted);
        let prefix = std::mem::take(&mut self.prefix);
        if std::mem::take(&mut self.staging_refused) {
            // A later step holds a variable the rest may want (see
            // `refuse_staging_if_local`): staged, its closure would hold it
            // while the rest of the function runs, which may update or move
            // it (`outputs.push(h.matmul(w))`, then `outputs` carried on).
            // The rest goes inside the continuations instead.
            self.annotation = annotation;
            return self.expr(expr, k);
        }
        let staged = staged?;

        let s = self.temp("s");
        let v = self.temp("v");
        // The rest runs inside the statement's last bind point, each of
        // which was counted (and checks the stack where due) in the chain.
        let rest = self.counted_from(end, |this| k(this, quote!(#v)))?;
        let statement = expr.span();
        let run = quote_spanned!(statement=> __cps_run);
        let rest_span = rest_span.unwrap_or(statement);
        let rest = quote_spanned!(rest_span=> |mut #v| { #rest });
        Ok(quote_spanned! {statement=>
            #(#lent)*
            let #s = { #(#prefix)* #staged };
            ::cps::__private::Staged::#run(#s, #rest);
        })
    }

    /// `Some(x)` when `place` is a `mut` local `x`, which an assignment rebinds.
    pub(super) fn rebound_local(&self, place: &Expr) -> Option<syn::Ident> {
        match place {
            Expr::Path(path) if path.qself.is_none() => path
                .path
                .get_ident()
                .filter(|ident| self.is_mutable(ident))
                .cloned(),
            _ => None,
        }
    }

    /// A bind point inside a staged statement (see [`Lowerer::bind_point_as`]).
    ///
    /// A bind point whose value uses no earlier result of the statement, and
    /// follows only such bind points, is staged first, in a `let` of its
    /// own: the closures of the statement then hold its staged value, not
    /// the variables it reads, which the rest of the function stays free to
    /// move (`let y = x.tanh() * x.sigmoid(); (y, x)`).
    pub(super) fn staged_bind_point(
        &mut self,
        span: proc_macro2::Span,
        value: TokenStream,
        ty: Option<syn::Type>,
        t: &syn::Ident,
        k: Cont,
    ) -> Result<TokenStream> {
        let mut staged = stage(span, value.clone(), ty);
        // `f(&t)`: the call may hold the reference until its backward step.
        staged = self.owning_if_borrowed(&value, staged);
        self.prefix_open &= mentioned_temps(&value).is_empty();
        if !self.prefix_open {
            self.refuse_staging_if_local(&value);
        }
        if self.prefix_open {
            let first = self.temp("s");
            self.prefix.push(quote!(let #first = #staged;));
            staged = quote!(#first);
        }
        let (rest, checked) = self.after_bind_point(t, k)?;
        let ends_here = rest.to_string() == quote!(::cps::__private::Now(#t)).to_string();
        if ends_here && !checked {
            return Ok(staged);
        }
        let then = if checked {
            quote_spanned!(span=> __cps_then_checked)
        } else {
            quote_spanned!(span=> __cps_then)
        };
        Ok(quote_spanned!(span=> #staged.#then(|mut #t| { #rest })))
    }
}

impl Lowerer {
    /// Notes when `tokens`, code of a later step of the statement being
    /// staged, may hold a variable that the rest of the function could
    /// still want: a `mut` variable or `&mut` reference (which the rest may
    /// update or carry on), or any variable used in a way that borrows it
    /// (a method call or field on it, `&x`, an index, a closure or macro
    /// that mentions it). A variable passed by value (`push(v)`) is moved
    /// or copied into the step, as it would be in plain Rust, so it holds
    /// nothing the rest can want.
    pub(super) fn refuse_staging_if_local(&mut self, tokens: &TokenStream) {
        if self.mode == Mode::Statement && self.holds_local(tokens.clone(), false) {
            self.staging_refused = true;
        }
    }

    fn holds_local(&self, tokens: TokenStream, borrowing: bool) -> bool {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        // A closure or a macro captures or expands what it names: any use
        // inside may borrow.
        let borrowing = borrowing
            || tokens.iter().any(
                |t| matches!(t, TokenTree::Punct(p) if p.as_char() == '|' || p.as_char() == '!'),
            );
        tokens.iter().enumerate().any(|(i, token)| match token {
            TokenTree::Ident(ident) => {
                let Some(local) = self.scope.iter().rev().find(|local| local.ident == *ident)
                else {
                    return false;
                };
                let after_ref = i > 0
                    && (matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '&')
                        || (i > 1
                            && matches!(&tokens[i - 1], TokenTree::Ident(m) if m == "mut")
                            && matches!(&tokens[i - 2], TokenTree::Punct(p) if p.as_char() == '&')));
                let before_use = match tokens.get(i + 1) {
                    Some(TokenTree::Punct(p)) => p.as_char() == '.',
                    Some(TokenTree::Group(g)) => g.delimiter() == proc_macro2::Delimiter::Bracket,
                    _ => false,
                };
                local.mutable || local.unique_ref || borrowing || after_ref || before_use
            }
            TokenTree::Group(group) => self.holds_local(group.stream(), borrowing),
            _ => false,
        })
    }

    /// `staged`, a staged value computed from `value`, made to own the
    /// temporaries of the statement that `value` borrows (`&t`): they then
    /// live, with the rest of the function run inside, as long as whatever
    /// holds the reference. They are moved in through a non-`Copy` tuple,
    /// so that a `Copy` temporary is not captured by reference.
    fn owning_if_borrowed(&mut self, value: &TokenStream, staged: TokenStream) -> TokenStream {
        if !borrows_temp(value.clone()) {
            return staged;
        }
        let temps = mentioned_temps(value);
        let k = self.temp("k");
        let owned = self.temp("owned");
        quote! {
            {
                let #owned = ::cps::__private::Owned((#(#temps,)*));
                ::cps::__private::owning(|#k: &mut dyn FnMut(_)| {
                    let (#(#temps,)*) = #owned.0;
                    ::cps::__private::Staged::__cps_run(#staged, #k)
                })
            }
        }
    }
}

/// The staged value of a bind point: `Now` for a plain value, `Later` for
/// a computation (when `ty` is given, of that output type).
pub(super) fn stage(
    span: proc_macro2::Span,
    value: TokenStream,
    ty: Option<syn::Type>,
) -> TokenStream {
    match ty {
        None => quote_spanned!(span=> ::cps::__private::Stage::new(#value).__cps_stage()),
        Some(ty) => quote_spanned! {span=>
            (&::cps::__private::StageAs::<#ty, _>::new(#value)).__cps_stage()
        },
    }
}

/// The macro's temporaries (`__cps_t..`) named in `tokens`, each once.
fn mentioned_temps(tokens: &TokenStream) -> Vec<syn::Ident> {
    fn walk(tokens: TokenStream, found: &mut Vec<syn::Ident>) {
        for token in tokens {
            match token {
                TokenTree::Ident(ident) if is_temp(&ident) && !found.contains(&ident) => {
                    found.push(ident)
                }
                TokenTree::Group(group) => walk(group.stream(), found),
                _ => {}
            }
        }
    }
    let mut found = Vec::new();
    walk(tokens.clone(), &mut found);
    found
}

fn is_temp(ident: &syn::Ident) -> bool {
    let name = ident.to_string();
    name.starts_with("__cps_t") && name[7..].chars().all(|c| c.is_ascii_digit())
}

/// Whether `tokens` take a reference to a temporary: `&t`, `&mut t`.
fn borrows_temp(tokens: TokenStream) -> bool {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Punct(p) if p.as_char() == '&' => {
                let next = match tokens.get(i + 1) {
                    Some(TokenTree::Ident(m)) if m == "mut" => tokens.get(i + 2),
                    other => other,
                };
                if let Some(TokenTree::Ident(ident)) = next
                    && is_temp(ident)
                {
                    return true;
                }
            }
            TokenTree::Group(group) if borrows_temp(group.stream()) => return true,
            _ => {}
        }
    }
    false
}

/// Whether `expr` can be lowered as one staged statement: no control flow,
/// jumps or assignments inside it (those need the rest of the function as
/// their continuation), except an assignment at the top.
fn is_stageable(expr: &Expr) -> bool {
    let operands_only = match expr {
        Expr::Assign(assign) => {
            return is_stageable_operand(&assign.left) && is_stageable_operand(&assign.right);
        }
        Expr::Binary(binary) if is_compound_assignment(&binary.op) => {
            return is_stageable_operand(&binary.left) && is_stageable_operand(&binary.right);
        }
        other => other,
    };
    is_stageable_operand(operands_only)
}

fn is_stageable_operand(expr: &Expr) -> bool {
    let mut finder = ControlFinder { found: false };
    finder.visit_expr(expr);
    !finder.found
}

struct ControlFinder {
    found: bool,
}

impl<'ast> Visit<'ast> for ControlFinder {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        if self.found {
            return;
        }
        match expr {
            Expr::If(_)
            | Expr::Match(_)
            | Expr::Block(_)
            | Expr::Loop(_)
            | Expr::While(_)
            | Expr::ForLoop(_)
            | Expr::Assign(_)
            | Expr::Return(_)
            | Expr::Break(_)
            | Expr::Continue(_)
            | Expr::Try(_)
            | Expr::Let(_)
            | Expr::Unsafe(_)
            | Expr::Await(_)
            | Expr::TryBlock(_) => self.found = true,
            Expr::Binary(binary)
                if is_compound_assignment(&binary.op)
                    || (matches!(binary.op, syn::BinOp::And(_) | syn::BinOp::Or(_))
                        && needs_lowering(&binary.right)) =>
            {
                self.found = true
            }
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) => {}
            Expr::Macro(mac) if !mac.mac.path.is_ident("vec") => {}
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
