//! The rewrite into continuation-passing style.
//!
//! Lowering an expression takes a *continuation*: a generator of the code
//! that runs after the expression, given an atom (a simple expression:
//! a temporary, a path, a literal) naming its value. Each bind point
//! becomes
//!
//! ```text
//! ::cps::__private::Bind::new(<value>).__cps_bind(|t| { <continuation of t> });
//! ```
//!
//! so the rest of the function runs inside the callback. Control flow
//! whose branches contain bind points becomes a sub-computation bound the
//! same way (see [`control`]); `mut` variables it touches are passed
//! through it explicitly, since closures cannot share them.

mod control;
mod expr;
mod stack_checks;
mod stmt;

use std::collections::BTreeSet;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::{Error, Ident, Result};

use stack_checks::StackChecks;

/// Generates the code that follows a value, given an atom naming it.
pub type Cont<'a> = Box<dyn FnOnce(&mut Lowerer, TokenStream) -> Result<TokenStream> + 'a>;

/// Where a value goes when a body, branch or iteration is finished.
#[derive(Clone)]
pub enum Terminal {
    /// The end of the function: hand the value to its continuation.
    Function,
    /// The end of a sub-computation: hand back the carried state and the value.
    Construct { k: Ident, carried: Vec<Ident> },
    /// The end of a loop iteration: continue with the carried state.
    Iteration,
}

struct LoopContext {
    next: Ident,
    carried: Vec<Ident>,
}

/// State of the rewrite of one function body.
pub struct Lowerer {
    /// Variables in scope, innermost last, with whether they are `mut`.
    scope: Vec<(Ident, bool)>,
    /// Names that must not be shadowed: they are carried out of the
    /// enclosing sub-computations by name.
    carried: Vec<BTreeSet<String>>,
    loops: Vec<LoopContext>,
    /// The function-level continuation.
    return_k: Ident,
    /// The written type of the `let` being lowered (see [`Lowerer::expr`]).
    annotation: Option<syn::Type>,
    /// Bind points since the last stack check (see [`stack_checks`]).
    stack_checks: StackChecks,

    next_temp: usize,
}

impl Lowerer {
    /// A rewrite of a body whose parameters bind `params`.
    pub fn new(params: Vec<(Ident, bool)>, return_k: Ident) -> Self {
        Lowerer {
            scope: params,
            carried: Vec::new(),
            loops: Vec::new(),
            return_k,
            annotation: None,
            stack_checks: StackChecks::default(),
            next_temp: 0,
        }
    }

    /// A fresh hygienic identifier: user code cannot see or clash with it.
    fn temp(&mut self, what: &str) -> Ident {
        self.next_temp += 1;
        format_ident!(
            "__cps_{}{}",
            what,
            self.next_temp,
            span = Span::mixed_site()
        )
    }

    /// Emits a bind point: `value` is bound, and `k` generates what follows.
    fn bind_point(&mut self, span: Span, value: TokenStream, k: Cont) -> Result<TokenStream> {
        let t = self.temp("t");
        let (rest, checked) = self.after_bind_point(&t, k)?;
        let bind = if checked {
            quote!(__cps_bind_checked)
        } else {
            quote!(__cps_bind)
        };
        Ok(quote_spanned! {span=>
            ::cps::__private::Bind::new(#value).#bind(|#t| { #rest });
        })
    }

    /// Emits a bind point whose value initialises a `let` of type `ty`:
    /// the type decides between running a computation of that output and
    /// passing a plain value on, which also lets `collect()` and `parse()`
    /// infer their result from the annotation.
    fn bind_point_as(
        &mut self,
        span: Span,
        value: TokenStream,
        ty: Option<syn::Type>,
        k: Cont,
    ) -> Result<TokenStream> {
        let Some(ty) = ty else {
            return self.bind_point(span, value, k);
        };
        let t = self.temp("t");
        let (rest, checked) = self.after_bind_point(&t, k)?;
        let bind = if checked {
            quote!(__cps_bind_as_checked)
        } else {
            quote!(__cps_bind_as)
        };
        Ok(quote_spanned! {span=>
            (&::cps::__private::BindAs::<#ty, _>::new(#value)).#bind(|#t| { #rest });
        })
    }

    /// Brings pattern bindings into scope, refusing to shadow a carried name.
    fn declare(&mut self, pat: &syn::Pat) -> Result<()> {
        for (ident, mutable) in crate::analyse::pattern_bindings(pat) {
            let name = ident.to_string();
            if self.carried.iter().any(|set| set.contains(&name)) {
                return Err(Error::new(
                    ident.span(),
                    format!(
                        "`{name}` is a `mut` variable carried through this `if`, `match`, block or \
                         loop by #[differentiable], so it cannot be shadowed inside it; give this \
                         binding another name"
                    ),
                ));
            }
            self.scope.push((ident, mutable));
        }
        Ok(())
    }

    /// The `mut` variables in scope among `names`, outermost first.
    fn mutable_among(&self, names: &BTreeSet<String>) -> Vec<Ident> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        for (ident, mutable) in self.scope.iter().rev() {
            let name = ident.to_string();
            if seen.insert(name.clone()) && *mutable && names.contains(&name) {
                found.push(ident.clone());
            }
        }
        found.reverse();
        found
    }

    /// Runs `f` with the scope restored afterwards.
    fn scoped<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        let depth = self.scope.len();
        let result = f(self);
        self.scope.truncate(depth);
        result
    }

    /// The continuation that ends a branch, body or iteration at `terminal`.
    fn terminal_cont<'a>(&self, terminal: &Terminal) -> Cont<'a> {
        let terminal = terminal.clone();
        Box::new(move |this: &mut Lowerer, value: TokenStream| Ok(this.finish(&terminal, value)))
    }

    fn finish(&self, terminal: &Terminal, value: TokenStream) -> TokenStream {
        match terminal {
            Terminal::Function => {
                let k = &self.return_k;
                quote!(#k.call(#value);)
            }
            Terminal::Construct { k, carried } => {
                let carried = carry_out(carried);
                quote!(#k(((#(#carried,)*), #value));)
            }
            Terminal::Iteration => {
                let context = self.loops.last().expect("an iteration ends inside a loop");
                let next = &context.next;
                let carried = carry_out(&context.carried);
                // An iteration's value is `()`; checking it keeps Rust's error
                // for a loop body that ends in a value.
                let check = (value.to_string() != "()").then(|| quote!(let _: () = #value;));
                quote! {
                    #check
                    #next.call(::cps::__private::Step::Continue((#(#carried,)*)));
                }
            }
        }
    }

    /// Whether `name` is a `mut` variable in scope.
    fn is_mutable(&self, name: &Ident) -> bool {
        self.scope
            .iter()
            .rev()
            .find(|(ident, _)| ident == name)
            .is_some_and(|(_, mutable)| *mutable)
    }

    /// The code that returns `value` from the function from where we are.
    fn return_with(&self, value: TokenStream) -> TokenStream {
        match self.loops.last() {
            Some(context) => {
                let next = &context.next;
                quote!(#next.call(::cps::__private::Step::Return(#value));)
            }
            None => {
                let k = &self.return_k;
                quote!(#k.call(#value);)
            }
        }
    }
}

impl Lowerer {
    /// Lowers a function body ending at `terminal`.
    pub fn function_body(
        &mut self,
        stmts: &[syn::Stmt],
        terminal: Terminal,
    ) -> Result<TokenStream> {
        self.stmts_to(stmts, &terminal)
    }
}

/// The values of carried variables as they leave a branch or iteration.
///
/// A user's variable is cloned (for a `Var`, one reference count), not
/// moved: the closures of the branch then capture it by reference, so a
/// borrow such as `x.value()` may be alive where the branch ends. The
/// macro's own loop iterators are never borrowed, so they are moved.
pub(crate) fn carry_out(carried: &[Ident]) -> Vec<TokenStream> {
    carried
        .iter()
        .map(|ident| {
            if ident.to_string().starts_with("__cps_") {
                quote!(#ident)
            } else {
                quote!(::cps::__private::carry(&#ident))
            }
        })
        .collect()
}
