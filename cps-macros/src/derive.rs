//! `#[derive(Parameters)]`: visit a struct's fields in declaration order.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Data, DeriveInput, Error, Fields, Result};

/// The expansion of `#[derive(Parameters)]`.
pub fn parameters(item: TokenStream) -> Result<TokenStream> {
    let input: DeriveInput = syn::parse2(item)?;
    let Data::Struct(data) = &input.data else {
        return Err(Error::new_spanned(
            &input.ident,
            "#[derive(Parameters)] supports structs; implement `cps::Parameters` by hand for enums",
        ));
    };
    let mut visits = Vec::new();
    let mut visits_mut = Vec::new();
    for (index, field) in data.fields.iter().enumerate() {
        if skipped(field)? {
            continue;
        }
        let (member, name) = match &field.ident {
            Some(ident) => (quote!(#ident), ident.to_string()),
            None => {
                let index = syn::Index::from(index);
                (quote!(#index), index.index.to_string())
            }
        };
        visits.push(quote! {
            ::cps::Parameters::visit(&self.#member, &mut |inner: &str, p| f(&::cps::__private::join_name(#name, inner), p));
        });
        visits_mut.push(quote! {
            ::cps::Parameters::visit_mut(&mut self.#member, &mut |inner: &str, p| f(&::cps::__private::join_name(#name, inner), p));
        });
    }
    if matches!(data.fields, Fields::Unit) {
        visits.clear();
    }
    let ident = &input.ident;
    let mut generics = input.generics.clone();
    let element: syn::Type = syn::parse_quote!(__CpsElement);
    generics
        .params
        .push(syn::parse_quote!(__CpsElement: ::cps::Element));
    let (impl_generics, _, _) = generics.split_for_impl();
    let (_, type_generics, where_clause) = input.generics.split_for_impl();
    let mut where_clause = where_clause
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(where));
    for field in data.fields.iter() {
        if !skipped(field)? {
            let ty = &field.ty;
            where_clause
                .predicates
                .push(syn::parse_quote!(#ty: ::cps::Parameters<#element>));
        }
    }
    Ok(quote! {
        impl #impl_generics ::cps::Parameters<#element> for #ident #type_generics #where_clause {
            fn visit(&self, f: &mut dyn FnMut(&str, &::cps::Param<#element>)) {
                #(#visits)*
            }
            fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut ::cps::Param<#element>)) {
                #(#visits_mut)*
            }
        }
    })
}

fn skipped(field: &syn::Field) -> Result<bool> {
    let mut skip = false;
    for attr in &field.attrs {
        if attr.path().is_ident("parameters") {
            attr.parse_nested_meta(|meta| {
                if meta.path.is_ident("skip") {
                    skip = true;
                    Ok(())
                } else {
                    Err(meta.error("expected `#[parameters(skip)]`"))
                }
            })?;
        }
    }
    Ok(skip)
}
