//! "Backpropagation for Energy-Efficient Neuromorphic Computing" (Esser,
//! Appuswamy, Merolla, Arthur and Modha, NeurIPS 2015): a network of
//! TrueNorth-like cores trained with spikes and binary synapses taken as
//! probabilities, then deployed as sampled binary networks with integer
//! arithmetic, alone and in ensembles.
//!
//! ```text
//! cargo run --release --example neuromorphic                                             # bundled MNIST subset: seconds
//! cargo run --release --example neuromorphic -- --mnist ../shared/data/mnist             # 5 cores
//! cargo run --release --example neuromorphic -- --mnist ../shared/data/mnist --net large # 32 cores
//! cargo run --release --example neuromorphic -- --digits ../shared/data/digits
//! ```
//!
//! - `cores.rs`: the cores (blocks of at most 256 inputs and 256 neurons),
//!   the small and large networks, the output neurons' classes.
//! - `model.rs`: the probabilistic network that is trained (`μ`, `σ²`,
//!   `Φ(μ/σ)`, the loss, the projection after each step).
//! - `deploy.rs`: the binary copies sampled from it, run with integers.
//! - `evaluate.rs`: the report.
//!
//! Choices where the paper leaves room (or where we could not check it):
//! each synapse's sign is fixed at random (±1, even odds) when the network
//! is made; a pixel in `0..=1` is its input's spike probability in
//! training, and a Bernoulli draw of it in deployment; the loss is the
//! cross-entropy of the classes' mean output firing probabilities times
//! `--scale`; probabilities are projected to `[0, 1]` and biases to
//! `[−255, 255]` after each Adam step, whose rate decays on half a cosine.
//! `--help` lists the options.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod cores;
mod data;
mod deploy;
mod evaluate;
mod model;

use std::path::PathBuf;
use std::time::Instant;

use common::command;
use common::training::{Training, require_data, step_seed};
use cps::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use cli::{Dataset, Options};
use model::Net;

/// The bundled subset of MNIST (the `cnn_mnist` example's), for a run
/// without `--mnist` or `--digits`.
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cnn_mnist/data");

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

/// Trains, deploys and tests as `options` say.
fn run(options: &Options) -> Result<(), String> {
    let (source, (train, test)) = match &options.data {
        Dataset::Mnist(dir) => {
            let dir = dir.clone().unwrap_or_else(|| PathBuf::from(BUNDLED));
            (dir.display().to_string(), data::mnist(&dir, options.limit)?)
        }
        Dataset::Digits(path) => (
            path.display().to_string(),
            data::digits(path, options.limit)?,
        ),
    };
    require_data(train.len(), "training images", &source)?;
    let architecture = options.architecture();
    let mut net = Net::new(&architecture, options.seed)?;
    let mut optimizer = Adam::new(options.learning_rate);
    let (mut training, _) = Training::start(
        "probabilistic TrueNorth network",
        "batches",
        &options.training,
        &mut net,
        &mut optimizer,
    )?;
    report!(
        "{} training and {} test images ({source}); {}",
        train.len(),
        test.len(),
        evaluate::describe(&net)
    );
    let batches = train.len().div_ceil(options.batch);
    let total_steps = batches * options.epochs;
    training.reserve(batches * options.epochs);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut training_seconds = 0.0;
    for epoch in training.epochs_done() + 1..=options.epochs {
        order.shuffle(&mut StdRng::seed_from_u64(step_seed(
            options.seed,
            epoch,
            0,
        )));
        let bar = training.progress_bar(epoch, batches);
        let mut total = 0.0f64;
        let start = Instant::now();
        for (step, indices) in order.chunks(options.batch).enumerate() {
            let done = (epoch - 1) * batches + step;
            optimizer.set_learning_rate(cosine(options.learning_rate, done, total_steps));
            let (images, labels) = train.batch(indices);
            let loss = model::train_step(&mut net, &mut optimizer, &images, &labels, options.scale);
            total += f64::from(loss);
            training.record(loss);
            bar.inc(1);
        }
        let seconds = start.elapsed().as_secs_f64();
        training_seconds += seconds;
        bar.finish_and_clear();
        training.end_epoch(&net, &optimizer, Default::default())?;
        report!(
            "epoch {epoch}: mean loss {:.4}, {seconds:.1} s; expected network: test accuracy {:.2}%",
            total / batches as f64,
            100.0 * evaluate::expected_accuracy(&net, &test)
        );
    }
    if training_seconds > 0.0 {
        report!("training: {training_seconds:.0} s");
    }
    evaluate::report(&net, &test, options.copies, options.seed);
    training.finish(&net, batches.clamp(1, 50))
}

/// The learning rate after `done` of `total` steps: `lr` decayed to 0 on
/// half a cosine.
fn cosine(lr: f32, done: usize, total: usize) -> f32 {
    let progress = done as f64 / total.max(1) as f64;
    (f64::from(lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
}
