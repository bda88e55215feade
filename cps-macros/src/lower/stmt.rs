//! Statements and blocks: each `let` binds the rest of the block.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Error, Expr, Local, Result, Stmt};

use super::{Cont, Lowerer};
use crate::analyse::needs_lowering;

impl Lowerer {
    /// Lowers statements in the current scope; `k` receives the block's value.
    pub fn stmts<'a>(&mut self, stmts: &'a [Stmt], k: Cont<'a>) -> Result<TokenStream> {
        let Some((first, rest)) = stmts.split_first() else {
            return k(self, quote!(()));
        };
        // Errors about what the rest of the block captures point at it.
        self.rest_span = rest.first().map(syn::spanned::Spanned::span);
        match first {
            Stmt::Local(local) => self.local(local, rest, k),
            Stmt::Item(item) => {
                let rest = self.stmts(rest, k)?;
                Ok(quote!(#item #rest))
            }
            Stmt::Macro(mac) => {
                let rest = self.stmts(rest, k)?;
                Ok(quote!(#mac #rest))
            }
            Stmt::Expr(expr, None) if rest.is_empty() => self.value(expr, k),
            Stmt::Expr(expr, _) => {
                if !needs_lowering(expr) {
                    let rest = self.stmts(rest, k)?;
                    return Ok(quote!(#expr; #rest));
                }
                if matches!(expr, Expr::Return(_) | Expr::Break(_) | Expr::Continue(_)) {
                    // Everything after a jump is unreachable.
                    return self.expr(expr, Box::new(|_, _| Ok(TokenStream::new())));
                }
                self.value(
                    expr,
                    Box::new(move |this: &mut Lowerer, value: TokenStream| {
                        let rest = this.stmts(rest, k)?;
                        if value.to_string() == "()" {
                            return Ok(rest);
                        }
                        Ok(quote!(let _ = #value; #rest))
                    }),
                )
            }
        }
    }

    fn local<'a>(
        &mut self,
        local: &'a Local,
        rest: &'a [Stmt],
        k: Cont<'a>,
    ) -> Result<TokenStream> {
        let attrs = &local.attrs;
        let pat = &local.pat;
        let Some(init) = &local.init else {
            self.declare_with(pat, binds_unique_ref(pat, &syn::parse_quote!(())))?;
            let rest = self.stmts(rest, k)?;
            return Ok(quote!(#local #rest));
        };
        if let Expr::Closure(closure) = &*init.expr
            && needs_lowering(&closure.body)
        {
            return Err(Error::new_spanned(
                closure,
                "#[differentiable] does not rewrite the body of a closure stored in a variable, \
                 so the operations inside it would run outside the continuation that \
                 differentiates them; write a `#[differentiable] fn` (or method) and call it instead",
            ));
        }
        let else_code = match &init.diverge {
            None => None,
            Some((_, diverge)) if !needs_lowering(diverge) => Some(quote!(#diverge)),
            Some((_, diverge)) => {
                let code = self
                    .scoped(|this| this.expr(diverge, Box::new(|_, _| Ok(TokenStream::new()))))?;
                Some(quote!({ #code return; }))
            }
        };
        let unique_ref = binds_unique_ref(pat, &init.expr);
        if let syn::Pat::Type(typed) = pat {
            self.annotation = Some((*typed.ty).clone());
        }
        // `let r = &f(x);`: the value is bound first and `r` borrows it, so
        // that it lives as long as `r`, as Rust extends such a temporary.
        let (init_expr, reference) = match &*init.expr {
            Expr::Reference(reference) if needs_lowering(&reference.expr) => {
                let and = &reference.and_token;
                let mutability = &reference.mutability;
                (&*reference.expr, Some(quote!(#and #mutability)))
            }
            other => (other, None),
        };
        self.value(
            init_expr,
            Box::new(move |this: &mut Lowerer, value: TokenStream| {
                let value = match reference {
                    Some(reference) => quote!(#reference #value),
                    None => value,
                };
                this.declare_with(pat, unique_ref)?;
                let rest = this.stmts(rest, k)?;
                Ok(match else_code {
                    None => quote!(#(#attrs)* let #pat = #value; #rest),
                    Some(else_code) => quote!(#(#attrs)* let #pat = #value else #else_code; #rest),
                })
            }),
        )
    }
}

/// Whether a `let` binds a `&mut` reference: `let r = &mut x;` or
/// `let r: &mut T = ..`.
fn binds_unique_ref(pat: &syn::Pat, init: &Expr) -> bool {
    if let syn::Pat::Type(typed) = pat
        && let syn::Type::Reference(reference) = &*typed.ty
    {
        return reference.mutability.is_some();
    }
    matches!(init, Expr::Reference(reference) if reference.mutability.is_some())
}
