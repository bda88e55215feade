//! The experiments of "Consequentialism weight updates over mini-batches"
//! (Paeedeh and Ghiasi-Shirazi): an MLP trained with SGD, momentum,
//! Nesterov, RMSProp and Adam, each plain and wrapped in
//! [`cps::optim::Consequential`], whose update of a dense layer moves
//! each sample's output by its own gradient without the other samples'
//! interference.
//!
//! ```text
//! cargo run --release --example consequential                           # one run, bundled MNIST subset
//! cargo run --release --example consequential -- --optimizer adam --consequential
//! cargo run --release --example consequential -- --digits ../shared/data/digits --grid --out DIR
//! cargo run --release --example consequential -- --digits ../shared/data/digits --grid \
//!     --optimizers sgd --lrs 1,3,10 --out DIR                            # more learning rates
//! cargo run --release --example consequential -- --mnist ../shared/data/mnist --grid \
//!     --epochs 5 --seeds 1 --out DIR1                                    # every learning rate, short
//! cargo run --release --example consequential -- --mnist ../shared/data/mnist --grid \
//!     --best-from DIR1/results.tsv --out DIR2                            # the best ones, 20 epochs, 3 seeds
//! ```
//!
//! MNIST trains a 784-100-10 network, the digits a 64-32-10 one (ReLU,
//! mean cross-entropy, PyTorch's initialisation), pixels scaled to 0..=1.
//! The consequentialist runs use the wrapper's default damping
//! `ε = 1e-3·tr(A·Aᵀ)/B` (`ε > 0`), both layers registered with their
//! biases. `--grid` appends every run to `DIR/results.tsv` as it ends and
//! writes `DIR/results.md` (the tables) and `DIR/*.svg` (learning curves
//! per optimizer, and final loss against learning rate per batch size);
//! `--tables-from` remakes those from results files.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod data;
mod grid;
mod model;
mod optimizers;
mod plots;
mod run;
mod table;

#[cfg(test)]
mod tests;

use common::command;
use std::path::PathBuf;

use data::DataSet;
use optimizers::Variant;

/// The bundled subset of MNIST, for a run without `--mnist`.
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cnn_mnist/data");

fn main() {
    let options = command::options_or_exit(cli::parse, cli::USAGE);
    let done = if !options.tables_from.is_empty() {
        grid::tables_only(&options.tables_from, &options.out)
    } else {
        load(&options.data).and_then(|data| {
            if options.grid {
                grid::run(&data, &options)
            } else {
                one_run(&data, &options)
            }
        })
    };
    if let Err(message) = done {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

/// The data set `data` names, with at least one training example.
fn load(data: &cli::Data) -> Result<DataSet, String> {
    let set = match data {
        cli::Data::Mnist(dir) => {
            data::mnist(&dir.clone().unwrap_or_else(|| PathBuf::from(BUNDLED)))?
        }
        cli::Data::Digits(path) => data::digits(path)?,
    };
    common::training::require_data(set.train.len(), "training examples", &set.source)?;
    Ok(set)
}

/// The hidden width: `--hidden`, else 100 on MNIST and 32 on digits.
fn hidden(data: &DataSet, options: &cli::Options) -> usize {
    options
        .hidden
        .unwrap_or(if data.name == "digits" { 32 } else { 100 })
}

/// Trains the one configuration of `options` and prints what it measured.
fn one_run(data: &DataSet, options: &cli::Options) -> Result<(), String> {
    let kind = options.kinds[0];
    let config = run::Config {
        batch: options.batches[0],
        kind,
        variant: if options.consequential {
            Variant::Consequential
        } else {
            Variant::Plain
        },
        lr: options.lr.unwrap_or(kind.learning_rates()[1]),
        seed: options.seed,
        epochs: options.epochs,
    };
    let hidden = hidden(data, options);
    report!(
        "{} ({}): {}-{hidden}-10, {} training / {} test examples; {} {}, lr {}, batch {}, seed {}",
        data.name,
        data.source,
        data.inputs(),
        data.train.len(),
        data.test.len(),
        config.variant.name(),
        kind.name(),
        config.lr,
        config.batch,
        config.seed
    );
    let outcome = run::train(data, hidden, &config);
    for (epoch, loss) in &outcome.train_loss {
        report!("after epoch {epoch:>2}: training loss {loss:.4}");
    }
    if let Some(epoch) = outcome.diverged {
        report!("diverged in epoch {epoch} (a batch loss was not finite)");
    }
    report!(
        "test accuracy {:.2}%; training {:.1} s",
        100.0 * outcome.test_accuracy,
        outcome.seconds
    );
    Ok(())
}
