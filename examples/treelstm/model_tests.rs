//! The flagship example's model, tested in-process: it learns the
//! synthetic treebank, and from the same start on the same trees it
//! computes the same per-tree losses as the PyTorch reference.

use crate::{evaluate, joined, levels, model, parallel, reference_init};

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::reference::{python_with_torch, read_losses, worst_difference};
use cps::data::synthetic::{SyntheticConfig, generate};
use cps::data::{Tree, Vocab, read_treebank};
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

#[test]
fn data_parallel_steps_apply_the_summed_gradients_of_their_trees() {
    let bank = generate(&SyntheticConfig {
        seed: 5,
        train: 6,
        dev: 0,
        test: 0,
        max_depth: 4,
    });
    let vocab = Vocab::from_trees(&bank.train);
    let train = model::encode(&vocab, bank.train);
    let fresh = || TreeLstm::new(vocab.len(), 8, 12, 0.3, 21);

    // Three threads: two steps of three trees each.
    let mut parallel_model = fresh();
    let mut optimizer = Adagrad::new(0.05);
    let mut parallel_losses = Vec::new();
    parallel::train_epoch(
        &mut parallel_model,
        &mut optimizer,
        &train,
        3,
        &fresh,
        |l| parallel_losses.push(l),
    );

    // The same by hand: gradients of three trees add up, then one step.
    let mut serial_model = fresh();
    let mut optimizer = Adagrad::new(0.05);
    let mut serial_losses = Vec::new();
    for step in train.chunks(3) {
        for (tree, words) in step {
            serial_losses.push(model::tree_loss(&serial_model, tree, words).backward());
        }
        optimizer.step(&mut serial_model);
    }
    assert_eq!(parallel_losses.len(), 6);
    for (a, b) in parallel_losses.iter().zip(&serial_losses) {
        assert!((a - b).abs() <= 1e-5 * b.abs(), "{a} vs {b}");
    }
    let mut serial_values = Vec::new();
    serial_model.visit(&mut |_, p| serial_values.push(p.array().clone()));
    let mut index = 0;
    parallel_model.visit(&mut |name, p| {
        let difference = (p.array() - &serial_values[index])
            .mapv(f32::abs)
            .fold(0.0f32, |m, &d| m.max(d));
        // The sums are the same up to the order of additions; Adagrad's
        // first steps are about lr * g / |g|, which magnifies rounding in
        // gradients near zero, hence a tolerance well above f32's epsilon
        // but far below the step size (0.05).
        assert!(difference < 1e-4, "{name} differs by {difference}");
        index += 1;
    });
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
