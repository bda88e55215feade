//! The MNIST CNN of Lantern's evaluation (Wang et al., NeurIPS 2018),
//! beside its PyTorch reference (`../shared/baselines/cnn_mnist_torch.py`):
//! the same network, data order, batches, initialisation scheme and plain
//! SGD, with the same flags and the same report lines.
//!
//! ```text
//! cargo run --release --example cnn_mnist                                 # the bundled subset: seconds
//! cargo run --release --example cnn_mnist -- --data ../shared/data/mnist  # all of MNIST
//! cargo run --release --example cnn_mnist -- --workers 4                  # 4 threads share each batch
//! ```
//!
//! The bundled subset (`examples/cnn_mnist/data/`, see its `SOURCE.md`) is
//! MNIST's first 5,000 training and 1,000 test images. `--help` lists the
//! options. Started from the reference's own initial parameters (`--init`,
//! its `--save-init` file) and trained without dropout, the network's
//! per-batch losses are the reference's (`model_tests.rs`);
//! `bench/cnn_mnist.sh` times both on one thread.
//!
//! Training is data-parallel: each of `--workers N` threads takes its
//! share of every batch (`--batch` counts the images of all of them), the
//! workers' gradients are summed before every step, and each image's
//! dropout mask comes from its index in the batch, so that N workers take
//! one worker's steps up to the rounding of the sums. Across processes,
//! on one machine or several, a build with the `mpi` feature runs one
//! worker per MPI process, process 0 reporting and writing the files:
//!
//! ```text
//! cargo build --release --features mpi --example cnn_mnist
//! mpirun -np 4 target/release/examples/cnn_mnist --data ../shared/data/mnist --save cnn.safetensors
//! ```

#[path = "../common/mod.rs"]
#[macro_use]
mod common;

mod cli;
mod data;
mod model;
#[cfg(test)]
mod model_tests;
mod train;

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Instant;

use common::command;
use common::training::{Training, require_data};
use common::workers::Placement;
use cps::parallel::on_threads;
use cps::prelude::*;
use data::Examples;
use indicatif::ProgressBar;
use model::Net;
use train::Lead;

/// The bundled subset of MNIST, for a run without `--data`.
const BUNDLED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/cnn_mnist/data");

fn main() {
    let options = command::options_or_exit(cli::parse, &cli::usage());
    command::exit_on_error(run(&options));
}

/// Trains and tests as `options` say.
fn run(options: &cli::Options) -> Result<(), String> {
    let placement = Placement::of(options.workers)?;
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
    let (mut training, _) = Training::start_as(
        "MNIST CNN",
        "batches",
        &options.training,
        &mut net,
        &mut optimizer,
        placement.is_root(),
    )?;
    report!(
        "cps, {}, {} training images, batch {} ({})",
        placement.describe(),
        train.len(),
        options.batch,
        dir.display()
    );
    let batches = train.len().div_ceil(options.batch);
    training.reserve(batches * options.epochs);
    let epochs = training.epochs_done() + 1..=options.epochs;
    let mut lead = Reporter {
        training,
        test: &test,
        options,
        images: train.len(),
        epoch: None,
    };
    train_on(
        placement,
        &mut net,
        &mut optimizer,
        &train,
        options,
        epochs,
        &mut lead,
    )?;
    lead.training.finish(&net, 50)
}

/// Runs the training loop (`train::train`) on every worker of
/// `placement`, this thread or process being worker 0 with `lead` when it
/// is the root.
fn train_on(
    placement: Placement,
    net: &mut Net,
    optimizer: &mut Sgd,
    data: &Examples,
    options: &cli::Options,
    epochs: RangeInclusive<usize>,
    lead: &mut dyn Lead,
) -> Result<(), String> {
    match placement {
        Placement::Threads(workers) => on_threads(
            workers,
            net,
            optimizer,
            || Net::new(options.seed),
            |worker, net, optimizer| {
                let epochs = epochs.clone();
                train::train(worker, net, optimizer, data, options, epochs, Some(lead))
            },
            |worker, net, optimizer| {
                let epochs = epochs.clone();
                train::train(worker, net, optimizer, data, options, epochs, None)
                    .expect("a worker without the lead writes nothing, so nothing fails");
            },
        ),
        // Every process runs this program; worker 0 reports and writes.
        #[cfg(feature = "mpi")]
        Placement::Mpi(world) => {
            let mut worker = cps::parallel::Worker::new(world);
            worker.broadcast_parameters(net);
            let lead = worker.is_root().then_some(lead);
            train::train(&mut worker, net, optimizer, data, options, epochs, lead)
        }
    }
}

/// Worker 0's part of the run: the record of the losses, the progress bar,
/// the checkpoints, and each epoch's report and test.
struct Reporter<'a> {
    training: Training,
    test: &'a Examples,
    options: &'a cli::Options,
    /// The number of training images.
    images: usize,
    /// The epoch under way.
    epoch: Option<EpochUnderWay>,
}

/// What an epoch's report needs while the epoch runs.
struct EpochUnderWay {
    bar: ProgressBar,
    batches: usize,
    /// The sum of the batches' mean losses.
    total: f64,
    start: Instant,
}

impl Lead for Reporter<'_> {
    fn epoch_starts(&mut self, epoch: usize, batches: usize) {
        self.epoch = Some(EpochUnderWay {
            bar: self.training.progress_bar(epoch, batches),
            batches,
            total: 0.0,
            start: Instant::now(),
        });
    }

    fn step_done(&mut self, loss: f32) {
        let under_way = self.epoch.as_mut().expect("a step belongs to an epoch");
        under_way.total += f64::from(loss);
        self.training.record(loss);
        under_way.bar.inc(1);
    }

    fn epoch_done(&mut self, epoch: usize, net: &Net, optimizer: &Sgd) -> Result<(), String> {
        let done = self.epoch.take().expect("an epoch ends after it starts");
        let seconds = done.start.elapsed().as_secs_f64();
        done.bar.finish_and_clear();
        self.training
            .end_epoch(net, optimizer, Default::default())?;
        report!(
            "epoch {epoch}: mean loss {:.4}, {seconds:.2} s, {:.0} images/s",
            done.total / done.batches.max(1) as f64,
            self.images as f64 / seconds
        );
        if !self.options.no_test {
            report!("test accuracy {:.2}%", 100.0 * accuracy(net, self.test));
        }
        Ok(())
    }
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
