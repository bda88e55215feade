//! The MNIST CNN of Lantern's evaluation (Wang et al., NeurIPS 2018),
//! beside its PyTorch reference (`../shared/baselines/cnn_mnist_torch.py`):
//! the same network, data order, batches, initialisation scheme and plain
//! SGD, with the same flags and the same report lines.
//!
//! ```text
//! cargo run --release --example cnn_mnist                                 # the bundled subset: seconds
//! cargo run --release --example cnn_mnist -- --data ../shared/data/mnist  # all of MNIST
//! ```
//!
//! The bundled subset (`examples/cnn_mnist/data/`, see its `SOURCE.md`) is
//! MNIST's first 5,000 training and 1,000 test images. `--help` lists the
//! options. Started from the reference's own initial parameters (`--init`,
//! its `--save-init` file) and trained without dropout, the network's
//! per-batch losses are the reference's (`tests/cnn_mnist.rs`);
//! `bench/cnn_mnist.sh` times both on one thread.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod data;
mod model;
#[cfg(test)]
mod model_tests;

use std::path::PathBuf;
use std::time::Instant;

use common::command;
use common::training::{Training, require_data, step_seed};
use cps::prelude::*;
use data::Examples;
use model::Net;

/// The bundled subset of MNIST, for a run without `--data`.
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cnn_mnist/data");

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

/// Trains and tests as `options` say.
fn run(options: &cli::Options) -> Result<(), String> {
    let dir = options
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from(BUNDLED));
    let (train, test) = data::load(&dir, options.limit)?;
    require_data(train.len(), "training images", &dir.display().to_string())?;
    let mut net = Net::new(options.seed);
    // Our parameter names are PyTorch's: the reference's file loads as is.
    if let Some(file) = &options.training.init {
        cps::io::load_parameters(&mut net, file).map_err(|e| e.to_string())?;
    }
    let mut optimizer = Sgd::new(options.learning_rate);
    let (mut training, _) = Training::start(
        "MNIST CNN",
        "batches",
        &options.training,
        &mut net,
        &mut optimizer,
    )?;
    report!(
        "cps, one thread, {} training images, batch {} ({})",
        train.len(),
        options.batch,
        dir.display()
    );
    let batches = train.len().div_ceil(options.batch);
    training.reserve(batches * options.epochs);
    for epoch in training.epochs_done() + 1..=options.epochs {
        let bar = training.progress_bar(epoch, batches);
        let mut total = 0.0f64;
        let start = Instant::now();
        for (step, (from, to)) in train.batches(options.batch).enumerate() {
            let (images, labels) = train.batch(from, to);
            // Each step's masks come from its own seed, so that a resumed
            // run draws the same ones.
            let dropout = (!options.no_dropout).then(|| step_seed(options.seed, epoch, step));
            let loss = model::train_step(&mut net, &mut optimizer, &images, labels, dropout);
            total += f64::from(loss);
            training.record(loss);
            bar.inc(1);
        }
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        training.end_epoch(&net, &optimizer, Default::default())?;
        report!(
            "epoch {epoch}: mean loss {:.4}, {seconds:.2} s, {:.0} images/s",
            total / batches.max(1) as f64,
            train.len() as f64 / seconds
        );
        if !options.no_test {
            report!("test accuracy {:.2}%", 100.0 * accuracy(&net, &test));
        }
    }
    training.finish(&net, 50)
}

/// The fraction of `examples` the network classifies right, forward only,
/// in batches of 1,000.
fn accuracy(net: &Net, examples: &Examples) -> f64 {
    let correct: usize = examples
        .batches(1000)
        .map(|(from, to)| {
            let (images, labels) = examples.batch(from, to);
            let predicted = model::predict(net, &images);
            predicted.iter().zip(labels).filter(|(p, l)| p == l).count()
        })
        .sum();
    correct as f64 / examples.len().max(1) as f64
}
