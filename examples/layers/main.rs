//! A model built from parts, the way burn or candle users write one: a
//! `#[differentiable] trait Layer` with `Parameters` as a supertrait; the
//! layers `Conv2d`, `Relu`, `MaxPool2d`, `Flatten`, `Linear` and `Dropout`
//! behind it; and a `Sequential` of `Box<dyn Layer>` whose forward pass is
//! a differentiable loop over its layers (`model.rs`). A small CNN is
//! trained on minibatches with Adam and the mean cross-entropy, and
//! evaluated forward only (`.eval()`, dropout off).
//!
//! ```text
//! cargo run --release --example layers                                  # generated 8x8 shapes: seconds
//! cargo run --release --example layers -- --data ../shared/data/digits  # scikit-learn's digits
//! ```
//!
//! The digits (1797 handwritten 8×8 images) are split 1437/360 by a fixed
//! seed, whatever `--seed` is, so that runs with different seeds are
//! measured on the same test set. `--help` lists the options.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod model;
mod shapes;

use std::path::Path;
use std::time::Instant;

use common::command;
use common::training::{Training, require_data, step_seed};
use cps::data::{Digits, read_digits};
use cps::prelude::*;
use model::{Layer, Mode, Sequential};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// The seed of the digits' train/test split: fixed, so that every run is
/// tested on the same 360 images.
const SPLIT_SEED: u64 = 0;

/// The probability with which dropout zeroes a hidden unit.
const DROPOUT: f32 = 0.25;

/// Images (one per row, pixels in 0..=1, row-major) and their labels.
struct Examples {
    images: Array2<f32>,
    labels: Vec<usize>,
}

impl Examples {
    /// The examples at `indices` as a batch of one-channel images.
    fn batch(&self, indices: &[usize], side: usize) -> (Var, Vec<usize>) {
        let images = self
            .images
            .select(Axis(0), indices)
            .into_shape_with_order((indices.len(), 1, side, side))
            .expect("rows of side² pixels");
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        (Var::constant(images), labels)
    }
}

/// What to train on.
struct DataSet {
    name: String,
    side: usize,
    classes: usize,
    default_epochs: usize,
    train: Examples,
    test: Examples,
}

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

fn run(options: &cli::Options) -> Result<(), String> {
    let data = match &options.data {
        Some(path) => digits(path)?,
        None => generated_shapes(),
    };
    require_data(data.train.labels.len(), "images", &data.name)?;
    let epochs = options.epochs.unwrap_or(data.default_epochs);
    let mut model = model::cnn(data.side, data.classes, DROPOUT, options.seed);
    report!(
        "{}: {} training images, {} test, {} classes; {} parameters",
        data.name,
        data.train.labels.len(),
        data.test.labels.len(),
        data.classes,
        model.parameter_count()
    );
    let mut optimizer = Adam::new(options.learning_rate);
    let (mut training, _) = Training::start(
        "CNN",
        "batches",
        &options.training,
        &mut model,
        &mut optimizer,
    )?;
    let images = data.train.labels.len();
    let mut accuracy = evaluate(&model, &data.test, data.side);
    let mut seconds = 0.0;
    let first_epoch = training.epochs_done() + 1;
    for epoch in first_epoch..=epochs {
        let batches = images.div_ceil(options.batch);
        let bar = training.progress_bar(epoch, batches);
        optimizer.set_learning_rate(cosine(options.learning_rate, epoch, epochs));
        // The order and the dropout masks of an epoch come from the seed
        // and the epoch alone, so that a resumed run draws the same.
        let mut order: Vec<usize> = (0..images).collect();
        order.shuffle(&mut StdRng::seed_from_u64(step_seed(
            options.seed,
            epoch,
            0,
        )));
        let start = Instant::now();
        let mut total = 0.0f64;
        for (step, indices) in order.chunks(options.batch).enumerate() {
            let (batch, labels) = data.train.batch(indices, data.side);
            let seed = step_seed(options.seed, epoch, step + 1);
            let loss = model::batch_loss(&model, &batch, &labels, seed).backward();
            optimizer.step(&mut model);
            total += f64::from(loss) * indices.len() as f64;
            training.record(loss);
            bar.inc(1);
        }
        let elapsed = start.elapsed().as_secs_f64();
        seconds += elapsed;
        bar.finish_and_clear();
        training.end_epoch(&model, &optimizer, Default::default())?;
        accuracy = evaluate(&model, &data.test, data.side);
        report!(
            "epoch {epoch:>2}: loss {:.4}, test accuracy {:.2}%, {:.2} s, {:.0} images/s",
            total / images as f64,
            100.0 * accuracy,
            elapsed,
            images as f64 / elapsed
        );
    }
    let trained = epochs.saturating_sub(first_epoch - 1);
    report!(
        "final test accuracy: {:.2}% of {} images; training {:.1} s, {:.0} images/s",
        100.0 * accuracy,
        data.test.labels.len(),
        seconds,
        (trained * images) as f64 / seconds.max(1e-9)
    );
    training.finish(&model, 20)
}

/// The learning rate of `epoch` (from 1) of `epochs`: `lr` annealed along
/// half a cosine, so that the last epochs take small steps and the final
/// accuracy does not hang on where the last large step landed.
fn cosine(lr: f32, epoch: usize, epochs: usize) -> f32 {
    let done = (epoch - 1) as f32 / epochs as f32;
    lr * 0.5 * (1.0 + (std::f32::consts::PI * done).cos())
}

/// The fraction of `examples` the model classifies right, forward only
/// (dropout off), in batches of 256.
fn evaluate(model: &Sequential, examples: &Examples, side: usize) -> f64 {
    let all: Vec<usize> = (0..examples.labels.len()).collect();
    let mut correct = 0;
    for indices in all.chunks(256) {
        let (images, labels) = examples.batch(indices, side);
        let predicted = model.forward(&images, Mode::Eval).eval().argmax_axis(1);
        correct += predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
    }
    correct as f64 / all.len().max(1) as f64
}

/// scikit-learn's digits from `path` (a folder holding `digits.csv.gz`, or
/// the file), pixels scaled to 0..=1, split 1437/360.
fn digits(path: &Path) -> Result<DataSet, String> {
    let digits = read_digits(path).map_err(|e| e.to_string())?;
    let (train, test) = digits.train_test_split(SPLIT_SEED);
    let scaled = |d: Digits| Examples {
        images: d.scaled_images(),
        labels: d.labels,
    };
    Ok(DataSet {
        name: path.display().to_string(),
        side: Digits::SIDE,
        classes: Digits::CLASSES,
        default_epochs: 30,
        train: scaled(train),
        test: scaled(test),
    })
}

/// The generated shapes: 3000 images to train on, 300 to test.
fn generated_shapes() -> DataSet {
    let (images, labels) = shapes::generate(3300, 1);
    let split = |from: usize, to: usize| Examples {
        images: images.slice(ndarray::s![from..to, ..]).to_owned(),
        labels: labels[from..to].to_vec(),
    };
    DataSet {
        name: format!("generated shapes ({})", shapes::CLASSES.join(", ")),
        side: shapes::SIDE,
        classes: shapes::CLASSES.len(),
        default_epochs: 15,
        train: split(0, 3000),
        test: split(3000, 3300),
    }
}
