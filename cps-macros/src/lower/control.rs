//! Control flow whose branches contain bind points.
//!
//! An `if`, `match` or block becomes a sub-computation: a closure whose
//! branches end by handing `(carried state, value)` to its own
//! continuation, run by `::cps::__private::branch` with the rest of the
//! function as that continuation. A loop becomes a call to
//! `::cps::__private::run_loop`, whose body runs one iteration and
//! continues with the next one from inside its continuation. `mut`
//! variables used inside are carried in and out explicitly, because the
//! closures of the branches and of the rest of the function cannot share
//! them.

use std::collections::BTreeSet;

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, Expr, Result};

use super::{Cont, LoopContext, Lowerer, Terminal};
use crate::analyse::{has_loop_jump, has_valued_break, mentioned_names};

/// An expression synthesised by a desugaring. It must live as long as the
/// user's syntax tree it stands in; a macro invocation is short-lived, so
/// it is simply leaked.
fn synthesized(expr: Expr) -> &'static Expr {
    Box::leak(Box::new(expr))
}

impl Lowerer {
    /// The `mut` variables a construct must carry: those it mentions, and
    /// the enclosing loop's state if it jumps out of an iteration.
    fn carried_by(&self, expr: &Expr) -> Vec<syn::Ident> {
        let mut names = mentioned_names(expr);
        if has_loop_jump(expr)
            && let Some(context) = self.loops.last()
        {
            names.extend(context.carried.iter().map(ToString::to_string));
        }
        self.mutable_among(&names)
    }

    /// Lowers statements whose value goes to `terminal`. A trailing `if`,
    /// `match` or block is then written in place, each branch ending at
    /// `terminal` itself: nothing follows it, so it needs no
    /// sub-computation and carries nothing.
    pub(super) fn stmts_to(
        &mut self,
        stmts: &[syn::Stmt],
        terminal: &Terminal,
    ) -> Result<TokenStream> {
        self.in_block(stmts, |this| this.block_to(stmts, terminal))
    }

    fn block_to(&mut self, stmts: &[syn::Stmt], terminal: &Terminal) -> Result<TokenStream> {
        match stmts.split_last() {
            Some((syn::Stmt::Expr(tail, None), init)) if is_branching(tail) => {
                let terminal = terminal.clone();
                self.stmts(
                    init,
                    Box::new(move |this: &mut Lowerer, _| this.branches(tail, &terminal)),
                )
            }
            _ => self.stmts(stmts, self.terminal_cont(terminal)),
        }
    }

    /// Lowers an expression whose value goes to `terminal` (see [`Lowerer::stmts_to`]).
    fn expr_to(&mut self, expr: &Expr, terminal: &Terminal) -> Result<TokenStream> {
        if is_branching(expr) {
            self.branches(expr, terminal)
        } else {
            self.value(expr, self.terminal_cont(terminal))
        }
    }

    /// Forbids shadowing `carried` until the matching `self.carried.pop()`.
    fn protect(&mut self, carried: &[syn::Ident]) {
        self.carried.push(
            carried
                .iter()
                .map(ToString::to_string)
                .collect::<BTreeSet<_>>(),
        );
    }

    /// `if`, `match` and blocks containing bind points.
    pub(super) fn branching<'a>(&mut self, expr: &'a Expr, k: Cont<'a>) -> Result<TokenStream> {
        let rest_span = self.rest_span.take();
        let carried = self.carried_by(expr);
        let sub_k = self.temp("k");
        let value = self.temp("v");
        let terminal = Terminal::Construct {
            k: sub_k.clone(),
            carried: carried.clone(),
        };
        self.protect(&carried);
        let (body, deepest) = self.measured_from(self.unchecked_count(), |this| {
            this.within(super::drops::Boundary::Construct, |this| {
                this.scoped(|this| this.branches(expr, &terminal))
            })
        });
        self.carried.pop();
        let body = body?;
        // The rest runs on top of whichever branch handed on its value.
        let rest = self.counted_from(deepest, |this| {
            this.scoped(|this| {
                for ident in &carried {
                    this.redeclare_carried(ident);
                }
                k(this, quote!(#value))
            })
        })?;
        // Borrow errors about what the construct or the rest captures
        // point at the construct and at the rest.
        let construct = expr.span();
        let rest_span = rest_span.unwrap_or(construct);
        let body = quote_spanned!(construct=> |#sub_k: &mut dyn FnMut(_)| { #body });
        let rest = quote_spanned!(rest_span=> |((#(mut #carried,)*), #value)| { #rest });
        Ok(quote_spanned! {construct=>
            ::cps::__private::branch(#body, #rest);
        })
    }

    /// The inside of a sub-computation: each branch ends at `terminal`.
    fn branches(&mut self, expr: &Expr, terminal: &Terminal) -> Result<TokenStream> {
        match expr {
            Expr::Block(block) => {
                if let Some(label) = &block.label {
                    return Err(Error::new_spanned(
                        label,
                        "#[differentiable] does not support labelled blocks; use `if`/`else`",
                    ));
                }
                self.scoped(|this| this.stmts_to(&block.block.stmts, terminal))
            }
            Expr::If(expr_if) => {
                let then_branch = &expr_if.then_branch;
                let else_branch = expr_if.else_branch.as_ref().map(|(_, e)| &**e);
                let terminal = terminal.clone();
                match &*expr_if.cond {
                    Expr::Let(condition) => {
                        let pat = &condition.pat;
                        self.value(
                            &condition.expr,
                            Box::new(move |this: &mut Lowerer, scrutinee| {
                                let then_code = this.scoped(|this| {
                                    this.declare(pat)?;
                                    this.stmts_to(&then_branch.stmts, &terminal)
                                })?;
                                let else_code = this.else_branch(else_branch, &terminal)?;
                                Ok(quote!(if let #pat = #scrutinee { #then_code } else { #else_code }))
                            }),
                        )
                    }
                    condition => self.value(
                        condition,
                        Box::new(move |this: &mut Lowerer, condition| {
                            let then_code =
                                this.scoped(|this| this.stmts_to(&then_branch.stmts, &terminal))?;
                            let else_code = this.else_branch(else_branch, &terminal)?;
                            Ok(quote!(if #condition { #then_code } else { #else_code }))
                        }),
                    ),
                }
            }
            Expr::Match(expr_match) => {
                let terminal = terminal.clone();
                self.value(
                    &expr_match.expr,
                    Box::new(move |this: &mut Lowerer, scrutinee| {
                        let mut arms = Vec::new();
                        for arm in &expr_match.arms {
                            let pat = &arm.pat;
                            let guard = arm
                                .guard
                                .as_ref()
                                .map(|(if_token, guard)| quote!(#if_token #guard));
                            let body = this.scoped(|this| {
                                this.declare(pat)?;
                                this.expr_to(&arm.body, &terminal)
                            })?;
                            arms.push(quote!(#pat #guard => { #body }));
                        }
                        Ok(quote!(match #scrutinee { #(#arms)* }))
                    }),
                )
            }
            other => self.value(other, self.terminal_cont(terminal)),
        }
    }

    fn else_branch(
        &mut self,
        else_branch: Option<&Expr>,
        terminal: &Terminal,
    ) -> Result<TokenStream> {
        match else_branch {
            None => Ok(self.finish(terminal, quote!(()))),
            Some(expr) => self.scoped(|this| this.branches(expr, terminal)),
        }
    }

    /// `loop`, `while` and `for` containing bind points.
    pub(super) fn looping<'a>(&mut self, expr: &'a Expr, k: Cont<'a>) -> Result<TokenStream> {
        match expr {
            Expr::Loop(expr_loop) => {
                reject_label(&expr_loop.label)?;
                self.lower_loop(expr.span(), &expr_loop.body, k)
            }
            Expr::While(expr_while) => {
                reject_label(&expr_while.label)?;
                let body = &expr_while.body;
                let desugared = match &*expr_while.cond {
                    Expr::Let(condition) => {
                        let (pat, scrutinee) = (&condition.pat, &condition.expr);
                        syn::parse_quote!(loop { match #scrutinee { #pat => #body, _ => break } })
                    }
                    condition => syn::parse_quote!(loop { if #condition #body else { break } }),
                };
                let Expr::Loop(desugared) = synthesized(desugared) else {
                    unreachable!("a `loop` was synthesised")
                };
                self.lower_loop(expr.span(), &desugared.body, k)
            }
            Expr::ForLoop(expr_for) => {
                reject_label(&expr_for.label)?;
                let loop_span = expr.span();
                let iterator = self.temp("iter");
                let (pat, body) = (&expr_for.pat, &expr_for.body);
                let desugared: Expr = syn::parse_quote! {
                    loop {
                        match ::core::iter::Iterator::next(&mut #iterator) {
                            ::core::option::Option::Some(#pat) => #body,
                            ::core::option::Option::None => break,
                        }
                    }
                };
                let Expr::Loop(desugared) = synthesized(desugared) else {
                    unreachable!("a `loop` was synthesised")
                };
                self.value(
                    &expr_for.expr,
                    Box::new(move |this: &mut Lowerer, iterable| {
                        this.scope.push(super::Local {
                            ident: iterator.clone(),
                            mutable: true,
                            unique_ref: false,
                        });
                        let lowered = this.lower_loop(loop_span, &desugared.body, k)?;
                        Ok(quote! {
                            let mut #iterator = ::core::iter::IntoIterator::into_iter(#iterable);
                            #lowered
                        })
                    }),
                )
            }
            _ => unreachable!("looping() is called on loops"),
        }
    }

    /// A loop, `span` the user's (for the errors the generated code provokes).
    fn lower_loop<'a>(
        &mut self,
        span: proc_macro2::Span,
        body: &'a syn::Block,
        k: Cont<'a>,
    ) -> Result<TokenStream> {
        let rest_span = self.rest_span.take();
        let body_expr = Expr::Block(syn::ExprBlock {
            attrs: Vec::new(),
            label: None,
            block: body.clone(),
        });
        let carried = self.mutable_among(&mentioned_names(&body_expr));
        let next_raw = self.temp("next");
        let next = self.temp("next");
        let value = self.temp("v");
        let returned = self.temp("r");
        let exit = self.temp("exit");
        let break_value = if has_valued_break(body) {
            quote!(#value)
        } else {
            quote!(())
        };

        self.loops.push(LoopContext {
            next: next.clone(),
            carried: carried.clone(),
        });
        self.protect(&carried);
        // Every iteration starts with a stack check (in the loop driver).
        let (body_code, deepest) = self.measured_from(0, |this| {
            this.within(super::drops::Boundary::Loop, |this| {
                this.scoped(|this| {
                    for ident in &carried {
                        this.redeclare_carried(ident);
                    }
                    this.stmts_to(&body.stmts, &Terminal::Iteration)
                })
            })
        });
        self.carried.pop();
        self.loops.pop();
        let body_code = body_code?;

        // A `return` from inside the loop took the carried variables with it.
        let outer_moved = self.moved_away.len();
        self.moved_away
            .extend(carried.iter().map(ToString::to_string));
        let on_return = self.return_with(quote!(#returned));
        self.moved_away.truncate(outer_moved);
        // The rest runs on top of the iteration that left the loop.
        let rest = self.counted_from(deepest, |this| {
            this.scoped(|this| {
                for ident in &carried {
                    this.redeclare_carried(ident);
                }
                if has_valued_break(body) {
                    k(this, quote!(#value))
                } else {
                    k(this, quote!(()))
                }
            })
        })?;
        let body_span = span;
        let rest_span = rest_span.unwrap_or(body_span);
        let iteration = quote_spanned! {body_span=>
            |(#(mut #carried,)*), #next_raw| {
                let #next = ::cps::__private::Once::new(#next_raw);
                #body_code
            }
        };
        let exit = quote_spanned! {rest_span=>
            |#exit| match #exit {
                ::cps::__private::Exit::Break((#(mut #carried,)*), #break_value) => { #rest }
                ::cps::__private::Exit::Return(#returned) => { #on_return }
            }
        };
        Ok(quote_spanned! {body_span=>
            ::cps::__private::run_loop((#(#carried,)*), #iteration, #exit);
        })
    }

    /// `break` and `continue` of the innermost rewritten loop.
    pub(super) fn loop_jump(&mut self, expr: &Expr) -> Result<TokenStream> {
        let Some(context) = self.loops.last() else {
            return Err(Error::new_spanned(
                expr,
                "this `break`/`continue` leaves a loop that #[differentiable] does not see",
            ));
        };
        let next = context.next.clone();
        let carried = context.carried.clone();
        let drops = self.drops_to(Some(super::drops::Boundary::Loop));
        match expr {
            Expr::Continue(jump) => {
                reject_jump_label(&jump.label)?;
                Ok(quote!(#drops #next.call(::cps::__private::Step::Continue((#(#carried,)*)));))
            }
            Expr::Break(jump) => {
                reject_jump_label(&jump.label)?;
                match &jump.expr {
                    None => Ok(
                        quote!(#drops #next.call(::cps::__private::Step::Break((#(#carried,)*), ()));),
                    ),
                    Some(value) => self.value(
                        value,
                        Box::new(move |this: &mut Lowerer, value| {
                            let drops = this.drops_to(Some(super::drops::Boundary::Loop));
                            let kept =
                                syn::Ident::new("__cps_value", proc_macro2::Span::mixed_site());
                            Ok(quote! {
                                let #kept = #value;
                                #drops
                                #next.call(::cps::__private::Step::Break((#(#carried,)*), #kept));
                            })
                        }),
                    ),
                }
            }
            _ => unreachable!("loop_jump() is called on jumps"),
        }
    }
}

/// An `if`, `match` or unlabelled block that must be rewritten.
fn is_branching(expr: &Expr) -> bool {
    let branching = match expr {
        Expr::If(_) | Expr::Match(_) => true,
        Expr::Block(block) => block.label.is_none(),
        _ => false,
    };
    branching && crate::analyse::needs_lowering(expr)
}

fn reject_jump_label(label: &Option<syn::Lifetime>) -> Result<()> {
    match label {
        None => Ok(()),
        Some(label) => Err(Error::new_spanned(label, LABEL_MESSAGE)),
    }
}

const LABEL_MESSAGE: &str = "#[differentiable] does not support labelled loops; carry a flag in a \
     `mut` variable and `break` from each loop, or move the inner loop into its own \
     differentiable function";

fn reject_label(label: &Option<syn::Label>) -> Result<()> {
    match label {
        None => Ok(()),
        Some(label) => Err(Error::new_spanned(label, LABEL_MESSAGE)),
    }
}
