//! Jacobian sensing (Choromanski and Sindhwani, "On Blackbox
//! Backpropagation and Jacobian Sensing", NeurIPS 2017) on `cps`'s
//! black-box operation: Jacobians and vector-Jacobian products of opaque
//! functions from a few calls on perturbed inputs, exploiting sparsity by
//! graph colouring and staying exact under corrupted calls by L1 (linear
//! programming) decoding. Four experiments, each printed as a Markdown
//! table:
//!
//! 1. exact recovery of a tridiagonal Jacobian of R¹⁰⁰ (`exact.rs`);
//! 2. `Jᵀv` of a dense map of R⁶⁴ with a fraction of the calls returning
//!    garbage, L1 beside least squares (`robust.rs`);
//! 3. training an MLP through a black-box middle layer, beside exact
//!    gradients, with and without corrupted calls (`training.rs`);
//! 4. linearising a cart-pole's step (`cartpole.rs`).
//!
//! ```text
//! cargo run --release --example jacobian_sensing                                  # generated data: seconds
//! cargo run --release --example jacobian_sensing -- --data ../shared/data/digits  # scikit-learn's digits
//! ```

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cartpole;
mod cli;
mod comparison;
mod data;
mod exact;
mod robust;
mod table;
mod training;

use common::command;

fn main() {
    let options = command::options_or_exit(cli::parse, cli::USAGE);
    command::exit_on_error(run(&options));
}

/// The four experiments, as `options` say.
fn run(options: &cli::Options) -> Result<(), String> {
    let data = match &options.data {
        Some(path) => data::digits(path)?,
        None => data::generated(600, 400, options.seed),
    };
    let epochs = options
        .epochs
        .unwrap_or(if options.data.is_some() { 20 } else { 15 });
    exact::run(options.seed);
    robust::run(options.trials, options.seed);
    training::run(&data, epochs, options.seed);
    cartpole::run(options.seed);
    Ok(())
}
