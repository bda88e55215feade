//! Locals dropped where their block ends.
//!
//! In continuation-passing style the rest of the function, and what
//! follows a block (the next loop iteration, the caller's rest), runs
//! inside the closures that hold the block's locals, so they would live
//! until the backward pass: a `RefCell` guard taken in a loop body would
//! still be held in the next iteration. So where control leaves a block
//! (its end, or a `return`, `break` or `continue`), the rewrite drops the
//! block's locals explicitly, as Rust does at a block's end.
//!
//! The macro sees no types and cannot tell whether a local was moved, so
//! it drops only the locals whose every later mention leaves them in place
//! and holds no borrow past its statement: a place assigned to (`*g += 1;`,
//! `g[i] = v;`), an operand of a comparison, an argument of a formatting
//! macro, and, for a `mut` local, the receiver of a method call that is a
//! statement of its own (`g.push(v);`, as a `RefMut` guard is used). A
//! method may take its receiver by value (`it.for_each(..)`), so that last
//! kind is trusted only where the binding's `mut` says the local is used
//! in place. Any other local (lent to a call, moved, borrowed into a
//! `let`) lives until the backward pass, like every value a running call
//! may still hold.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::visit::{self, Visit};
use syn::{Expr, Stmt};

use super::Lowerer;
use crate::analyse::{is_compound_assignment, pattern_bindings};

/// A block being lowered.
pub struct BlockScope {
    /// The length of the scope when the block began.
    start: usize,
    /// The locals of the block that are dropped where control leaves it.
    droppable: BTreeSet<String>,
}

/// What a terminal or jump leaves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// An `if`, `match` or block lowered as a sub-computation.
    Construct,
    /// A loop body.
    Loop,
}

impl Lowerer {
    /// Runs `f` (which lowers `stmts`) as a block of its own.
    pub(super) fn in_block<T>(&mut self, stmts: &[Stmt], f: impl FnOnce(&mut Self) -> T) -> T {
        self.blocks.push(BlockScope {
            start: self.scope.len(),
            droppable: droppable_locals(stmts),
        });
        let result = f(self);
        self.blocks.pop();
        result
    }

    /// Runs `f` inside a construct or loop body: terminals and jumps inside
    /// it leave the blocks entered from here on.
    pub(super) fn within<T>(&mut self, boundary: Boundary, f: impl FnOnce(&mut Self) -> T) -> T {
        self.boundaries.push((boundary, self.blocks.len()));
        let result = f(self);
        self.boundaries.pop();
        result
    }

    /// The drops of the locals of the blocks left on the way out to the
    /// innermost `boundary` (every block when `None` or when there is none).
    pub(super) fn drops_to(&self, boundary: Option<Boundary>) -> TokenStream {
        let first_block = boundary
            .and_then(|wanted| {
                self.boundaries
                    .iter()
                    .rev()
                    .find(|(kind, _)| *kind == wanted)
                    .map(|(_, blocks)| *blocks)
            })
            .unwrap_or(0);
        let Some(first) = self.blocks.get(first_block) else {
            return TokenStream::new();
        };
        let droppable: BTreeSet<&String> = self.blocks[first_block..]
            .iter()
            .flat_map(|block| &block.droppable)
            .collect();
        let mut seen: BTreeSet<String> = self.moved_away.iter().cloned().collect();
        let mut drops = Vec::new();
        // Latest first: Rust drops a block's locals in reverse order.
        for local in self.scope[first.start..].iter().rev() {
            let name = local.ident.to_string();
            if seen.insert(name.clone()) && droppable.contains(&name) {
                // At the binding, so that an error about the drop (a local
                // that a method consumed after all) points there.
                let ident = &local.ident;
                drops.push(quote_spanned!(ident.span()=> ::core::mem::drop(#ident);));
            }
        }
        quote!(#(#drops)*)
    }
}

/// The names bound by the block's `let`s that may be dropped where it ends
/// (see the module documentation).
fn droppable_locals(stmts: &[Stmt]) -> BTreeSet<String> {
    let mut declared: Vec<String> = Vec::new();
    let mut found = BTreeSet::new();
    for (i, stmt) in stmts.iter().enumerate() {
        let Stmt::Local(local) = stmt else { continue };
        for (ident, mutable) in pattern_bindings(&local.pat) {
            let name = ident.to_string();
            declared.push(name.clone());
            let later = &stmts[i + 1..];
            let mut all = Mentions::of(&name);
            let mut safe = SafeMentions::of(&name, mutable);
            for stmt in later {
                all.visit_stmt(stmt);
                safe.statement(stmt);
            }
            if all.count == safe.count {
                found.insert(name);
            }
        }
    }
    // A name declared twice in one block is not dropped by name: which of
    // its bindings is live where control leaves depends on the way taken.
    found.retain(|name| declared.iter().filter(|d| *d == name).count() == 1);
    found
}

/// Every mention of a name, closures and macros included.
struct Mentions<'n> {
    name: &'n str,
    count: usize,
}

impl<'n> Mentions<'n> {
    fn of(name: &'n str) -> Self {
        Mentions { name, count: 0 }
    }
}

impl<'ast> Visit<'ast> for Mentions<'_> {
    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        if path.qself.is_none() && path.path.is_ident(self.name) {
            self.count += 1;
        }
        visit::visit_expr_path(self, path);
    }

    fn visit_expr_struct(&mut self, expr: &'ast syn::ExprStruct) {
        for field in &expr.fields {
            if field.colon_token.is_none()
                && matches!(&field.member, syn::Member::Named(ident) if ident == self.name)
            {
                self.count += 1;
            }
        }
        visit::visit_expr_struct(self, expr);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.count += token_mentions(mac.tokens.clone(), self.name);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn token_mentions(tokens: TokenStream, name: &str) -> usize {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Ident(ident) if ident == name => 1,
            TokenTree::Group(group) => token_mentions(group.stream(), name),
            TokenTree::Literal(literal) => {
                let text = literal.to_string();
                let inline = format!("{{{name}");
                text.matches(&inline)
                    .filter(|_| text.starts_with('"') || text.starts_with('r'))
                    .count()
            }
            _ => 0,
        })
        .sum()
}

/// The mentions of a name that leave it in place and hold no borrow past
/// their statement.
struct SafeMentions<'n> {
    name: &'n str,
    count: usize,
    /// Whether method calls on the local may be trusted to leave it in
    /// place (the local is bound `mut`).
    in_place: bool,
}

impl<'n> SafeMentions<'n> {
    fn of(name: &'n str, in_place: bool) -> Self {
        SafeMentions {
            name,
            count: 0,
            in_place,
        }
    }

    fn statement(&mut self, stmt: &Stmt) {
        match stmt {
            Stmt::Expr(Expr::MethodCall(call), Some(_))
                if self.in_place && self.rooted(&call.receiver) =>
            {
                self.count += 1;
                call.args.iter().for_each(|arg| self.visit_expr(arg));
            }
            other => self.visit_stmt(other),
        }
    }

    /// Whether `expr` is a place or value reached from the name through
    /// fields, indexing, dereferences and method calls, the name itself
    /// mentioned once at its root (and not in an index or argument).
    fn rooted(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Path(path) => path.qself.is_none() && path.path.is_ident(self.name),
            Expr::Field(field) => self.rooted(&field.base),
            Expr::Paren(inner) => self.rooted(&inner.expr),
            Expr::Unary(unary) if matches!(unary.op, syn::UnOp::Deref(_)) => {
                self.rooted(&unary.expr)
            }
            Expr::Index(index) => self.rooted(&index.expr) && !self.mentioned_in(&index.index),
            Expr::MethodCall(call) => {
                self.in_place
                    && self.rooted(&call.receiver)
                    && !call.args.iter().any(|a| self.mentioned_in(a))
            }
            _ => false,
        }
    }

    fn mentioned_in(&self, expr: &Expr) -> bool {
        let mut all = Mentions::of(self.name);
        all.visit_expr(expr);
        all.count > 0
    }
}

impl<'ast> Visit<'ast> for SafeMentions<'_> {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Assign(assign) if self.rooted(&assign.left) => {
                self.count += 1;
                self.visit_expr(&assign.right);
            }
            Expr::Binary(binary)
                if is_compound_assignment(&binary.op) && self.rooted(&binary.left) =>
            {
                self.count += 1;
                self.visit_expr(&binary.right);
            }
            Expr::Binary(binary) if is_comparison(&binary.op) => {
                for operand in [&binary.left, &binary.right] {
                    if self.rooted(operand) {
                        self.count += 1;
                    } else {
                        self.visit_expr(operand);
                    }
                }
            }
            Expr::Block(block) => self.block(&block.block),
            Expr::If(expr_if) => {
                self.visit_expr(&expr_if.cond);
                self.block(&expr_if.then_branch);
                if let Some((_, other)) = &expr_if.else_branch {
                    self.visit_expr(other);
                }
            }
            Expr::Loop(expr_loop) => self.block(&expr_loop.body),
            Expr::While(expr_while) => {
                self.visit_expr(&expr_while.cond);
                self.block(&expr_while.body);
            }
            // Closures may be kept by a running call: no mention in one is safe.
            Expr::Closure(_) => {}
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if is_formatting(&mac.path) {
            self.count += token_mentions(mac.tokens.clone(), self.name);
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

impl SafeMentions<'_> {
    fn block(&mut self, block: &syn::Block) {
        block.stmts.iter().for_each(|stmt| self.statement(stmt));
    }
}

fn is_comparison(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(op, Eq(_) | Ne(_) | Lt(_) | Le(_) | Gt(_) | Ge(_))
}

/// The standard macros that only take references to their arguments.
fn is_formatting(path: &syn::Path) -> bool {
    const FORMATTING: [&str; 14] = [
        "println",
        "print",
        "eprintln",
        "eprint",
        "format",
        "write",
        "writeln",
        "panic",
        "assert",
        "assert_eq",
        "assert_ne",
        "debug_assert",
        "debug_assert_eq",
        "debug_assert_ne",
    ];
    path.get_ident()
        .is_some_and(|ident| FORMATTING.iter().any(|name| ident == name))
}

#[cfg(test)]
mod tests {
    /// The locals the expansion of `body` (a function body) drops.
    fn dropped(body: &str) -> Vec<String> {
        let source = format!("fn f(x: Var, log: &RefCell<Vec<f64>>, n: usize) -> Var {{ {body} }}");
        let item: proc_macro2::TokenStream = source.parse().expect("valid Rust");
        let expanded = crate::emit::differentiable(proc_macro2::TokenStream::new(), item)
            .expect("expands")
            .to_string();
        expanded
            .split(":: core :: mem :: drop (")
            .skip(1)
            .map(|rest| rest.split(')').next().unwrap_or("").trim().to_string())
            .collect()
    }

    #[test]
    fn a_guard_used_in_place_is_dropped_where_its_loop_body_ends() {
        let body = "let mut x = x; for _ in 0..n { let mut g = log.borrow_mut(); \
                    g.push(1.0); x = x.tanh(); } x";
        assert_eq!(dropped(body), ["g"]);
    }

    #[test]
    fn locals_that_may_be_moved_or_lent_are_kept() {
        // Consumed by a method (not `mut`: not trusted in place).
        assert!(dropped("let it = vec![1.0].into_iter(); it.for_each(drop); x.tanh()").is_empty());
        // Lent to a call that may still hold it.
        assert!(dropped("let v = vec![x.clone()]; let y = total(&v); y").is_empty());
        // Moved into the result.
        assert!(dropped("let y = x.tanh(); y").is_empty());
        // Borrowed into a `let` (which, never used again, is itself dropped).
        let body = "let mut g = log.borrow_mut(); let first = g.first(); x.tanh()";
        assert_eq!(dropped(body), ["first"]);
    }

    #[test]
    fn a_local_read_by_comparisons_and_formatting_is_dropped_at_a_return() {
        let body = "let limit = x.item(); if limit > 1.0 { println!(\"{limit}\"); \
                    return x.tanh(); } x.sigmoid()";
        assert_eq!(dropped(body), ["limit", "limit"]);
    }
}
