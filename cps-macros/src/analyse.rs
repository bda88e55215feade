//! Syntactic facts about expressions. The macro sees no types, so these
//! are the only facts the rewrite relies on.

use std::collections::BTreeSet;

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Expr, Pat, UnOp};

/// Whether `expr` must be rewritten: it contains a bind point (a call, a
/// method call, an arithmetic or negation operator) or a jump (`return`,
/// `?`, or a `break`/`continue` leaving it). Closures, nested items and
/// macro invocations are opaque: they are ordinary code.
pub fn needs_lowering(expr: &Expr) -> bool {
    let mut finder = EffectFinder {
        found: false,
        loop_depth: 0,
    };
    finder.visit_expr(expr);
    finder.found
}

struct EffectFinder {
    found: bool,
    loop_depth: usize,
}

impl EffectFinder {
    fn in_loop(&mut self, f: impl FnOnce(&mut Self)) {
        self.loop_depth += 1;
        f(self);
        self.loop_depth -= 1;
    }
}

impl<'ast> Visit<'ast> for EffectFinder {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        if self.found {
            return;
        }
        match expr {
            Expr::Call(_) | Expr::MethodCall(_) | Expr::Return(_) | Expr::Try(_) => {
                self.found = true
            }
            Expr::Binary(binary) if is_bind_operator(&binary.op) => self.found = true,
            Expr::Unary(unary) if !matches!(unary.op, UnOp::Deref(_)) => self.found = true,
            Expr::Break(b) if self.loop_depth == 0 || b.label.is_some() => self.found = true,
            Expr::Continue(c) if self.loop_depth == 0 || c.label.is_some() => self.found = true,
            Expr::Loop(l) => self.in_loop(|s| s.visit_block(&l.body)),
            Expr::While(w) => {
                self.visit_expr(&w.cond);
                self.in_loop(|s| s.visit_block(&w.body));
            }
            Expr::ForLoop(f) => {
                self.visit_expr(&f.expr);
                self.in_loop(|s| s.visit_block(&f.body));
            }
            Expr::Macro(mac) if mac.mac.path.is_ident("vec") => {
                let parser = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
                if let Ok(elements) = syn::parse::Parser::parse2(parser, mac.mac.tokens.clone()) {
                    elements.iter().for_each(|e| self.visit_expr(e));
                }
            }
            Expr::Closure(_) | Expr::Macro(_) | Expr::Async(_) | Expr::Const(_) => {}
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}

    fn visit_stmt_macro(&mut self, _: &'ast syn::StmtMacro) {}
}

/// The binary operators that are bind points: arithmetic and bitwise ones,
/// which a tensor type may overload. Comparisons, `&&`, `||` and compound
/// assignments are not.
pub fn is_bind_operator(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        Add(_)
            | Sub(_)
            | Mul(_)
            | Div(_)
            | Rem(_)
            | BitAnd(_)
            | BitOr(_)
            | BitXor(_)
            | Shl(_)
            | Shr(_)
    )
}

/// Whether `op` is `+=`, `-=`, ….
pub fn is_compound_assignment(op: &syn::BinOp) -> bool {
    use syn::BinOp::*;
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | BitXorAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

/// Whether the body of a loop leaves it with a value (`break value`).
pub fn has_valued_break(block: &syn::Block) -> bool {
    let mut finder = JumpFinder {
        wanted: |jump: &Expr| matches!(jump, Expr::Break(b) if b.expr.is_some()),
        found: false,
        depth: 0,
    };
    finder.visit_block(block);
    finder.found
}

/// Whether `expr` contains a `break` or `continue` that leaves it (and so
/// needs the enclosing loop's state).
pub fn has_loop_jump(expr: &Expr) -> bool {
    let mut finder = JumpFinder {
        wanted: |_: &Expr| true,
        found: false,
        depth: 0,
    };
    finder.visit_expr(expr);
    finder.found
}

/// Looks for a `break` or `continue` of the outermost loop level that
/// satisfies `wanted`; jumps of loops nested inside belong to those loops.
struct JumpFinder<F> {
    wanted: F,
    found: bool,
    depth: usize,
}

impl<'ast, F: Fn(&Expr) -> bool> Visit<'ast> for JumpFinder<F> {
    fn visit_expr(&mut self, expr: &'ast Expr) {
        match expr {
            Expr::Break(_) | Expr::Continue(_) if self.depth == 0 && (self.wanted)(expr) => {
                self.found = true
            }
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                self.depth += 1;
                visit::visit_expr(self, expr);
                self.depth -= 1;
            }
            Expr::Closure(_) | Expr::Async(_) => {}
            _ => visit::visit_expr(self, expr),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// Every name an expression may refer to as a variable: single-segment
/// paths, identifiers inside macro invocations and `{name}` arguments
/// inlined in their string literals. Over-approximates on purpose.
pub fn mentioned_names(expr: &Expr) -> BTreeSet<String> {
    let mut names = Mentions::default();
    names.visit_expr(expr);
    names.names
}

#[derive(Default)]
struct Mentions {
    names: BTreeSet<String>,
}

impl<'ast> Visit<'ast> for Mentions {
    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        if path.qself.is_none()
            && let Some(ident) = path.path.get_ident()
        {
            self.names.insert(ident.to_string());
        }
        visit::visit_expr_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        tokens_mentions(mac.tokens.clone(), &mut self.names);
    }

    fn visit_expr_struct(&mut self, expr: &'ast syn::ExprStruct) {
        // `S { x }` is shorthand for `S { x: x }`.
        for field in &expr.fields {
            if field.colon_token.is_none()
                && let syn::Member::Named(ident) = &field.member
            {
                self.names.insert(ident.to_string());
            }
        }
        visit::visit_expr_struct(self, expr);
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn tokens_mentions(tokens: TokenStream, names: &mut BTreeSet<String>) {
    let mut after_dot = false;
    for token in tokens {
        match &token {
            TokenTree::Ident(ident) if !after_dot => {
                names.insert(ident.to_string());
            }
            TokenTree::Group(group) => tokens_mentions(group.stream(), names),
            TokenTree::Literal(literal) => {
                let text = literal.to_string();
                if text.starts_with('"') || text.starts_with('r') {
                    format_string_mentions(&text, names);
                }
            }
            _ => {}
        }
        after_dot = matches!(&token, TokenTree::Punct(p) if p.as_char() == '.');
    }
}

/// Names inlined in a format string: `"{loss:.3} {h}"`.
fn format_string_mentions(text: &str, names: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) {
            names.insert(name);
        }
    }
}

/// The variables a pattern binds, with whether each is bound `mut`.
/// Capitalised bare identifiers are taken to be constants or unit variants
/// (`None`, `MAX`), as Rust's naming conventions have it.
pub fn pattern_bindings(pat: &Pat) -> Vec<(syn::Ident, bool)> {
    struct Bindings(Vec<(syn::Ident, bool)>);
    impl<'ast> Visit<'ast> for Bindings {
        fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
            let name = pat.ident.to_string();
            let looks_like_constant = name.starts_with(|c: char| c.is_uppercase());
            if pat.subpat.is_some() || !looks_like_constant {
                self.0.push((pat.ident.clone(), pat.mutability.is_some()));
            }
            visit::visit_pat_ident(self, pat);
        }
        fn visit_expr(&mut self, _: &'ast Expr) {}
    }
    let mut bindings = Bindings(Vec::new());
    bindings.visit_pat(pat);
    bindings.0
}
