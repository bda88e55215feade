//! The MNIST CNN example, tested in-process: from the PyTorch reference's
//! initial parameters, on the bundled subset of MNIST, it computes the
//! reference's per-batch losses; the committed fixture is what the
//! reference writes; the IDX reader reads the real MNIST; and the training
//! loop takes one thread's steps on one worker, bit for bit, and on
//! several up to rounding.

use crate::cli::Options;
use crate::common::training::step_seed;
use crate::train::{self, Lead};
use crate::{data, model};

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::reference::{python_with_torch, read_losses, worst_difference};
use cps::data::{Mnist, read_mnist};
use cps::parallel::{Worker, on_threads};
use cps::prelude::*;
use cps::workers::{Alone, Communicator};
use data::Examples;
use model::Net;

/// The batches of the fixture: two epochs of the bundled subset's 50.
const BATCHES: usize = 100;

fn project(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn bundled() -> Examples {
    let (train, _) = data::load(&project("examples/cnn_mnist/data"), None).expect("bundled data");
    assert_eq!(train.len(), 5000);
    train
}

/// The reference's initial parameters (its `--save-init`, committed).
fn fixture_init() -> PathBuf {
    project("tests/fixtures/cnn_mnist/init.safetensors")
}

/// The first `count` per-batch losses of training `net` without dropout
/// with the reference's settings (batches of 100 in file order, SGD at
/// 0.05), epoch after epoch.
fn train_losses(mut net: Net, train: &Examples, count: usize) -> Vec<f32> {
    let mut optimizer = Sgd::new(0.05);
    let batches: Vec<_> = train.batches(100).collect();
    batches
        .iter()
        .cycle()
        .take(count)
        .map(|&(from, to)| {
            let (images, labels) = train.batch(from, to);
            model::train_step(&mut net, &mut optimizer, &images, labels, None)
        })
        .collect()
}

#[test]
fn same_losses_as_the_pytorch_reference() {
    let theirs = read_losses(&project("tests/fixtures/cnn_mnist/losses.txt"));
    assert_eq!(theirs.len(), BATCHES);
    // The first batch's loss is about ln 10: the initial network guesses.
    assert!((theirs[0] - 10f64.ln()).abs() < 0.05, "{}", theirs[0]);
    assert!(theirs[BATCHES - 1] < 1.0, "{}", theirs[BATCHES - 1]);

    let train = bundled();
    let mut net = Net::new(0);
    cps::io::load_parameters(&mut net, fixture_init()).expect("the reference's parameters load");
    let ours = train_losses(net, &train, BATCHES);
    let (worst, at) = worst_difference(&ours, &theirs);
    println!(
        "largest relative difference in per-batch loss over {BATCHES} batches: {worst:.2e} (batch {at})"
    );
    assert!(
        worst < 1e-3,
        "batch {at}: ours {} vs PyTorch {}",
        ours[at],
        theirs[at]
    );

    // The negative control: the same run from a slightly different start
    // (conv1's weights 5% larger) fails the comparison above.
    let mut perturbed = Net::new(0);
    cps::io::load_parameters(&mut perturbed, fixture_init()).unwrap();
    perturbed
        .conv1
        .weight
        .value_mut()
        .mapv_inplace(|w| w * 1.05);
    let off = train_losses(perturbed, &train, 20);
    let (control, _) = worst_difference(&off, &theirs[..20]);
    println!("the same from conv1's weights × 1.05: {control:.2e}");
    assert!(control > 1e-3, "the perturbed start is off by {control}");
}

#[test]
fn the_fixture_is_what_the_reference_writes() {
    let reference = project("../shared/baselines/cnn_mnist_torch.py");
    if !reference.is_file() || !python_with_torch() {
        println!(
            "SKIPPED the_fixture_is_what_the_reference_writes: needs python3 with torch, \
             safetensors and numpy, and {}",
            reference.display()
        );
        return;
    }
    let scratch = scratch_dir("cps-cnn-mnist-fixture");
    let (init, log) = (scratch.join("init.safetensors"), scratch.join("losses.txt"));
    // The command of tests/fixtures/cnn_mnist/README.md.
    let status = Command::new("python3")
        .arg(&reference)
        .arg("--data")
        .arg(project("examples/cnn_mnist/data"))
        .args([
            "--epochs",
            "2",
            "--no-dropout",
            "--no-test",
            "--threads",
            "1",
        ])
        .arg("--save-init")
        .arg(&init)
        .arg("--loss-log")
        .arg(&log)
        .status()
        .expect("the reference runs");
    assert!(status.success(), "the PyTorch reference failed");

    let committed = cps::io::read_tensors::<f32>(fixture_init()).unwrap();
    let written = cps::io::read_tensors::<f32>(&init).unwrap();
    assert_eq!(
        written, committed,
        "the reference's initial parameters changed"
    );
    let theirs = read_losses(&log);
    let fixture = read_losses(&project("tests/fixtures/cnn_mnist/losses.txt"));
    assert_eq!(theirs.len(), BATCHES);
    // Another CPU or PyTorch build may round its sums differently in the
    // last digits; the losses themselves must not move.
    let worst = theirs
        .iter()
        .zip(&fixture)
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0f64, f64::max);
    println!("the regenerated losses differ from the fixture's by at most {worst:.2e} (relative)");
    assert!(worst < 1e-5, "the reference's losses moved by {worst}");
    std::fs::remove_dir_all(&scratch).ok();
}

/// A fresh scratch directory (removed by the caller).
fn scratch_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

#[test]
fn the_idx_reader_reads_the_real_mnist() {
    let dir = project("../shared/data/mnist");
    if !dir.join(Mnist::TRAIN_IMAGES).is_file() {
        println!(
            "SKIPPED the_idx_reader_reads_the_real_mnist: no MNIST at {}",
            dir.display()
        );
        return;
    }
    let mnist = read_mnist(&dir).expect("MNIST reads");
    assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
    assert_eq!(mnist.train.images.len(), 60_000);
    assert_eq!((mnist.train.images.rows, mnist.train.images.cols), (28, 28));
    assert_eq!(mnist.train.labels[..10], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    // The bundled subset is the first 5,000 training and 1,000 test images.
    let bundled = read_mnist(project("examples/cnn_mnist/data")).expect("bundled data");
    assert_eq!(
        bundled.train.images.pixels[..],
        mnist.train.images.pixels[..5000 * 784]
    );
    assert_eq!(bundled.train.labels[..], mnist.train.labels[..5000]);
    assert_eq!(
        bundled.test.images.pixels[..],
        mnist.test.images.pixels[..1000 * 784]
    );
    assert_eq!(bundled.test.labels[..], mnist.test.labels[..1000]);
}

/// The first `len` images of the bundled training set: a few steps of
/// the tests below, fast enough for a test run on two cores.
fn bundled_head(len: usize) -> Examples {
    let (train, _) =
        data::load(&project("examples/cnn_mnist/data"), Some(len)).expect("bundled data");
    train
}

/// Training with dropout on batches of 25: two epochs of 101 images are
/// ten steps, the last of each epoch on one image, so that with two or
/// three workers every batch is split unevenly and some shares are empty.
fn uneven_options() -> Options {
    Options {
        batch: 25,
        epochs: 2,
        seed: 3,
        ..Options::default()
    }
}

/// Worker 0's record of the losses.
#[derive(Default)]
struct Record(Vec<f32>);

impl Lead for Record {
    fn epoch_starts(&mut self, _epoch: usize, _batches: usize) {}

    fn step_done(&mut self, loss: f32) {
        self.0.push(loss);
    }

    fn epoch_done(&mut self, _epoch: usize, _net: &Net, _optimizer: &Sgd) -> Result<(), String> {
        Ok(())
    }
}

/// The network trained by the example's loop on `workers` threads, as
/// `options` say, from `Net::new(options.seed)`, and worker 0's losses.
fn trained_on_threads(workers: usize, data: &Examples, options: &Options) -> (Net, Vec<f32>) {
    let mut net = Net::new(options.seed);
    let mut optimizer = Sgd::new(options.learning_rate);
    let mut record = Record::default();
    let epochs = 1..=options.epochs;
    on_threads(
        workers,
        &mut net,
        &mut optimizer,
        || Net::new(options.seed),
        |worker, net, optimizer| {
            let lead: &mut dyn Lead = &mut record;
            train::train(
                worker,
                net,
                optimizer,
                data,
                options,
                epochs.clone(),
                Some(lead),
            )
        },
        |worker, net, optimizer| {
            train::train(worker, net, optimizer, data, options, epochs.clone(), None)
                .expect("only the lead fails");
        },
    )
    .expect("recording does not fail");
    (net, record.0)
}

/// Every parameter's values, end to end.
fn flat_parameters(net: &Net) -> Vec<f32> {
    let mut values = Vec::new();
    net.visit(&mut |_, p| values.extend(p.value().iter().copied()));
    values
}

/// The largest difference between `ours` and `one`'s elements over the
/// largest magnitude among `one`'s.
fn relative_difference(ours: &[f32], one: &[f32]) -> f64 {
    assert_eq!(ours.len(), one.len());
    let worst = ours
        .iter()
        .zip(one)
        .map(|(a, b)| f64::from(a - b).abs())
        .fold(0.0, f64::max);
    let scale = one.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
    worst / scale
}

/// The largest relative difference between two runs' per-step losses.
fn loss_difference(ours: &[f32], one: &[f32]) -> f64 {
    assert_eq!(ours.len(), one.len());
    ours.iter()
        .zip(one)
        .map(|(a, b)| f64::from(a - b).abs() / f64::from(b.abs()))
        .fold(0.0, f64::max)
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn one_worker_steps_as_train_step_does_bit_for_bit() {
    let data = bundled_head(101);
    let options = uneven_options();

    // One thread, batch by batch, with no worker in between.
    let mut net = Net::new(options.seed);
    let mut optimizer = Sgd::new(options.learning_rate);
    let mut losses = Vec::new();
    for epoch in 1..=options.epochs {
        for (step, (from, to)) in data.batches(options.batch).enumerate() {
            let (images, labels) = data.batch(from, to);
            let dropout = Some(step_seed(options.seed, epoch, step));
            losses.push(model::train_step(
                &mut net,
                &mut optimizer,
                &images,
                labels,
                dropout,
            ));
        }
    }
    assert_eq!(losses.len(), 10);

    let (threads, thread_losses) = trained_on_threads(1, &data, &options);
    assert_eq!(bits(&thread_losses), bits(&losses));
    assert_eq!(
        bits(&flat_parameters(&threads)),
        bits(&flat_parameters(&net))
    );

    // A worker alone (an MPI job of one process steps the same way).
    let mut alone = Net::new(options.seed);
    let mut record = Record::default();
    train::train(
        &mut Worker::new(Alone),
        &mut alone,
        &mut Sgd::new(options.learning_rate),
        &data,
        &options,
        1..=options.epochs,
        Some(&mut record),
    )
    .unwrap();
    assert_eq!(bits(&record.0), bits(&losses));
    assert_eq!(bits(&flat_parameters(&alone)), bits(&flat_parameters(&net)));
}

#[test]
fn two_and_three_workers_take_one_workers_steps() {
    let data = bundled_head(101);
    let options = uneven_options();
    let (one, one_losses) = trained_on_threads(1, &data, &options);
    let one = flat_parameters(&one);
    // The steps moved the parameters: the comparison below is not of two
    // copies of the start.
    let moved = relative_difference(&one, &flat_parameters(&Net::new(options.seed)));
    println!("one worker's steps moved the parameters by {moved:.2e} (relative)");
    assert!(moved > 1e-2, "the parameters moved by only {moved:.2e}");
    for workers in [2, 3] {
        let (net, losses) = trained_on_threads(workers, &data, &options);
        let parameters = relative_difference(&flat_parameters(&net), &one);
        let loss = loss_difference(&losses, &one_losses);
        println!(
            "{workers} workers vs one after {} steps: parameters {parameters:.2e}, losses \
             {loss:.2e} (relative)",
            losses.len()
        );
        assert!(
            parameters < 1e-5,
            "{workers} workers: parameters off by {parameters:.2e}"
        );
        assert!(loss < 1e-5, "{workers} workers: losses off by {loss:.2e}");
    }
}

/// The same steps as the example's loop, but each worker updating its
/// model with its own share's gradient alone.
fn train_without_all_reduce<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    net: &mut Net,
    optimizer: &mut Sgd,
    data: &Examples,
    options: &Options,
) {
    for epoch in 1..=options.epochs {
        for (step, batch) in data.batches(options.batch).enumerate() {
            let dropout = Some(step_seed(options.seed, epoch, step));
            train::share_backward(worker, net, data, batch, dropout);
            optimizer.step(net);
        }
    }
}

#[test]
fn workers_that_skip_the_all_reduce_fail_the_comparison() {
    let data = bundled_head(101);
    let options = uneven_options();
    let (one, _) = trained_on_threads(1, &data, &options);
    let mut net = Net::new(options.seed);
    on_threads(
        2,
        &mut net,
        &mut Sgd::new(options.learning_rate),
        || Net::new(options.seed),
        |worker, net, optimizer| train_without_all_reduce(worker, net, optimizer, &data, &options),
        |worker, net, optimizer| train_without_all_reduce(worker, net, optimizer, &data, &options),
    );
    let off = relative_difference(&flat_parameters(&net), &flat_parameters(&one));
    println!("2 workers without the all-reduce vs one: parameters {off:.2e} (relative)");
    assert!(off > 1e-3, "without the all-reduce, off by only {off:.2e}");
}
