//! The flagship example's model, tested in-process: it learns the
//! synthetic treebank, and from the same start on the same trees it
//! computes the same per-tree losses as the PyTorch reference.

use crate::cli::Mode;
use crate::{evaluate, joined, levels, model, reference_init, train};

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::reference::{python_with_torch, read_losses, worst_difference};
use cps::data::synthetic::{SyntheticConfig, generate};
use cps::data::{Tree, Vocab, read_treebank};
use cps::parallel::on_threads;
use cps::prelude::*;
use model::TreeLstm;

fn train_epoch(
    model: &mut TreeLstm,
    optimizer: &mut Adagrad,
    trees: &[(Tree, Vec<usize>)],
) -> Vec<f32> {
    trees
        .iter()
        .map(|(tree, words)| model::train_step(model, optimizer, tree, words))
        .collect()
}

/// Another way of computing the per-node model (`compute` runs one tree's
/// loss and back-propagates) gives its losses and gradients (to f32
/// rounding) on trees of many shapes.
fn assert_per_node_losses_and_gradients(
    compute: impl Fn(&model::TreeLstm, &Tree, &[usize]) -> f32,
) {
    let bank = generate(&SyntheticConfig {
        seed: 5,
        train: 60,
        dev: 0,
        test: 0,
        max_depth: 8,
    });
    let vocab = Vocab::from_trees(&bank.train);
    let trees = model::encode(&vocab, bank.train);
    let model = TreeLstm::new(vocab.len(), 24, 32, 0.3, 4);
    let grads = |model: &TreeLstm| {
        let mut all = Vec::new();
        model.visit(&mut |name, p| all.push((name.to_string(), p.take_grad())));
        all
    };
    for (tree, words) in &trees {
        let by_node = model::tree_loss(&model, tree, words).backward();
        let node_grads = grads(&model);
        let other = compute(&model, tree, words);
        let other_grads = grads(&model);
        assert!(
            (by_node - other).abs() <= 1e-5 * by_node.abs(),
            "loss {by_node} by node, {other} the other way"
        );
        for ((name, a), (_, b)) in node_grads.iter().zip(&other_grads) {
            let (Some(a), Some(b)) = (a, b) else {
                assert_eq!(
                    a.is_some(),
                    b.is_some(),
                    "{name}: a gradient on one side only"
                );
                continue;
            };
            let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let worst = a
                .iter()
                .zip(b)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                worst <= 1e-4 * scale,
                "{name}: differs by {worst} (scale {scale})"
            );
        }
    }
}

/// The level-by-level model computes the per-node model's losses and
/// gradients.
#[test]
fn level_by_level_gives_the_node_by_node_losses_and_gradients() {
    assert_per_node_losses_and_gradients(|model, tree, words| {
        let plan = levels::LevelPlan::new(tree);
        levels::tree_loss_by_level(model, &plan, words).backward()
    });
}

/// The recursive model with its subtrees joined (every product batched,
/// however small) computes the same losses bit for bit, and the
/// gradients to rounding.
#[test]
fn joined_subtrees_give_the_node_by_node_losses_and_gradients() {
    let threshold = cps::join::set_batch_threshold(1);
    assert_per_node_losses_and_gradients(|model, tree, words| {
        let joined = joined::tree_loss(model, tree, words).backward();
        let plain = model::tree_loss(model, tree, words).eval();
        assert_eq!(joined.to_bits(), plain.array()[[]].to_bits());
        joined
    });
    cps::join::set_batch_threshold(threshold);
}

#[test]
fn learns_the_synthetic_treebank() {
    let bank = generate(&SyntheticConfig {
        seed: 3,
        train: 800,
        dev: 100,
        test: 0,
        max_depth: 5,
    });
    let vocab = Vocab::from_trees(&bank.train);
    let (train, dev) = (
        model::encode(&vocab, bank.train),
        model::encode(&vocab, bank.dev),
    );
    let mut model = TreeLstm::new(vocab.len(), 24, 32, 0.3, 11);
    let mut optimizer = Adagrad::new(0.05);
    let (root_before, _) = evaluate::accuracy(&model, &dev);
    let first = train_epoch(&mut model, &mut optimizer, &train);
    let mut last = first.clone();
    for _ in 0..3 {
        last = train_epoch(&mut model, &mut optimizer, &train);
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
    assert!(
        mean(&last) < 0.6 * mean(&first),
        "loss {} -> {}",
        mean(&first),
        mean(&last)
    );
    let (root, all) = evaluate::accuracy(&model, &dev);
    // Five classes: chance is 20%.
    assert!(
        root > 0.6 && all > 0.8,
        "dev accuracy: root {root} (before {root_before}), all nodes {all}"
    );
}

/// The synthetic trees of the data-parallel tests, and a model for them.
fn small_bank(trees: usize) -> (Vec<train::Example>, impl Fn() -> TreeLstm + Sync) {
    let bank = generate(&SyntheticConfig {
        seed: 5,
        train: trees,
        dev: 0,
        test: 0,
        max_depth: 5,
    });
    let vocab = Vocab::from_trees(&bank.train);
    let count = vocab.len();
    (model::encode(&vocab, bank.train), move || {
        TreeLstm::new(count, 8, 12, 0.3, 21)
    })
}

/// An epoch of `set` in batches of `batch` on `workers` threads: the final
/// parameters and the batches' summed losses.
fn data_parallel_epoch(
    set: &train::TrainingSet,
    fresh: &(impl Fn() -> TreeLstm + Sync),
    batch: usize,
    workers: usize,
) -> (Vec<ndarray::ArrayD<f32>>, Vec<f32>) {
    let mut model = fresh();
    let mut optimizer = Adagrad::new(0.05);
    let losses = on_threads(
        workers,
        &mut model,
        &mut optimizer,
        fresh,
        |worker, model, optimizer| {
            let mut losses = Vec::new();
            train::batched_epoch(worker, model, optimizer, set, batch, |l, _| losses.push(l));
            losses
        },
        |worker, model, optimizer| {
            train::batched_epoch(worker, model, optimizer, set, batch, |_, _| {});
        },
    );
    let mut values = Vec::new();
    model.visit(&mut |_, p| values.push(p.array().clone()));
    (values, losses)
}

/// The largest difference between two lists of tensors, relative to the
/// largest value.
fn relative_difference(a: &[ndarray::ArrayD<f32>], b: &[ndarray::ArrayD<f32>]) -> f32 {
    let (mut largest, mut difference) = (0.0f32, 0.0f32);
    for (a, b) in a.iter().zip(b) {
        for (x, y) in a.iter().zip(b) {
            largest = largest.max(x.abs());
            difference = difference.max((x - y).abs());
        }
    }
    difference / largest
}

/// One tree per batch through the batched loop is the tree-by-tree
/// training of the README, bit for bit.
#[test]
fn batches_of_one_tree_are_the_tree_by_tree_steps() {
    let (trees, fresh) = small_bank(12);
    let set = train::TrainingSet {
        trees: &trees,
        mode: Mode::Node,
        plans: &[],
    };
    let (batched, batched_losses) = data_parallel_epoch(&set, &fresh, 1, 1);
    let mut model = fresh();
    let mut optimizer = Adagrad::new(0.05);
    let losses = train_epoch(&mut model, &mut optimizer, &trees);
    let mut values = Vec::new();
    model.visit(&mut |_, p| values.push(p.array().clone()));
    assert_eq!(batched_losses, losses);
    assert_eq!(batched, values);
}

/// The gradient worker 0 holds after the all-reduce of the first batch of
/// `batch` trees on `workers` threads, parameter by parameter.
fn first_batch_gradient(
    set: &train::TrainingSet,
    fresh: &(impl Fn() -> TreeLstm + Sync),
    batch: usize,
    workers: usize,
) -> Vec<ndarray::ArrayD<f32>> {
    let one_batch = |worker: &mut cps::parallel::ThreadWorker, model: &mut TreeLstm| {
        let nodes: Vec<usize> = set.trees[..batch]
            .iter()
            .map(|(t, _)| t.node_count())
            .collect();
        for k in worker.balanced_share(&nodes) {
            set.backward(model, k, 1.0 / batch as f32);
        }
        worker.all_reduce_gradients(model);
    };
    on_threads(
        workers,
        &mut fresh(),
        &mut (),
        fresh,
        |worker, model, _| {
            one_batch(worker, model);
            let mut grads = Vec::new();
            model.visit(&mut |_, p| grads.push(p.grad()));
            grads
        },
        |worker, model, _| one_batch(worker, model),
    )
}

/// Two and three workers on batches of 4 and 5 trees sum the gradients
/// one worker sums on the same batches (to 1e-5 of the largest, the order
/// of the sums aside), and take its steps, in every mode; a different
/// batching (the negative control) is far off.
///
/// The parameters after an epoch agree to 1e-4 rather than 1e-5: Adagrad's
/// first step moves every element by about `lr · g / |g|`, so an element
/// whose gradient is a sum that nearly cancels carries the rounding of
/// that sum, relative to its own small size, into a step of size `lr`.
#[test]
fn workers_on_shares_of_a_batch_of_trees_take_one_workers_steps() {
    let (trees, fresh) = small_bank(20);
    let plans: Vec<levels::LevelPlan> = trees
        .iter()
        .map(|(t, _)| levels::LevelPlan::new(t))
        .collect();
    for mode in [Mode::Node, Mode::Joined, Mode::Level] {
        let set = train::TrainingSet {
            trees: &trees,
            mode,
            plans: &plans,
        };
        for batch in [4, 5] {
            let (alone, alone_losses) = data_parallel_epoch(&set, &fresh, batch, 1);
            let gradient = first_batch_gradient(&set, &fresh, batch, 1);
            for workers in [2, 3] {
                let summed = first_batch_gradient(&set, &fresh, batch, workers);
                let difference = relative_difference(&gradient, &summed);
                assert!(
                    difference < 1e-5,
                    "{mode:?}, batch {batch}, {workers} workers: gradients differ by {difference:e}"
                );
                let (shared, losses) = data_parallel_epoch(&set, &fresh, batch, workers);
                let difference = relative_difference(&alone, &shared);
                assert!(
                    difference < 1e-4,
                    "{mode:?}, batch {batch}, {workers} workers: parameters differ by {difference:e}"
                );
                for (a, b) in losses.iter().zip(&alone_losses) {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs(),
                        "{mode:?}: losses {a} and {b}"
                    );
                }
            }
        }
        let (four, _) = data_parallel_epoch(&set, &fresh, 4, 1);
        let (five, _) = data_parallel_epoch(&set, &fresh, 5, 2);
        assert!(
            relative_difference(&four, &five) > 1e-3,
            "{mode:?}: the control"
        );
    }
}

/// The committed parity fixture (see its README).
fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/treelstm")
}

/// Trains two epochs on the fixture's trees from `init` (when given; our
/// own initialisation otherwise) and returns every step's loss.
fn fixture_losses(init: Option<&Path>) -> Vec<f32> {
    let mut trees = read_treebank(fixture_dir().join("train.txt")).expect("the fixture parses");
    trees.truncate(60);
    let vocab = Vocab::from_trees(&trees);
    let train = model::encode(&vocab, trees);
    let mut model = TreeLstm::new(vocab.len(), 24, 32, 0.3, 7);
    if let Some(init) = init {
        reference_init::load(&mut model, init).expect("the reference's parameters load");
    }
    let mut optimizer = Adagrad::new(0.05);
    let mut losses = train_epoch(&mut model, &mut optimizer, &train);
    losses.extend(train_epoch(&mut model, &mut optimizer, &train));
    losses
}

/// From the reference's initial parameters, on the same trees, the same
/// per-tree losses as the reference's, step by step (the committed
/// fixture: no PyTorch needed). Our own initialisation is the negative
/// control.
#[test]
fn same_losses_as_the_committed_reference_run() {
    let dir = fixture_dir();
    let theirs = read_losses(&dir.join("losses.txt"));
    assert_eq!(theirs.len(), 120);
    let (worst, at) = worst_difference(
        &fixture_losses(Some(&dir.join("init.safetensors"))),
        &theirs,
    );
    assert!(worst < 1e-3, "step {at}: relative difference {worst:.2e}");
    let (control, _) = worst_difference(&fixture_losses(None), &theirs);
    assert!(
        control > 1e-2,
        "another initialisation should give other losses (largest difference {control:.2e})"
    );
}

/// The committed fixture is what the reference computes today: run it
/// again (when python3 with torch is present) and compare.
#[test]
fn the_committed_reference_run_is_current() {
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/baselines/treelstm_torch.py");
    if !reference.is_file() || !python_with_torch() {
        println!(
            "SKIPPED the_committed_reference_run_is_current: needs python3 with torch, safetensors and numpy, and {}",
            reference.display()
        );
        return;
    }
    let scratch = std::env::temp_dir().join(format!("cps-fixture-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let (init, log) = (scratch.join("init.safetensors"), scratch.join("losses.txt"));
    let status = Command::new("python3")
        .arg(&reference)
        .args(["--data".as_ref(), fixture_dir().as_os_str()])
        .args([
            "--limit",
            "60",
            "--epochs",
            "2",
            "--no-dev",
            "--threads",
            "1",
        ])
        .args(["--hidden", "32", "--emb", "24"])
        .args(["--save-init".as_ref(), init.as_os_str()])
        .args(["--loss-log".as_ref(), log.as_os_str()])
        .status()
        .expect("the reference runs");
    assert!(status.success(), "the PyTorch reference failed");
    let committed = read_losses(&fixture_dir().join("losses.txt"));
    let fresh = read_losses(&log);
    assert_eq!(fresh.len(), committed.len());
    for (i, (a, b)) in fresh.iter().zip(&committed).enumerate() {
        assert!(
            (a - b).abs() <= 1e-6 * b.abs(),
            "step {i}: {a} now, {b} committed"
        );
    }
    let fresh_init = cps::io::read_tensors::<f32>(&init).expect("the new init");
    let committed_init =
        cps::io::read_tensors::<f32>(fixture_dir().join("init.safetensors")).expect("the fixture");
    assert_eq!(
        fresh_init, committed_init,
        "the reference's initial parameters changed"
    );
    std::fs::remove_dir_all(&scratch).ok();
}

fn sst_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sst"));
    dir.join("train.txt").is_file().then_some(dir)
}

#[test]
fn same_losses_as_the_pytorch_reference() {
    const TREES: usize = 1000;
    let Some(sst) = sst_dir() else {
        println!(
            "SKIPPED same_losses_as_the_pytorch_reference: no SST at ../shared/data/sst (set SST_DIR)"
        );
        return;
    };
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/baselines/treelstm_torch.py");
    if !reference.is_file() || !python_with_torch() {
        println!(
            "SKIPPED same_losses_as_the_pytorch_reference: needs python3 with torch, safetensors and numpy, and {}",
            reference.display()
        );
        return;
    }
    let scratch = std::env::temp_dir().join(format!("cps-parity-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let (init, torch_log) = (
        scratch.join("init.safetensors"),
        scratch.join("torch-losses.txt"),
    );
    let status = Command::new("python3")
        .arg(&reference)
        .args(["--data".as_ref(), sst.as_os_str()])
        .args([
            "--limit",
            &TREES.to_string(),
            "--epochs",
            "1",
            "--no-dev",
            "--threads",
            "1",
        ])
        .args([
            "--save-init".as_ref(),
            init.as_os_str(),
            "--loss-log".as_ref(),
            torch_log.as_os_str(),
        ])
        .status()
        .expect("the reference runs");
    assert!(status.success(), "the PyTorch reference failed");

    let mut trees = read_treebank(sst.join("train.txt")).expect("SST parses");
    trees.truncate(TREES);
    let vocab = Vocab::from_trees(&trees);
    let train = model::encode(&vocab, trees);
    let mut model = TreeLstm::new(vocab.len(), 300, 150, 0.3, 0);
    reference_init::load(&mut model, &init).expect("the reference's parameters load");
    let mut optimizer = Adagrad::new(0.05);
    let ours = train_epoch(&mut model, &mut optimizer, &train);

    let theirs = read_losses(&torch_log);
    assert_eq!(theirs.len(), TREES);
    let worst = worst_difference(&ours, &theirs);
    println!(
        "largest relative difference in per-tree loss over {TREES} trees: {:.2e} (tree {})",
        worst.0, worst.1
    );
    std::fs::remove_dir_all(&scratch).ok();
    assert!(
        worst.0 < 1e-3,
        "tree {}: ours {} vs PyTorch {}",
        worst.1,
        ours[worst.1],
        theirs[worst.1]
    );
}
