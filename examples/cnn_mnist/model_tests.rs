//! The MNIST CNN example, tested in-process: from the PyTorch reference's
//! initial parameters, on the bundled subset of MNIST, it computes the
//! reference's per-batch losses; the committed fixture is what the
//! reference writes; and the IDX reader reads the real MNIST.

use crate::{data, model};

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::reference::{python_with_torch, read_losses, worst_difference};
use cps::data::{Mnist, read_mnist};
use cps::prelude::*;
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
