//! Expressions: operands first, left to right, then a bind point.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Error, Expr, Result, UnOp};

use super::{Cont, Lowerer, Mode};
use crate::analyse::{is_bind_operator, needs_lowering};

/// Continuation receiving the atoms of several operands.
type ContMany<'a> = Box<dyn FnOnce(&mut Lowerer, Vec<TokenStream>) -> Result<TokenStream> + 'a>;

impl Lowerer {
    /// Lowers `expr`; `k` receives an atom naming its value.
    pub fn expr<'a>(&mut self, expr: &'a Expr, k: Cont<'a>) -> Result<TokenStream> {
        // The type of the `let` this expression initialises, if written:
        // it guides the expression's own bind point, not its operands'.
        let annotation = self.annotation.take();
        if !needs_lowering(expr) {
            return k(self, expr.to_token_stream());
        }
        let span = expr.span();
        match expr {
            Expr::Paren(inner) => self.expr(&inner.expr, k),
            Expr::Group(inner) => self.expr(&inner.expr, k),
            Expr::Call(call) => {
                let func = &call.func;
                self.call_operands(
                    call.args.iter().collect(),
                    Box::new(move |this: &mut Lowerer, args| {
                        this.bind_point_as(
                            span,
                            quote_spanned!(span=> #func(#(#args),*)),
                            annotation,
                            k,
                        )
                    }),
                )
            }
            Expr::MethodCall(call) => {
                let method = &call.method;
                let turbofish = &call.turbofish;
                let receiver = &call.receiver;
                let mut operands = Vec::new();
                let lower_receiver = needs_lowering(receiver);
                if lower_receiver {
                    operands.push(&**receiver);
                }
                operands.extend(call.args.iter());
                self.call_operands(
                    operands,
                    Box::new(move |this: &mut Lowerer, mut atoms| {
                        let receiver = if lower_receiver {
                            atoms.remove(0)
                        } else {
                            receiver.to_token_stream()
                        };
                        let value =
                            quote_spanned!(span=> #receiver.#method #turbofish(#(#atoms),*));
                        this.bind_point_as(span, value, annotation, k)
                    }),
                )
            }
            Expr::Binary(binary) if is_bind_operator(&binary.op) => {
                let op = &binary.op;
                self.operands(
                    vec![&binary.left, &binary.right],
                    Box::new(move |this: &mut Lowerer, atoms| {
                        let (left, right) = (&atoms[0], &atoms[1]);
                        this.bind_point_as(
                            span,
                            quote_spanned!(span=> #left #op #right),
                            annotation,
                            k,
                        )
                    }),
                )
            }
            Expr::Binary(binary) => self.other_binary(binary, k),
            Expr::Unary(unary) => {
                let op = &unary.op;
                let is_deref = matches!(op, UnOp::Deref(_));
                self.expr(
                    &unary.expr,
                    Box::new(move |this: &mut Lowerer, operand| {
                        if is_deref {
                            k(this, quote!((#op #operand)))
                        } else {
                            this.bind_point_as(
                                span,
                                quote_spanned!(span=> #op #operand),
                                annotation,
                                k,
                            )
                        }
                    }),
                )
            }
            Expr::Reference(reference) => {
                let and = &reference.and_token;
                let mutability = &reference.mutability;
                self.expr(
                    &reference.expr,
                    Box::new(move |this: &mut Lowerer, operand| {
                        k(this, quote!((#and #mutability #operand)))
                    }),
                )
            }
            Expr::Field(field) => {
                let member = &field.member;
                let dot = &field.dot_token;
                self.expr(
                    &field.base,
                    Box::new(move |this: &mut Lowerer, base| k(this, quote!(#base #dot #member))),
                )
            }
            Expr::Index(index) => self.operands(
                vec![&index.expr, &index.index],
                Box::new(move |this: &mut Lowerer, atoms| {
                    let (base, position) = (&atoms[0], &atoms[1]);
                    k(this, quote!(#base[#position]))
                }),
            ),
            Expr::Cast(cast) => {
                let ty = &cast.ty;
                self.expr(
                    &cast.expr,
                    Box::new(move |this: &mut Lowerer, operand| k(this, quote!((#operand as #ty)))),
                )
            }
            Expr::Tuple(tuple) => self.operands(
                tuple.elems.iter().collect(),
                Box::new(move |this: &mut Lowerer, atoms| {
                    let comma = (atoms.len() == 1).then(|| quote!(,));
                    k(this, quote!((#(#atoms),* #comma)))
                }),
            ),
            Expr::Array(array) => self.operands(
                array.elems.iter().collect(),
                Box::new(move |this: &mut Lowerer, atoms| k(this, quote!([#(#atoms),*]))),
            ),
            Expr::Repeat(repeat) => {
                let len = &repeat.len;
                self.expr(
                    &repeat.expr,
                    Box::new(move |this: &mut Lowerer, element| k(this, quote!([#element; #len]))),
                )
            }
            Expr::Struct(literal) => self.struct_literal(literal, k),
            Expr::Range(range) => {
                let limits = &range.limits;
                let ends: Vec<&Expr> = range
                    .start
                    .iter()
                    .chain(range.end.iter())
                    .map(|e| &**e)
                    .collect();
                let has_start = range.start.is_some();
                let has_end = range.end.is_some();
                self.operands(
                    ends,
                    Box::new(move |this: &mut Lowerer, mut atoms| {
                        let end = if has_end { atoms.pop() } else { None };
                        let start = if has_start { atoms.pop() } else { None };
                        k(this, quote!((#start #limits #end)))
                    }),
                )
            }
            Expr::Assign(assign) => {
                let place = &assign.left;
                if self.mode == Mode::Rest
                    && let Some(ident) = self.rebound_local(place)
                {
                    // `x = value` on a `mut` local becomes a new binding of
                    // `x`: everything after it is inside this continuation,
                    // so that is the same, and no closure has to capture the
                    // old `x` (which `x + ...` may have moved).
                    return self.value(
                        &assign.right,
                        Box::new(move |this: &mut Lowerer, value| {
                            this.redeclare_carried(&ident);
                            let rest = k(this, quote!(()))?;
                            Ok(quote!(let mut #ident = #value; #rest))
                        }),
                    );
                }
                // The assigned value first, then the place, as Rust does.
                self.operands(
                    vec![&assign.right, place],
                    Box::new(move |this: &mut Lowerer, atoms| {
                        let (value, place) = (&atoms[0], &atoms[1]);
                        this.refuse_staging_if_local(&quote!(#place #value));
                        let rest = k(this, quote!(()))?;
                        Ok(quote!({ #place = #value; #rest }))
                    }),
                )
            }
            Expr::Return(ret) => match &ret.expr {
                None => Ok(self.return_with(quote!(()))),
                Some(value) => self.value(
                    value,
                    Box::new(|this: &mut Lowerer, value| Ok(this.return_with(value))),
                ),
            },
            Expr::Break(_) | Expr::Continue(_) => self.loop_jump(expr),
            Expr::Let(expr_let) => Err(Error::new_spanned(
                expr_let,
                "#[differentiable] supports `if let` and `while let` with one pattern only; \
                 split this condition into nested `if`s",
            )),
            Expr::Macro(mac) if mac.mac.path.is_ident("vec") => self.vec_literal(mac, k),
            Expr::If(_) | Expr::Match(_) | Expr::Block(_) => self.branching(expr, k),
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => self.looping(expr, k),
            Expr::Unsafe(block) => Err(Error::new_spanned(
                block.unsafe_token,
                "#[differentiable] does not rewrite `unsafe` blocks; move the unsafe code into a \
                 plain function and call it",
            )),
            Expr::Await(expr_await) => Err(Error::new_spanned(
                expr_await,
                "`.await` cannot appear in differentiable code: continuations run on the stack",
            )),
            other => Err(Error::new_spanned(
                other,
                "#[differentiable] cannot rewrite this expression; move it into a plain function",
            )),
        }
    }

    /// Lowers several operands left to right; `k` receives their atoms.
    pub(super) fn operands<'a>(
        &mut self,
        exprs: Vec<&'a Expr>,
        k: ContMany<'a>,
    ) -> Result<TokenStream> {
        self.operands_from(exprs, Vec::new(), false, k)
    }

    /// Lowers the arguments of a call (see [`Lowerer::lent_local`]).
    fn call_operands<'a>(&mut self, exprs: Vec<&'a Expr>, k: ContMany<'a>) -> Result<TokenStream> {
        self.operands_from(exprs, Vec::new(), true, k)
    }

    fn operands_from<'a>(
        &mut self,
        mut exprs: Vec<&'a Expr>,
        mut done: Vec<TokenStream>,
        lend: bool,
        k: ContMany<'a>,
    ) -> Result<TokenStream> {
        if done.len() == exprs.len() {
            return k(self, done);
        }
        let next = exprs[done.len()];
        if let Some(local) = lend.then(|| self.lent_local(next)).flatten() {
            // `&x` handed to a call: the call holds the reference until its
            // backward step. The type decides what is lent (see the
            // runtime's `private::lend`): a copy of a cheap shared handle,
            // else `x` itself.
            let lent = self.temp("lent");
            done.push(quote!(#lent.__cps_get()));
            let lend_x = quote_spanned!(next.span()=> let #lent = ::cps::__private::Lend(&#local).__cps_lend(););
            if self.mode == Mode::Statement {
                self.hoisted.push(lend_x);
                return self.operands_from(exprs, done, lend, k);
            }
            let rest = self.operands_from(exprs, done, lend, k)?;
            return Ok(quote!(#lend_x #rest));
        }
        // An operand after a lowered one is evaluated inside that one's
        // continuation, which keeps Rust's left-to-right order.
        self.expr(
            next,
            Box::new(move |this: &mut Lowerer, atom| {
                done.push(atom);
                let exprs = std::mem::take(&mut exprs);
                this.operands_from(exprs, done, lend, k)
            }),
        )
    }

    /// `Some(x)` when `expr` is `&x` for a local variable `x`, lent to a
    /// call (see [`Lowerer::operands_from`]).
    fn lent_local(&self, expr: &Expr) -> Option<syn::Ident> {
        let Expr::Reference(reference) = expr else {
            return None;
        };
        if reference.mutability.is_some() {
            return None;
        }
        let Expr::Path(path) = &*reference.expr else {
            return None;
        };
        let ident = path.path.get_ident()?;
        let is_local = ident != "self" && self.scope.iter().any(|local| local.ident == *ident);
        is_local.then(|| ident.clone())
    }

    /// Comparisons and the lazy logical operators.
    fn other_binary<'a>(
        &mut self,
        binary: &'a syn::ExprBinary,
        k: Cont<'a>,
    ) -> Result<TokenStream> {
        let op = &binary.op;
        let lazy = matches!(op, syn::BinOp::And(_) | syn::BinOp::Or(_));
        if lazy && needs_lowering(&binary.right) {
            // `a && b` is `if a { b } else { false }`: `b` must not run early.
            let (left, right) = (&binary.left, &binary.right);
            let desugared: Expr = match op {
                syn::BinOp::And(_) => syn::parse_quote!(if #left { #right } else { false }),
                _ => syn::parse_quote!(if #left { true } else { #right }),
            };
            let desugared: &'a Expr = Box::leak(Box::new(desugared));
            return self.expr(desugared, k);
        }
        if crate::analyse::is_compound_assignment(op) {
            // The place first, then the value (the order Rust uses for
            // overloaded operators); a place computed by calls
            // (`*counts.entry(w).or_insert(0) += 1`) is lowered like any
            // operand, and its temporaries end with the statement.
            return self.operands(
                vec![&binary.left, &binary.right],
                Box::new(move |this: &mut Lowerer, atoms| {
                    let (place, value) = (&atoms[0], &atoms[1]);
                    this.refuse_staging_if_local(&quote!(#place #value));
                    let rest = k(this, quote!(()))?;
                    Ok(quote!({ #place #op #value; #rest }))
                }),
            );
        }
        self.operands(
            vec![&binary.left, &binary.right],
            Box::new(move |this: &mut Lowerer, atoms| {
                let (left, right) = (&atoms[0], &atoms[1]);
                k(this, quote!((#left #op #right)))
            }),
        )
    }

    /// `vec![a, b, c]`: its elements are ordinary expressions, so they are
    /// bound like a tuple's. (Other macros are left as they are.)
    fn vec_literal<'a>(&mut self, mac: &'a syn::ExprMacro, k: Cont<'a>) -> Result<TokenStream> {
        let parser = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
        let Ok(elements) = syn::parse::Parser::parse2(parser, mac.mac.tokens.clone()) else {
            return k(self, mac.to_token_stream());
        };
        let elements: &'a Vec<Expr> = Box::leak(Box::new(elements.into_iter().collect()));
        let path = &mac.mac.path;
        self.operands(
            elements.iter().collect(),
            Box::new(move |this: &mut Lowerer, atoms| k(this, quote!(#path![#(#atoms),*]))),
        )
    }

    fn struct_literal<'a>(
        &mut self,
        literal: &'a syn::ExprStruct,
        k: Cont<'a>,
    ) -> Result<TokenStream> {
        let path = &literal.path;
        let qself = &literal.qself;
        if qself.is_some() {
            return Err(Error::new_spanned(
                literal,
                "#[differentiable] cannot rewrite a struct literal with a qualified path; bind \
                 the fields with `let` first",
            ));
        }
        let members: Vec<&syn::Member> = literal.fields.iter().map(|f| &f.member).collect();
        let mut exprs: Vec<&Expr> = literal.fields.iter().map(|f| &f.expr).collect();
        let has_rest = literal.rest.is_some();
        if let Some(rest) = &literal.rest {
            exprs.push(rest);
        }
        self.operands(
            exprs,
            Box::new(move |this: &mut Lowerer, mut atoms| {
                let base = if has_rest {
                    let base = atoms.pop();
                    quote!(.. #base)
                } else {
                    TokenStream::new()
                };
                k(this, quote!(#path { #(#members: #atoms,)* #base }))
            }),
        )
    }
}
