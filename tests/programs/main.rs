//! Differentiable programs written with `#[differentiable]`: what the macro
//! accepts and means, checked against finite differences and against the
//! same Rust without the macro. One test binary, a module per feature.

#[path = "../common/mod.rs"]
mod common;

mod custom_in_macro;
mod deep_stack;
mod derive_parameters;
mod hvp;
mod iterators;
mod join;
mod macro_basics;
mod macro_control_flow;
mod macro_more;
mod macro_plain_meaning;
mod new_ops_in_models;
mod question_mark;
mod readme_sample;
mod smuggled_values;
mod stack_segments;
mod traits;
