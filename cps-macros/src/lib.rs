//! The `#[differentiable]` attribute of [`cps`](https://docs.rs/cps).
//!
//! It rewrites a direct-style Rust function into continuation-passing
//! style: every call, method call and arithmetic operator becomes a *bind
//! point* whose value is handed to the rest of the function (its
//! continuation) as a closure. Whether a bind point is differentiable is
//! decided by its type, not by this macro: a `cps::Computation` (the result
//! of an operation on `Var`s or of another differentiable function) runs
//! the continuation and back-propagates when it returns; any other value is
//! passed on unchanged. The phases live in separate modules:
//!
//! - `target`: parse what the attribute is on (a function, a method, an
//!   impl block or a trait) and reject what cannot be rewritten;
//! - `analyse`: syntactic facts about expressions (does it need
//!   rewriting, which variables does it mention, which does it bind);
//! - `lower`: the rewrite of statements, expressions and control flow;
//! - `emit`: the public wrapper returning a lazy computation;
//! - `traits`: a trait's methods, and the way trait objects call them;
//! - `derive`: the expansion of `#[derive(Parameters)]`.

mod analyse;
mod derive;
mod emit;
mod lower;
mod target;
mod traits;

use proc_macro::TokenStream;

/// Rewrites a function, a method, every method of an `impl` block, or
/// every method of a trait (and of its impls) into continuation-passing
/// style, so that it is differentiable.
///
/// Calling the function then returns a lazy `cps::Computation`:
/// `.backward()` runs it and back-propagates from its scalar result,
/// `.eval()` runs it forward only, and inside another `#[differentiable]`
/// function it is used like any value. See the `cps` crate documentation
/// for what the body may contain and what the rewrite produces.
#[proc_macro_attribute]
pub fn differentiable(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit::differentiable(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Implements `cps::Parameters` for a struct by visiting its fields in
/// declaration order; every field must implement `Parameters` itself,
/// except fields marked `#[parameters(skip)]`.
#[proc_macro_derive(Parameters, attributes(parameters))]
pub fn derive_parameters(item: TokenStream) -> TokenStream {
    derive::parameters(item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

#[cfg(test)]
mod snapshot;
