//! Fast second-order stochastic backpropagation for variational inference
//! (Fan, Wang, Beck, Kwok, Heller, NeurIPS 2015), reproduced on
//! Bayesian logistic regression: a Gaussian posterior `N(μ, RRᵀ)` over the
//! weights, fitted by Hessian-free optimization of the reparameterised
//! ELBO (HFSGVI, whose Hessian-vector products come from `cps`'s
//! forward-over-reverse `hvp`) beside Adam and Adagrad on the same
//! Monte Carlo gradients.
//!
//! ```text
//! cargo run --release --example bayes_logreg              # both families, short first-order runs
//! cargo run --release --example bayes_logreg -- --long    # the experiment of docs/papers.md
//! ```
//!
//! The data is the breast-cancer table bundled in
//! `examples/bayes_logreg/data` (see its `SOURCE.md`), split 455/114 by a
//! fixed seed and standardised with the training rows' statistics.
//! Every arm is judged after every iteration by the ELBO on the training
//! set over one fixed set of 1,000 draws; ELBO* is the best any run
//! reaches, and the table gives what each arm spends to come within one
//! nat of it. `--help` lists the options.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod data;
mod experiment;
mod hfsgvi;
mod model;
#[cfg(test)]
mod model_tests;
mod monitor;
mod plot;
mod sgvi;
mod table;
mod trace;

use common::command;
use std::path::PathBuf;

use experiment::Plan;

/// The bundled copy of the data, for a run without `--data`.
const BUNDLED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/bayes_logreg/data/breast_cancer.csv"
);

/// The seed of the train/test split: fixed, so that every run is tested
/// on the same rows.
const SPLIT_SEED: u64 = 0;

fn main() {
    let options = command::options_or_exit(cli::parse, cli::USAGE);
    command::exit_on_error(run(&options));
}

fn run(options: &cli::Options) -> Result<(), String> {
    if let Some(plot) = &options.plot {
        common::outputs::check_writable(&[("--plot", plot)])?;
    }
    let path = options
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUNDLED));
    let table = data::read_csv(&path)?;
    // Four fifths for training: 455 of the 569 rows.
    let train = table.labels.len() * 4 / 5;
    let split = data::split(&table, train, SPLIT_SEED)?;
    report!(
        "{}: {} training and {} test rows, {} weights (intercept and {} features), prior N(0, I)",
        path.display(),
        split.train_y.len(),
        split.test_y.len(),
        split.train_x.ncols(),
        split.train_x.ncols() - 1
    );
    let plan = Plan {
        samples: options.samples,
        hf_iterations: options.hf_iterations,
        iterations: options.iterations,
        eval_draws: options.eval_draws,
        seed: options.seed,
    };
    report!(
        "S = {} draws per iteration for every arm; HFSGVI {} iterations, each first-order run {}; \
         ELBO on {} fixed draws",
        plan.samples,
        plan.hf_iterations,
        plan.iterations,
        plan.eval_draws
    );
    let mut comparisons = Vec::new();
    for &family in &options.families {
        report!("\n{} covariance", family.name());
        let comparison = experiment::compare(family, &split, plan, |trace| {
            report!(
                "  {:<13} {:>6}  best ELBO {:>9.3} after {} iterations, {:.1} s (monitor excluded)",
                trace.arm,
                trace.learning_rate_label(),
                trace.best(),
                trace.iterations(),
                trace.total_seconds()
            );
        });
        comparisons.push(comparison);
    }
    for comparison in &comparisons {
        table::print(comparison, &split);
    }
    if let Some(plot) = &options.plot {
        let rows: Vec<_> = comparisons.iter().map(|c| c.rows(&split)).collect();
        let panels: Vec<_> = comparisons
            .iter()
            .zip(&rows)
            .map(|(c, rows)| plot::Panel {
                family: c.family.name(),
                best: c.best,
                traces: rows.iter().map(|r| r.trace).collect(),
            })
            .collect();
        plot::elbo_curves(&panels, plot)?;
        report!("\nELBO curves: {}", plot.display());
    }
    Ok(())
}
