//! HM2-BP: "Hybrid Macro/Micro Level Backpropagation for Training Deep
//! Spiking Neural Networks" (Jin, Zhang and Li, NeurIPS 2018), on a CPU.
//! Spiking layers of leaky integrate-and-fire neurons are custom
//! operations: the forward pass simulates the spikes; the backward pass
//! applies the S-PSP rule to the firing counts' gradients and hands the
//! input counts' gradients on through the ordinary continuation, so
//! spiking layers chain with each other and with ordinary operations (the
//! loss).
//!
//! ```text
//! cargo run --release --example spiking                                   # bundled MNIST subset, 784-800-10
//! cargo run --release --example spiking -- --digits ../shared/data/digits # 64-100-10
//! cargo run --release --example spiking -- --mnist ../shared/data/mnist   # all of MNIST
//! ```
//!
//! `neuron.rs` holds the neuron, its simulation and the S-PSP; `layer.rs`
//! the custom operation and its backward rule (with the formulas);
//! `model.rs` the network and the loss; `data.rs` the rate coding.
//!
//! # Constants
//!
//! | what | value |
//! | --- | --- |
//! | tick | 1 ms; T = `--ticks` (default 100) |
//! | τm, τs | 64 ms, 8 ms (the reference code's MNIST settings) |
//! | threshold ν | 20 in hidden layers, 8 in the output layer (likewise) |
//! | refractory period | 2 ticks held at 0 after a spike (likewise) |
//! | input coding | Bernoulli: P(spike per tick) = intensity × `--rate` (0.5) |
//! | initial weights | uniform in ±1 (the reference's `initW = 1`) |
//! | loss | ½ Σ (o − y)² over the output counts, errors within the margin dropped, batch mean |
//! | targets | right class T/5, others T/40, margin T/40 (the reference: 35, 5, 5 at T = 400) |
//! | optimizer | Adam, lr `--lr` (0.005) annealed along half a cosine over the epochs, batches of `--batch` (16) |
//!
//! # What differs from the paper and its code
//!
//! - Only the paper's abstract and introduction (the loss
//!   `E = ½ ‖o − y‖²` on firing counts) were at hand; the S-PSP, the count
//!   approximation and the backward rule follow the issue's statement of
//!   them and the reference code (`layer.rs` states each approximation).
//!   Our S-PSP is exact for our discrete neuron (`neuron.rs`); the
//!   reference's additionally delays each input spike by the refractory
//!   period.
//! - The factor `1 + ρ_i` of the neuron's own resets multiplies the input
//!   counts' gradients too (the same implicit derivative); the reference
//!   applies it to the weights' gradients only.
//! - No lateral inhibition among the output neurons, no weight
//!   regularisation or weight limit, no bias, and minibatches instead of
//!   single samples (the reference's `e/a_j` ratio needs batch 1 there).
//! - A silent neuron gets its gradient from the tick its membrane came
//!   closest to the threshold (the reference inserts evenly spaced spikes
//!   into a silent right-class output neuron's train, and sets a silent
//!   hidden neuron's S-PSPs to 0.1).
//! - Shorter spike trains: T = 100 or 200 ticks against the reference's
//!   400, with targets scaled to match.
//! - One thread; the simulation is event-driven over the input spikes, and
//!   the S-PSPs come from one table of unreset PSPs per sample.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod data;
mod layer;
mod model;
mod neuron;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;

use common::command;
use common::training::{Training, require_data, step_seed};
use cps::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use cli::{Options, Source};
use data::{DataSet, Examples};
use layer::{ResetTerm, Spikes};
use model::{Net, Targets};
use neuron::Neuron;

/// The bundled subset of MNIST (the `cnn_mnist` example's).
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cnn_mnist/data");

/// Hidden neurons.
const HIDDEN: Neuron = Neuron {
    tau_m: 64.0,
    tau_s: 8.0,
    threshold: 20.0,
    refractory: 2,
};

/// Output neurons.
const OUTPUT: Neuron = Neuron {
    threshold: 8.0,
    ..HIDDEN
};

/// The initial weights' bound.
const INIT: f32 = 1.0;

/// The seed of the test set's spike draws: the same trains every epoch.
const TEST_SEED: u64 = 0x5eed;

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

fn run(options: &Options) -> Result<(), String> {
    let mut data = match &options.source {
        Source::Bundled => data::mnist(&PathBuf::from(BUNDLED))?,
        Source::Mnist(dir) => data::mnist(dir)?,
        Source::Digits(path) => data::digits(path)?,
    };
    if let Some(n) = options.limit {
        data.train.truncate(n);
    }
    if let Some(n) = options.test_limit {
        data.test.truncate(n);
    }
    require_data(data.train.len(), "training images", &data.name)?;
    let ticks = options.ticks as f32;
    let targets = Targets {
        desired: options.desired.unwrap_or((ticks / 5.0).round()),
        undesired: options.undesired.unwrap_or((ticks / 40.0).round()),
        margin: options.margin.unwrap_or((ticks / 40.0).round()),
    };
    let mut sizes = vec![data.train.images.ncols()];
    sizes.extend(&options.hidden);
    sizes.push(data.classes);
    let mut net = Net::new(&sizes, HIDDEN, OUTPUT, INIT, options.seed);
    if options.no_reset_term {
        net.reset = ResetTerm::Off;
    }
    let shape: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    report!(
        "{}: {} training images, {} test; network {}, T = {} ticks, rate {}, targets {}/{} (margin {})",
        data.name,
        data.train.len(),
        data.test.len(),
        shape.join("-"),
        options.ticks,
        options.rate,
        targets.desired,
        targets.undesired,
        targets.margin
    );
    let mut optimizer = Adam::new(options.learning_rate);
    let (mut training, _) = Training::start(
        "HM2-BP SNN",
        "batches",
        &options.training,
        &mut net,
        &mut optimizer,
    )?;
    let images = data.train.len();
    let batches = images.div_ceil(options.batch);
    training.reserve(batches * options.epochs);
    for epoch in training.epochs_done() + 1..=options.epochs {
        let bar = training.progress_bar(epoch, batches);
        optimizer.set_learning_rate(cosine(options.learning_rate, epoch, options.epochs));
        let mut order: Vec<usize> = (0..images).collect();
        order.shuffle(&mut StdRng::seed_from_u64(step_seed(
            options.seed,
            epoch,
            0,
        )));
        let start = Instant::now();
        let (mut total, mut correct) = (0.0f64, 0usize);
        for (step, indices) in order.chunks(options.batch).enumerate() {
            let seed = step_seed(options.seed, epoch, step + 1);
            let input =
                Spikes::input(
                    data.train
                        .encode(indices, options.ticks, options.rate, seed),
                );
            let labels: Vec<usize> = indices.iter().map(|&i| data.train.labels[i]).collect();
            let predicted = RefCell::new(Vec::new());
            let loss = model::batch_loss(&net, &input, &labels, &targets, &predicted).backward();
            optimizer.step(&mut net);
            correct += predicted
                .borrow()
                .iter()
                .zip(&labels)
                .filter(|(p, l)| p == l)
                .count();
            total += f64::from(loss) * indices.len() as f64;
            training.record(loss);
            bar.set_message(format!("{loss:.2}"));
            bar.inc(1);
        }
        let seconds = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        training.end_epoch(&net, &optimizer, Default::default())?;
        let test_start = Instant::now();
        let accuracy = evaluate(&net, &data, options);
        report!(
            "epoch {epoch:>2}: loss {:.3}, training accuracy {:.2}%, test accuracy {:.2}%; training {seconds:.1} s ({:.0} images/s), test {:.1} s",
            total / images as f64,
            100.0 * correct as f64 / images as f64,
            100.0 * accuracy,
            images as f64 / seconds,
            test_start.elapsed().as_secs_f64()
        );
    }
    training.finish(&net, 50)
}

/// The learning rate of `epoch` (from 1) of `epochs`: `lr` annealed along
/// half a cosine.
fn cosine(lr: f32, epoch: usize, epochs: usize) -> f32 {
    let done = (epoch - 1) as f32 / epochs as f32;
    lr * 0.5 * (1.0 + (std::f32::consts::PI * done).cos())
}

/// The fraction of the test set classified right, forward only.
fn evaluate(net: &Net, data: &DataSet, options: &Options) -> f64 {
    let test: &Examples = &data.test;
    let all: Vec<usize> = (0..test.len()).collect();
    let mut correct = 0;
    for (step, indices) in all.chunks(250).enumerate() {
        let input = Spikes::input(test.encode(
            indices,
            options.ticks,
            options.rate,
            TEST_SEED + step as u64,
        ));
        let predicted = model::predict(net, &input);
        correct += predicted
            .iter()
            .zip(indices)
            .filter(|&(p, &i)| *p == test.labels[i])
            .count();
    }
    correct as f64 / test.len().max(1) as f64
}
