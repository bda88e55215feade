//! Iterator chains whose closures compute, written out as `for` loops
//! before the rewrite (a closure body is ordinary code, so operations in
//! it would not be differentiated):
//!
//! ```text
//! xs.iter().map(|x| f(x)).collect::<T>()
//!     => { let mut items = Vec::new();
//!          for item in xs.iter() { let x = item; items.push(f(x)); }
//!          items.into_iter().collect::<T>() }
//! xs.iter().map(|x| f(x)).sum()
//!     => { /* the same loop */ SumItems::sum_items(items) }
//! xs.iter().fold(init, |acc, x| g(acc, x))
//!     => { let mut total = init;
//!          for item in xs.iter() { let acc = total; let x = item; total = g(acc, x); }
//!          total }
//! ```
//!
//! Only closures whose bodies have bind points are written out, and only
//! those with no `return` or `?` of their own (which would leave the
//! function from inside the loop). `zip`, `enumerate` and the other
//! adapters before the `map` stay as they are: the loop iterates over
//! them. A `let` with a type and a `.collect()` without one passes its type
//! on (`let v: Vec<Var> = xs.iter().map(..).collect();`).

use proc_macro2::Span;
use quote::quote_spanned;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ExprClosure, ExprMethodCall, Ident, Pat};

use crate::analyse::needs_lowering;

/// `block` with its computing iterator chains written out as loops.
pub fn desugar(block: &Block) -> Block {
    let mut block = block.clone();
    Chains.visit_block_mut(&mut block);
    block
}

struct Chains;

impl VisitMut for Chains {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) => return,
            _ => visit_mut::visit_expr_mut(self, expr),
        }
        if let Expr::MethodCall(call) = expr
            && let Some(loop_form) = written_out(call)
        {
            *expr = loop_form;
        }
    }

    fn visit_local_mut(&mut self, local: &mut syn::Local) {
        // `let v: T = it.map(f).collect();`: the `let`'s type goes to the
        // `collect` that the loop form ends with.
        if let Pat::Type(typed) = &local.pat
            && let Some(init) = &mut local.init
            && let Expr::MethodCall(call) = &mut *init.expr
            && call.method == "collect"
            && call.turbofish.is_none()
            && call.args.is_empty()
        {
            let ty = &typed.ty;
            call.turbofish = Some(syn::parse_quote!(::<#ty>));
        }
        visit_mut::visit_local_mut(self, local);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// The loop form of a computing `map(..).collect()`, `map(..).sum()` or
/// `fold(..)`, if `call` is one.
fn written_out(call: &ExprMethodCall) -> Option<Expr> {
    let span = call.span();
    let items = Ident::new("__cps_items", Span::mixed_site());
    let item = Ident::new("__cps_item", Span::mixed_site());
    match call.method.to_string().as_str() {
        "collect" | "sum" if call.args.is_empty() => {
            let Expr::MethodCall(map) = &*call.receiver else {
                return None;
            };
            let [pattern] = computing_closure(map, "map", 1)?;
            let source = &map.receiver;
            let body = &closure_of(map)?.body;
            let turbofish = &call.turbofish;
            let finish = if call.method == "collect" {
                quote_spanned!(span=> ::std::iter::IntoIterator::into_iter(#items).collect #turbofish())
            } else {
                quote_spanned!(span=> ::cps::__private::SumItems::sum_items(#items))
            };
            Some(syn::parse_quote_spanned! {span=>
                {
                    let mut #items = ::std::vec::Vec::new();
                    for #item in #source {
                        let #pattern = #item;
                        #items.push(#body);
                    }
                    #finish
                }
            })
        }
        "fold" if call.args.len() == 2 => {
            let [accumulator, pattern] = computing_closure(call, "fold", 2)?;
            let init = &call.args[0];
            let source = &call.receiver;
            let body = &closure_of(call)?.body;
            let total = Ident::new("__cps_total", Span::mixed_site());
            Some(syn::parse_quote_spanned! {span=>
                {
                    let mut #total = #init;
                    for #item in #source {
                        let #accumulator = #total;
                        let #pattern = #item;
                        #total = #body;
                    }
                    #total
                }
            })
        }
        _ => None,
    }
}

/// The closure argument of `call` (its last argument).
fn closure_of(call: &ExprMethodCall) -> Option<&ExprClosure> {
    match call.args.last()? {
        Expr::Closure(closure) => Some(closure),
        _ => None,
    }
}

/// The `N` parameter patterns of `call`'s closure, when `call` is the
/// method `method` and its closure computes and may be written out.
fn computing_closure<const N: usize>(
    call: &ExprMethodCall,
    method: &str,
    arity: usize,
) -> Option<[Pat; N]> {
    if call.method != method {
        return None;
    }
    let closure = closure_of(call)?;
    if closure.inputs.len() != arity
        || closure.asyncness.is_some()
        || !needs_lowering(&closure.body)
        || leaves_the_closure(&closure.body)
    {
        return None;
    }
    let patterns: Vec<Pat> = closure.inputs.iter().cloned().collect();
    patterns.try_into().ok()
}

/// Whether `body` has a `return` or `?` of the closure's own.
fn leaves_the_closure(body: &Expr) -> bool {
    struct Finder(bool);
    impl Visit<'_> for Finder {
        fn visit_expr(&mut self, expr: &Expr) {
            match expr {
                Expr::Return(_) | Expr::Try(_) => self.0 = true,
                Expr::Closure(_) | Expr::Async(_) => {}
                _ => syn::visit::visit_expr(self, expr),
            }
        }
        fn visit_item(&mut self, _: &syn::Item) {}
    }
    let mut finder = Finder(false);
    finder.visit_expr(body);
    finder.0
}
