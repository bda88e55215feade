//! "The Reversible Residual Network" (Gomez, Ren, Urtasun and Grosse,
//! NeurIPS 2017) on MNIST: a convolutional RevNet whose stages run through
//! `cps::reversible`, so that the backward pass rebuilds each block's
//! input from its output and no block's activations are kept, beside the
//! ResNet of the very same blocks run the ordinary way (`model.rs`).
//!
//! ```text
//! cargo run --release --example revnet                                  # bundled 5,000/1,000 MNIST subset
//! cargo run --release --example revnet -- --memory-table                # report 1: memory against depth
//! cargo run --release --example revnet -- --time-steps 200             # step time of each model
//! cargo run --release --example revnet -- --data ../shared/data/mnist   # full MNIST
//! ```
//!
//! Both models are trained with Adam (its rate annealed along half a
//! cosine over the epochs) on the mean cross-entropy, from the
//! same initial parameters, on batches in the same shuffled order.
//! `--help` lists the options.

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod data;
mod memory;
mod model;
#[cfg(test)]
mod model_tests;
mod plot;
mod timing;

use common::command;
use std::time::Instant;

use cps::prelude::*;
use data::{DataSet, Examples};
use model::{Architecture, Net};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

#[global_allocator]
static ALLOCATOR: memory::Counting = memory::Counting;

/// The depths of report 1.
const TABLE_DEPTHS: [usize; 3] = [4, 16, 64];
/// The batch of report 1.
const TABLE_BATCH: usize = 32;

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    // The ResNet's continuations nest a few frames per operation: a deep
    // one needs more than the main thread's stack.
    let run = std::thread::Builder::new()
        .stack_size(512 << 20)
        .spawn(move || run(&options))
        .expect("a thread for the run");
    if let Err(message) = run.join().expect("the run finishes") {
        eprintln!("error: {message}");
        std::process::exit(2);
    }
}

fn run(options: &cli::Options) -> Result<(), String> {
    let data = match &options.data {
        Some(dir) => data::mnist(dir, options.limit)?,
        None => data::default(options.limit)?,
    };
    if data.train.len() == 0 || data.test.len() == 0 {
        return Err(format!("{}: no images", data.name));
    }
    if options.memory_table {
        return memory_report(options, &data);
    }
    if let Some(steps) = options.time_steps {
        time_report(options, &data, steps.max(1));
        return Ok(());
    }
    report!(
        "{}: {} training images, {} test; depth {} (C = {}), batch {}, Adam lr {}, {} epochs",
        data.name,
        data.train.len(),
        data.test.len(),
        options.depth,
        options.half,
        options.batch,
        options.learning_rate,
        options.epochs
    );
    for &architecture in &options.models {
        train(options, &data, architecture);
    }
    Ok(())
}

/// Trains one model and reports each epoch's loss, test accuracy and time.
fn train(options: &cli::Options, data: &DataSet, architecture: Architecture) {
    let name = architecture.name();
    let mut net = Net::<f32>::new(options.depth, options.half, 10, options.seed);
    report!("{name}: {} parameters", net.parameter_count());
    let mut optimizer = Adam::new(options.learning_rate);
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    let mut shuffle = StdRng::seed_from_u64(options.seed);
    let mut seconds = Vec::new();
    let mut accuracy = 0.0;
    for epoch in 1..=options.epochs {
        order.shuffle(&mut shuffle);
        optimizer.set_learning_rate(cosine(options.learning_rate, epoch, options.epochs));
        let start = Instant::now();
        let mut total = 0.0;
        for indices in order.chunks(options.batch) {
            let (images, labels) = data.train.batch(indices);
            let step = model::loss_and_gradients(&net, &images, &labels, architecture);
            optimizer.step(&mut net);
            total += step.loss * indices.len() as f64;
        }
        let elapsed = start.elapsed().as_secs_f64();
        seconds.push(elapsed);
        accuracy = evaluate(&net, &data.test);
        report!(
            "{name} epoch {epoch}: loss {:.4}, test accuracy {:.2}%, {:.1} s",
            total / data.train.len() as f64,
            100.0 * accuracy,
            elapsed
        );
    }
    let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
    report!(
        "{name} final: test accuracy {:.2}% ({} images), {:.1} s per epoch",
        100.0 * accuracy,
        data.test.len(),
        mean
    );
}

/// The learning rate of `epoch` (from 1) of `epochs`: `lr` annealed along
/// half a cosine, so that the last epochs take small steps and the final
/// accuracy does not hang on where the last large step landed.
fn cosine(lr: f32, epoch: usize, epochs: usize) -> f32 {
    let done = (epoch - 1) as f32 / epochs as f32;
    lr * 0.5 * (1.0 + (std::f32::consts::PI * done).cos())
}

/// The fraction of `examples` classified right. The forward pass alone is
/// the same function for both architectures; the plain one is evaluated
/// because a reversible sequence's forward-only run has nothing to save.
fn evaluate(net: &Net, examples: &Examples) -> f64 {
    let all: Vec<usize> = (0..examples.len()).collect();
    let mut correct = 0;
    for indices in all.chunks(500) {
        let (images, labels) = examples.batch(indices);
        let predicted = model::logits(net, &images, Architecture::ResNet)
            .eval()
            .argmax_axis(1);
        correct += predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p == l)
            .count();
    }
    correct as f64 / examples.len() as f64
}

/// The cost of reversibility: each model's median step time, and what
/// that makes an epoch of the training set.
fn time_report(options: &cli::Options, data: &DataSet, steps: usize) {
    let times = timing::step_times(
        &data.train,
        options.depth,
        options.half,
        options.batch,
        steps,
        options.seed,
    );
    let batches = data.train.len().div_ceil(options.batch);
    report!(
        "median {} of {} interleaved steps, depth {}, C = {}, batch {}:",
        if times.cpu_time {
            "CPU time"
        } else {
            "wall time"
        },
        times.steps,
        options.depth,
        options.half,
        options.batch
    );
    for (name, seconds) in [("RevNet", times.revnet), ("ResNet", times.resnet)] {
        report!(
            "{name}: {:.1} ms per step, {:.1} s per epoch of {} images",
            1e3 * seconds,
            seconds * batches as f64,
            data.train.len()
        );
    }
    report!("RevNet / ResNet: {:.2}", times.revnet / times.resnet);
}

/// Report 1: the memory table on the first training images, and its plot.
fn memory_report(options: &cli::Options, data: &DataSet) -> Result<(), String> {
    let batch = TABLE_BATCH.min(data.train.len());
    let indices: Vec<usize> = (0..batch).collect();
    let (images, labels) = data.train.batch(&indices);
    let examples = Examples {
        images: images
            .array()
            .clone()
            .into_dimensionality()
            .map_err(|e| e.to_string())?,
        labels,
    };
    let rows = memory::table(&TABLE_DEPTHS, options.half, &examples, options.seed);
    report!(
        "one training step, batch {batch}, C = {}, f32:",
        options.half
    );
    report!(
        "| depth | model  | live at end of forward (MB) | peak of step (MB) | parameters (MB) |"
    );
    report!(
        "|------:|--------|----------------------------:|------------------:|----------------:|"
    );
    for row in &rows {
        report!(
            "| {:>5} | {} | {:>27.3} | {:>17.3} | {:>15.3} |",
            row.depth,
            row.architecture.name(),
            memory::megabytes(row.forward_bytes),
            memory::megabytes(row.peak_bytes),
            memory::megabytes(row.parameter_bytes)
        );
    }
    plot::memory(&rows, batch, &options.plot)?;
    report!("drew {}", options.plot.display());
    Ok(())
}
