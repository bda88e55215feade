//! Generation: each differentiable function becomes a function of the same
//! name and parameters returning a lazy `cps::Computation`, whose body is
//! the rewritten one.
//!
//! ```text
//! fn f<'__cps>(x: &'__cps Var) -> impl ::cps::Computation<Output = Var> + '__cps {
//!     let run = move |k: &mut dyn FnMut(Var)| { /* rewritten body; ends with k(result) */ };
//!     ::cps::__private::lazy(run)
//! }
//! ```
//!
//! Calls between differentiable functions (recursion included) go through
//! the `&mut dyn FnMut` continuation, so monomorphisation stays finite.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::visit_mut::{self, VisitMut};
use syn::{
    FnArg, GenericParam, Ident, ImplItem, ItemFn, Lifetime, LifetimeParam, Result, ReturnType,
    Signature, parse_quote,
};

use crate::analyse::pattern_bindings;
use crate::lower::{Lowerer, Terminal};
use crate::target::{self, Target, is_plain};

/// The expansion of `#[differentiable]`.
pub fn differentiable(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    match target::parse(attr, item)? {
        Target::Function(function) => {
            let (sig, body) = rewrite(&function.sig, &function.block)?;
            let ItemFn { attrs, vis, .. } = function;
            Ok(quote!(#(#attrs)* #vis #sig #body))
        }
        Target::Impl(mut block) => {
            for item in &mut block.items {
                let ImplItem::Fn(method) = item else { continue };
                if is_plain(&method.attrs) {
                    method.attrs.retain(|a| !a.path().is_ident("plain"));
                    continue;
                }
                let (sig, body) = rewrite(&method.sig, &method.block)?;
                method.sig = sig;
                method.block = body;
            }
            Ok(quote!(#block))
        }
        Target::Trait(definition) => crate::traits::differentiable_trait(definition),
    }
}

/// Rewrites one function: its new signature and body.
pub(crate) fn rewrite(sig: &Signature, block: &syn::Block) -> Result<(Signature, syn::Block)> {
    let output: syn::Type = match &sig.output {
        ReturnType::Default => parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };

    let k_raw = Ident::new("__cps_k_raw", Span::mixed_site());
    let k = Ident::new("__cps_k", Span::mixed_site());
    // A receiver that is mutated (`&mut self`, `mut self`) is renamed, so
    // that loops and branches can carry it like any `&mut` or `mut`
    // variable (a closure parameter cannot be named `self`).
    let renamed_self = mutable_receiver(sig).then(|| Ident::new("__cps_self", Span::mixed_site()));
    let mut params = parameters(sig);
    let block = match &renamed_self {
        Some(renamed) => {
            for (ident, _, unique_ref) in &mut params {
                if ident == "self" {
                    *ident = renamed.clone();
                    *unique_ref = true;
                }
            }
            let tokens = rename_self(block.to_token_stream(), renamed);
            syn::parse2::<syn::Block>(tokens)?
        }
        None => block.clone(),
    };
    let take_self = renamed_self
        .as_ref()
        .map(|renamed| quote!(let #renamed = self;));
    let block = crate::lower::iterators::desugar(&block);
    let block = crate::lower::question_mark::desugar(&block, &output);
    let mut lowerer = Lowerer::new(params, k.clone());
    let body = lowerer.function_body(&block.stmts, Terminal::Function)?;

    let run = Ident::new("__cps_run", Span::mixed_site());
    let new_block: syn::Block = parse_quote!({
        #[allow(
            unused_mut,
            unused_variables,
            unused_assignments,
            unused_parens,
            unreachable_code,
            dropping_copy_types,
            dropping_references,
            clippy::all
        )]
        let #run = move |#k_raw: &mut dyn FnMut(#output)| {
            #[allow(unused_imports)]
            use ::cps::__private::{
                LendCopy as _, LendHandle as _, LendItself as _, StageAsComputation as _,
                StageAsPlain as _, StageComputation as _, StagePlain as _,
            };
            let #k = ::cps::__private::Once::new(#k_raw);
            #take_self
            #body
        };
        ::cps::__private::lazy(#run)
    });
    Ok((lazy_signature(sig, &output), new_block))
}

/// The variables the parameters bind, with whether each is `mut` and
/// whether it is a `&mut` reference.
fn parameters(sig: &Signature) -> Vec<(Ident, bool, bool)> {
    let mut bound = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => bound.push((
                Ident::new("self", receiver.self_token.span),
                receiver.mutability.is_some() && receiver.reference.is_none(),
                false,
            )),
            FnArg::Typed(arg) => {
                let unique_ref =
                    matches!(&*arg.ty, syn::Type::Reference(r) if r.mutability.is_some());
                bound.extend(
                    pattern_bindings(&arg.pat)
                        .into_iter()
                        .map(|(ident, mutable)| (ident, mutable, unique_ref)),
                );
            }
        }
    }
    bound
}

/// Whether the function takes `&mut self` or `mut self`.
fn mutable_receiver(sig: &Signature) -> bool {
    sig.inputs
        .iter()
        .any(|input| matches!(input, FnArg::Receiver(receiver) if receiver.mutability.is_some()))
}

/// `tokens` with every `self` replaced by `renamed`.
fn rename_self(tokens: TokenStream, renamed: &Ident) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            proc_macro2::TokenTree::Ident(ident) if ident == "self" => {
                let mut renamed = renamed.clone();
                renamed.set_span(ident.span().resolved_at(Span::mixed_site()));
                proc_macro2::TokenTree::Ident(renamed)
            }
            proc_macro2::TokenTree::Group(group) => {
                let mut renamed_group = proc_macro2::Group::new(
                    group.delimiter(),
                    rename_self(group.stream(), renamed),
                );
                renamed_group.set_span(group.span());
                proc_macro2::TokenTree::Group(renamed_group)
            }
            other => other,
        })
        .collect()
}

/// The signature of the wrapper: same name and parameters, every elided
/// lifetime named `'__cps`, every generic parameter outliving it, and a
/// lazy computation as the result.
pub(crate) fn lazy_signature(sig: &Signature, output: &syn::Type) -> Signature {
    let mut sig = sig.clone();
    let lifetime = Lifetime::new("'__cps", Span::call_site());
    // Every generic parameter outlives the computation; const parameters
    // are values and need no bound. The bound goes on the parameter itself
    // (not a `where` clause), so the user's bounds stay in one place.
    for param in sig.generics.params.iter_mut() {
        match param {
            GenericParam::Lifetime(p) => p.bounds.push(lifetime.clone()),
            GenericParam::Type(p) => p
                .bounds
                .push(syn::TypeParamBound::Lifetime(lifetime.clone())),
            GenericParam::Const(_) => {}
        }
    }
    sig.generics.params.insert(
        0,
        GenericParam::Lifetime(LifetimeParam::new(lifetime.clone())),
    );
    let mut namer = NameElided(lifetime.clone());
    for input in &mut sig.inputs {
        match input {
            FnArg::Receiver(receiver) => {
                if let Some((_, slot)) = &mut receiver.reference
                    && slot.is_none()
                {
                    *slot = Some(lifetime.clone());
                }
                namer.visit_type_mut(&mut receiver.ty);
            }
            FnArg::Typed(arg) => namer.visit_type_mut(&mut arg.ty),
        }
    }
    sig.output = parse_quote!(-> impl ::cps::Computation<Output = #output> + #lifetime);
    sig
}

/// Names elided lifetimes; those inside `fn(..)` types and `Fn(..)` bounds
/// are higher-ranked and stay as they are.
struct NameElided(Lifetime);

impl VisitMut for NameElided {
    fn visit_type_reference_mut(&mut self, reference: &mut syn::TypeReference) {
        if reference.lifetime.is_none() {
            reference.lifetime = Some(self.0.clone());
        }
        visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            *lifetime = self.0.clone();
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut syn::TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(
        &mut self,
        _: &mut syn::ParenthesizedGenericArguments,
    ) {
    }
}
