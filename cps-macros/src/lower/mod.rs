//! The rewrite into continuation-passing style.
//!
//! Lowering an expression takes a *continuation*: a generator of the code
//! that runs after the expression, given an atom (a simple expression:
//! a temporary, a path, a literal) naming its value. Each bind point
//! becomes
//!
//! ```text
//! Staged::__cps_run(Stage::new(<value>).__cps_stage(), |t| { <continuation of t> });
//! ```
//!
//! so the rest of the function runs inside the callback. A statement is
//! first lowered into a *staged* value instead (see [`staged`]): its bind
//! points hand their values to the rest of the statement only, plain ones
//! at once, so that its temporaries end with it as in plain Rust, and the
//! staged value is then run with the rest of the function. Control flow
//! whose branches contain bind points becomes a sub-computation bound the
//! same way (see [`control`]); `mut` variables and `&mut` references it
//! touches are moved through it explicitly, since closures cannot share
//! them. Where control leaves a block, the locals that are known to be in
//! place are dropped (see [`drops`]).

mod control;
mod drops;
mod expr;
pub mod iterators;
pub mod question_mark;
mod stack_checks;
mod staged;
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

/// What the continuation of a bind point generates.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The rest of the function (continuation-passing style).
    Rest,
    /// The rest of a statement, as a staged value (see [`staged`]).
    Statement,
}

/// A variable in scope.
#[derive(Clone)]
struct Local {
    ident: Ident,
    /// Bound `mut`: assignments rebind it, and constructs that use it carry it.
    mutable: bool,
    /// A `&mut` reference: constructs that use it carry it too, since a
    /// loop body (called once per iteration while earlier ones still run)
    /// cannot capture it mutably.
    unique_ref: bool,
}

/// State of the rewrite of one function body.
pub struct Lowerer {
    /// Variables in scope, innermost last.
    scope: Vec<Local>,
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
    /// What bind points generate.
    mode: Mode,
    /// Lent values of the statement being staged, bound before it.
    hoisted: Vec<TokenStream>,
    /// The staged values of the statement's first bind points, as long as
    /// none uses an earlier one's result: evaluated first, in order.
    prefix: Vec<TokenStream>,
    /// Whether the statement's bind points so far all went to `prefix`.
    prefix_open: bool,
    /// Variables moved into a loop that returned from inside it: the
    /// function returns without them, so they are not dropped there.
    moved_away: Vec<String>,
    /// Where the statement after the one being lowered begins, if any: the
    /// closure holding the rest of the block takes its span, so that a
    /// borrow error about what the rest captures points there.
    rest_span: Option<Span>,
    /// Whether a later bind point of the statement being staged uses a
    /// variable (see [`Lowerer::value`]).
    staging_refused: bool,
    /// The blocks being lowered, innermost last (see [`drops`]).
    blocks: Vec<drops::BlockScope>,
    /// The constructs and loop bodies being lowered, with how many blocks
    /// were open when each began.
    boundaries: Vec<(drops::Boundary, usize)>,

    next_temp: usize,
}

impl Lowerer {
    /// A rewrite of a body whose parameters bind `params`.
    pub fn new(params: Vec<(Ident, bool, bool)>, return_k: Ident) -> Self {
        Lowerer {
            scope: params
                .into_iter()
                .map(|(ident, mutable, unique_ref)| Local {
                    ident,
                    mutable,
                    unique_ref,
                })
                .collect(),
            carried: Vec::new(),
            loops: Vec::new(),
            return_k,
            annotation: None,
            stack_checks: StackChecks::default(),
            mode: Mode::Rest,
            hoisted: Vec::new(),
            prefix: Vec::new(),
            prefix_open: false,
            staging_refused: false,
            rest_span: None,
            moved_away: Vec::new(),
            blocks: Vec::new(),
            boundaries: Vec::new(),
            next_temp: 0,
        }
    }

    /// A fresh hygienic identifier: user code cannot see or clash with it.
    fn temp(&mut self, what: &str) -> Ident {
        self.temp_at(what, Span::mixed_site())
    }

    /// [`temp`](Self::temp) located at `at` (hygiene unchanged): an error
    /// about the value it holds (a mismatched argument type, say) points
    /// at the user's expression rather than at the attribute.
    fn temp_at(&mut self, what: &str, at: Span) -> Ident {
        self.next_temp += 1;
        format_ident!(
            "__cps_{}{}",
            what,
            self.next_temp,
            span = Span::mixed_site().located_at(at)
        )
    }

    /// Emits a bind point whose value initialises a `let` of type `ty`
    /// (when given): the type decides between running a computation of
    /// that output and passing a plain value on, which also lets
    /// `collect()` and `parse()` infer their result from the annotation.
    fn bind_point_as(
        &mut self,
        span: Span,
        value: TokenStream,
        ty: Option<syn::Type>,
        k: Cont,
    ) -> Result<TokenStream> {
        let t = self.temp_at("t", span);
        if self.mode == Mode::Statement {
            return self.staged_bind_point(span, value, ty, &t, k);
        }
        let (rest, checked) = self.after_bind_point(&t, k)?;
        let staged = staged::stage(span, value, ty);
        let run = if checked {
            quote_spanned!(span=> __cps_run_checked)
        } else {
            quote_spanned!(span=> __cps_run)
        };
        Ok(quote_spanned! {span=>
            ::cps::__private::Staged::#run(#staged, |mut #t| { #rest });
        })
    }

    /// Brings pattern bindings into scope, refusing to shadow a carried name.
    fn declare(&mut self, pat: &syn::Pat) -> Result<()> {
        self.declare_with(pat, false)
    }

    /// [`Lowerer::declare`], `unique_ref` saying whether the pattern binds a
    /// `&mut` reference (`let r = &mut x;`, `let r: &mut T = ..`).
    fn declare_with(&mut self, pat: &syn::Pat, unique_ref: bool) -> Result<()> {
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
            self.scope.push(Local {
                ident,
                mutable,
                unique_ref,
            });
        }
        Ok(())
    }

    /// Brings a variable carried into a construct back into scope.
    fn redeclare_carried(&mut self, ident: &Ident) {
        let unique_ref = self.is_unique_ref(ident);
        self.scope.push(Local {
            ident: ident.clone(),
            mutable: true,
            unique_ref,
        });
    }

    /// The variables in scope among `names` that a construct using them
    /// carries (`mut` ones and `&mut` references), outermost first.
    fn mutable_among(&self, names: &BTreeSet<String>) -> Vec<Ident> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        for local in self.scope.iter().rev() {
            let name = local.ident.to_string();
            if seen.insert(name.clone())
                && (local.mutable || local.unique_ref)
                && names.contains(&name)
            {
                found.push(local.ident.clone());
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
        let leaving = match terminal {
            Terminal::Function => None,
            Terminal::Construct { .. } => Some(drops::Boundary::Construct),
            Terminal::Iteration => Some(drops::Boundary::Loop),
        };
        let drops = self.drops_to(leaving);
        if drops.is_empty() {
            return self.hand_on(terminal, value);
        }
        // The value is taken before the block's locals are dropped.
        let kept = Ident::new("__cps_value", Span::mixed_site());
        let hand_on = self.hand_on(terminal, quote!(#kept));
        quote!(let #kept = #value; #drops #hand_on)
    }

    fn hand_on(&self, terminal: &Terminal, value: TokenStream) -> TokenStream {
        match terminal {
            Terminal::Function => {
                let k = &self.return_k;
                quote!(#k.call(#value);)
            }
            // Carried variables leave by move, as in plain Rust.
            Terminal::Construct { k, carried } => quote!(#k(((#(#carried,)*), #value));),
            Terminal::Iteration => {
                let context = self.loops.last().expect("an iteration ends inside a loop");
                let next = &context.next;
                let carried = &context.carried;
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
            .find(|local| local.ident == *name)
            .is_some_and(|local| local.mutable)
    }

    /// Whether `name` is a `&mut` reference in scope.
    fn is_unique_ref(&self, name: &Ident) -> bool {
        self.scope
            .iter()
            .rev()
            .find(|local| local.ident == *name)
            .is_some_and(|local| local.unique_ref)
    }

    /// The code that returns `value` from the function from where we are.
    fn return_with(&self, value: TokenStream) -> TokenStream {
        let kept = Ident::new("__cps_value", Span::mixed_site());
        match self.loops.last() {
            Some(context) => {
                let next = &context.next;
                let drops = self.drops_to(Some(drops::Boundary::Loop));
                quote! {
                    let #kept = #value;
                    #drops
                    #next.call(::cps::__private::Step::Return(#kept));
                }
            }
            None => {
                let k = &self.return_k;
                let drops = self.drops_to(None);
                quote!(let #kept = #value; #drops #k.call(#kept);)
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
