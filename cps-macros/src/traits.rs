//! The expansion of `#[differentiable]` on a trait definition.
//!
//! Each differentiable method returns a lazy computation, as a
//! differentiable function does: `-> impl Computation<Output = T> + '__cps`
//! (return-position `impl Trait` in a trait), so a call through a generic
//! `L: Layer` is monomorphised and costs no box. Such a method cannot be
//! called on a trait object, so it is bounded by `where Self: Sized`, and
//! trait objects get their own way in:
//!
//! ```text
//! pub trait Layer: __CpsDynLayer {
//!     fn forward<'__cps>(&'__cps self, x: &'__cps Var)
//!         -> impl Computation<Output = Var> + '__cps where Self: Sized;
//! }
//! // Object-safe: the same methods, each returning a boxed computation.
//! pub trait __CpsDynLayer {
//!     fn __cps_dyn_forward<'__cps>(&'__cps self, x: &'__cps Var)
//!         -> BoxedComputation<'__cps, Var>;
//! }
//! impl<T: Layer> __CpsDynLayer for T { /* box `Layer::forward(self, x)` */ }
//! // A boxed layer is a layer: each method goes through the vtable.
//! impl<'o> Layer for Box<dyn Layer + 'o> { /* `(**self).__cps_dyn_forward(x)` */ }
//! impl<'o> Layer for &'o (dyn Layer + 'o) { /* the same */ }
//! ```
//!
//! The companion trait is a supertrait, so every implementor has it (by
//! the blanket impl) and `dyn Layer` carries it in its vtable. A trait
//! gets this only when it can be a trait object: every method takes
//! `&self` or `&mut self`, none has type or const parameters or mentions
//! `Self` otherwise, and the trait has no other items; any other trait is
//! expanded without it and serves generic code.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::visit::{self, Visit};
use syn::{
    FnArg, GenericParam, Ident, ItemTrait, Pat, Result, ReturnType, Signature, TraitItem,
    TraitItemFn, Type, TypeParamBound, parse_quote,
};

use crate::emit::{lazy_signature, rewrite};
use crate::target::is_plain;

/// The expansion of `#[differentiable]` on `definition`.
pub fn differentiable_trait(mut definition: ItemTrait) -> Result<TokenStream> {
    let object_safe = can_be_object(&definition);
    let mut methods = Vec::new();
    for item in &mut definition.items {
        let TraitItem::Fn(method) = item else {
            continue;
        };
        if is_plain(&method.attrs) {
            method.attrs.retain(|a| !a.path().is_ident("plain"));
            continue;
        }
        let original = method.sig.clone();
        rewrite_method(method)?;
        methods.push(original);
    }
    if !object_safe {
        return Ok(quote!(#definition));
    }
    let objects = ObjectSupport::new(&definition, &methods);
    let companion = objects.companion_trait();
    let blanket = objects.blanket_impl();
    let boxed = objects.forwarding_impl(&parse_quote!(::std::boxed::Box));
    let borrowed = objects.borrowed_impl();
    let companion_name = objects.companion;
    let (_, trait_arguments, _) = definition.generics.split_for_impl();
    let supertrait: TypeParamBound = parse_quote!(#companion_name #trait_arguments);
    definition.supertraits.push(supertrait);
    if definition.colon_token.is_none() {
        definition.colon_token = Some(Default::default());
    }
    Ok(quote! {
        #definition
        #companion
        #blanket
        #boxed
        #borrowed
    })
}

/// A trait method made differentiable: a lazy signature bounded by
/// `Self: Sized`, and its default body rewritten.
fn rewrite_method(method: &mut TraitItemFn) -> Result<()> {
    let output = output_type(&method.sig);
    let mut sig = match &method.default {
        Some(block) => {
            let (sig, body) = rewrite(&method.sig, block)?;
            method.default = Some(body);
            sig
        }
        None => lazy_signature(&method.sig, &output),
    };
    sig.generics
        .make_where_clause()
        .predicates
        .push(parse_quote!(Self: ::core::marker::Sized));
    method.sig = sig;
    Ok(())
}

/// The declared output of a method (`()` when none).
fn output_type(sig: &Signature) -> Type {
    match &sig.output {
        ReturnType::Default => parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    }
}

/// Whether the trait's differentiable methods can go through a vtable
/// (see the module documentation).
fn can_be_object(definition: &ItemTrait) -> bool {
    definition.items.iter().all(|item| match item {
        TraitItem::Fn(method) => {
            !is_plain(&method.attrs)
                && method
                    .sig
                    .generics
                    .params
                    .iter()
                    .all(|p| matches!(p, GenericParam::Lifetime(_)))
                && matches!(
                    method.sig.inputs.first(),
                    Some(FnArg::Receiver(r)) if r.reference.is_some() && r.colon_token.is_none()
                )
                && !mentions_self_type(&method.sig)
        }
        _ => false,
    })
}

/// Whether `Self` appears in a signature's argument or output types.
fn mentions_self_type(sig: &Signature) -> bool {
    struct FindSelf(bool);
    impl Visit<'_> for FindSelf {
        fn visit_ident(&mut self, ident: &Ident) {
            self.0 |= ident == "Self";
        }
    }
    let mut finder = FindSelf(false);
    for input in sig.inputs.iter().skip(1) {
        if let FnArg::Typed(arg) = input {
            visit::visit_type(&mut finder, &arg.ty);
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        visit::visit_type(&mut finder, ty);
    }
    finder.0
}

/// What the trait-object support of one trait is made of.
struct ObjectSupport<'t> {
    definition: &'t ItemTrait,
    /// The object-safe companion trait's name.
    companion: Ident,
    /// Each differentiable method as the user wrote it.
    methods: &'t [Signature],
}

impl<'t> ObjectSupport<'t> {
    fn new(definition: &'t ItemTrait, methods: &'t [Signature]) -> Self {
        ObjectSupport {
            definition,
            companion: format_ident!("__CpsDyn{}", definition.ident),
            methods,
        }
    }

    /// The companion method's name for `method`.
    fn dyn_name(method: &Ident) -> Ident {
        format_ident!("__cps_dyn_{}", method)
    }

    /// A method's signature with its arguments named `__cps_a0`, … (the
    /// forwarding bodies need names; patterns may be anything), lazy.
    fn lazy_with_named_arguments(sig: &Signature) -> (Signature, Vec<Ident>) {
        let mut sig = lazy_signature(sig, &output_type(sig));
        let mut names = Vec::new();
        for (i, input) in sig.inputs.iter_mut().enumerate() {
            if let FnArg::Typed(arg) = input {
                let name = Ident::new(&format!("__cps_a{i}"), Span::mixed_site());
                *arg.pat = Pat::Ident(syn::PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: name.clone(),
                    subpat: None,
                });
                names.push(name);
            }
        }
        (sig, names)
    }

    /// The companion method of `sig`: same arguments, a boxed computation.
    fn boxed_signature(sig: &Signature) -> (Signature, Vec<Ident>) {
        let output = output_type(sig);
        let (mut boxed, names) = Self::lazy_with_named_arguments(sig);
        boxed.ident = Self::dyn_name(&sig.ident);
        boxed.output = parse_quote!(-> ::cps::BoxedComputation<'__cps, #output>);
        (boxed, names)
    }

    /// `pub trait __CpsDynLayer { fn __cps_dyn_forward(…) -> Boxed…; }`.
    fn companion_trait(&self) -> TokenStream {
        let vis = &self.definition.vis;
        let name = &self.companion;
        let generics = &self.definition.generics;
        let where_clause = &generics.where_clause;
        let methods = self.methods.iter().map(|sig| {
            let (boxed, _) = Self::boxed_signature(sig);
            quote!(#boxed;)
        });
        let doc = format!(
            "The object-safe side of [`{}`], made by `#[differentiable]`: \
             each method returns a boxed computation.",
            self.definition.ident
        );
        quote! {
            #[doc = #doc]
            #[doc(hidden)]
            #vis trait #name #generics #where_clause {
                #(#methods)*
            }
        }
    }

    /// Every implementor of the trait has the companion, by boxing.
    fn blanket_impl(&self) -> TokenStream {
        let name = &self.companion;
        let trait_name = &self.definition.ident;
        let mut generics = self.definition.generics.clone();
        let (_, trait_arguments, _) = self.definition.generics.split_for_impl();
        let trait_arguments = quote!(#trait_arguments);
        generics
            .params
            .push(parse_quote!(__CpsSelf: #trait_name #trait_arguments));
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let methods = self.methods.iter().map(|sig| {
            let (boxed, names) = Self::boxed_signature(sig);
            let method = &sig.ident;
            quote! {
                #boxed {
                    ::cps::Computation::boxed(
                        <Self as #trait_name #trait_arguments>::#method(self, #(#names),*)
                    )
                }
            }
        });
        quote! {
            impl #impl_generics #name #trait_arguments for __CpsSelf #where_clause {
                #(#methods)*
            }
        }
    }

    /// `impl Layer for Wrapper<dyn Layer + 'o>`: each method through the
    /// companion, on the object the wrapper holds.
    fn forwarding_impl(&self, wrapper: &syn::Path) -> TokenStream {
        let object = self.object_type();
        self.forwarding(quote!(#wrapper<#object>), true)
    }

    /// `impl Layer for &'o (dyn Layer + 'o)`, when no method takes
    /// `&mut self` (a shared reference cannot lend the object mutably).
    fn borrowed_impl(&self) -> TokenStream {
        let mutates = self.methods.iter().any(
            |sig| matches!(sig.inputs.first(), Some(FnArg::Receiver(r)) if r.mutability.is_some()),
        );
        if mutates {
            return TokenStream::new();
        }
        let object = self.object_type();
        self.forwarding(quote!(&'__cps_object #object), false)
    }

    /// `dyn Layer<…> + '__cps_object`.
    fn object_type(&self) -> TokenStream {
        let trait_name = &self.definition.ident;
        let (_, trait_arguments, _) = self.definition.generics.split_for_impl();
        quote!((dyn #trait_name #trait_arguments + '__cps_object))
    }

    /// The impl of the trait for `holder` (a box or a reference of the
    /// trait object), whose supertraits it has where the holder has them.
    fn forwarding(&self, holder: TokenStream, owned: bool) -> TokenStream {
        let trait_name = &self.definition.ident;
        let companion = &self.companion;
        let mut generics = self.definition.generics.clone();
        generics.params.insert(0, parse_quote!('__cps_object));
        let (_, trait_arguments, _) = self.definition.generics.split_for_impl();
        let holder_type: Type = parse_quote!(#holder);
        let where_clause = generics.make_where_clause();
        for bound in &self.definition.supertraits {
            if let TypeParamBound::Trait(_) = bound {
                where_clause
                    .predicates
                    .push(parse_quote!(#holder_type: #bound));
            }
        }
        let (impl_generics, _, where_clause) = generics.split_for_impl();
        let methods = self.methods.iter().map(|sig| {
            let (lazy, names) = Self::lazy_with_named_arguments(sig);
            let dyn_method = Self::dyn_name(&sig.ident);
            let mutable = matches!(
                sig.inputs.first(),
                Some(FnArg::Receiver(r)) if r.mutability.is_some()
            );
            let object = match (owned, mutable) {
                (true, true) => quote!(&mut **self),
                _ => quote!(&**self),
            };
            quote! {
                #lazy {
                    #companion::#dyn_method(#object, #(#names),*)
                }
            }
        });
        quote! {
            impl #impl_generics #trait_name #trait_arguments for #holder_type #where_clause {
                #(#methods)*
            }
        }
    }
}
