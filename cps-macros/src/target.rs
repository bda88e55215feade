//! What `#[differentiable]` is attached to, checked before any rewrite.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;
use syn::{
    Error, FnArg, ImplItem, Item, ItemFn, ItemImpl, ItemTrait, Result, ReturnType, Signature,
    TraitItem, Type,
};

/// The item under the attribute.
pub enum Target {
    /// A free function, or one method of an impl block.
    Function(ItemFn),
    /// An impl block, inherent or of a differentiable trait: every method
    /// not marked `#[plain]` is rewritten.
    Impl(ItemImpl),
    /// A trait definition: every method not marked `#[plain]` is
    /// differentiable (see `tests/programs/traits.rs`).
    Trait(ItemTrait),
}

/// Parses the attribute's arguments and item.
pub fn parse(attr: TokenStream, item: TokenStream) -> Result<Target> {
    if !attr.is_empty() {
        return Err(Error::new_spanned(
            attr,
            "#[differentiable] takes no arguments; write `#[differentiable]`",
        ));
    }
    let item: Item = syn::parse2(item)?;
    match item {
        Item::Fn(function) => {
            check_signature(&function.sig)?;
            Ok(Target::Function(function))
        }
        Item::Impl(block) => {
            for item in &block.items {
                if let ImplItem::Fn(method) = item
                    && !is_plain(&method.attrs)
                {
                    check_signature(&method.sig)?;
                }
            }
            Ok(Target::Impl(block))
        }
        Item::Trait(definition) => {
            for item in &definition.items {
                if let TraitItem::Fn(method) = item
                    && !is_plain(&method.attrs)
                {
                    check_signature(&method.sig)?;
                }
            }
            Ok(Target::Trait(definition))
        }
        other => Err(Error::new(
            other.span(),
            "#[differentiable] goes on a function, a method, an `impl` block or a trait",
        )),
    }
}

/// Whether a method in an impl block opted out with `#[plain]`.
pub fn is_plain(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| a.path().is_ident("plain"))
}

fn check_signature(sig: &Signature) -> Result<()> {
    if let Some(token) = &sig.asyncness {
        return Err(Error::new_spanned(
            token,
            "#[differentiable] cannot rewrite an `async fn`: its continuation would outlive \
             the stack frame that holds the backward pass; remove `async`",
        ));
    }
    if let Some(token) = &sig.unsafety {
        return Err(Error::new_spanned(
            token,
            "#[differentiable] does not rewrite `unsafe fn`; keep the unsafe code in a plain \
             function and call it from a safe differentiable one",
        ));
    }
    if let Some(token) = &sig.constness {
        return Err(Error::new_spanned(
            token,
            "#[differentiable] cannot rewrite a `const fn`: differentiable code runs at run \
             time; remove `const`",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(Error::new_spanned(
            abi,
            "#[differentiable] cannot rewrite an `extern` function; remove the ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(Error::new_spanned(
            variadic,
            "#[differentiable] cannot rewrite a variadic function",
        ));
    }
    for input in &sig.inputs {
        if let FnArg::Typed(arg) = input
            && let Type::ImplTrait(_) = &*arg.ty
        {
            return Err(Error::new_spanned(
                &arg.ty,
                "#[differentiable] does not accept `impl Trait` arguments; use a named generic \
                 parameter (`fn f<T: Trait>(x: T)`)",
            ));
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        check_output(ty)?;
    }
    Ok(())
}

fn check_output(ty: &Type) -> Result<()> {
    match ty {
        Type::ImplTrait(_) => Err(Error::new_spanned(
            ty,
            "a differentiable function cannot return `impl Trait`: it already returns a lazy \
             computation of its output; return a concrete type such as `Var`",
        )),
        Type::Reference(reference) => Err(Error::new_spanned(
            reference,
            "a differentiable function must return an owned value (its result is handed to a \
             continuation); return `Var` rather than `&Var`",
        )),
        Type::Tuple(tuple) => tuple.elems.iter().try_for_each(check_output),
        _ => Ok(()),
    }
}
