//! Training on batches of trees, on one worker or many: each worker takes
//! its share of a batch's trees (shares of about equal node counts), back-propagates each tree's loss divided
//! by the batch's size, and after the gradients of all workers are summed
//! every worker takes the same Adagrad step. One tree per batch on one
//! worker is the original tree-by-tree training, step for step.

use cps::data::Tree;
use cps::parallel::Worker;
use cps::prelude::*;
use cps::workers::Communicator;

use crate::cli::Mode;
use crate::joined;
use crate::levels::{self, LevelPlan};
use crate::model::{self, TreeLstm};

/// A tree with its words' vocabulary indices.
pub type Example = (Tree, Vec<usize>);

/// The training trees, and how a tree is computed.
pub struct TrainingSet<'a> {
    pub trees: &'a [Example],
    pub mode: Mode,
    /// One plan per tree in level-by-level mode; empty otherwise.
    pub plans: &'a [LevelPlan],
}

impl TrainingSet<'_> {
    /// Tree `k`'s loss, forward and backward, its gradient scaled by
    /// `scale`; returns the unscaled loss.
    pub fn backward(&self, model: &TreeLstm, k: usize, scale: f32) -> f32 {
        let (tree, words) = &self.trees[k];
        match self.mode {
            Mode::Node => scaled_backward(model::tree_loss(model, tree, words), scale),
            Mode::Joined => scaled_backward(joined::tree_loss(model, tree, words), scale),
            Mode::Level => scaled_backward(
                levels::tree_loss_by_level(model, &self.plans[k], words),
                scale,
            ),
        }
    }
}

/// Runs `loss` forward and backward with its gradient multiplied by
/// `scale` (left out at 1, the tree-by-tree case); returns the loss.
fn scaled_backward(loss: impl Computation<Output = Var>, scale: f32) -> f32 {
    if scale == 1.0 {
        return loss.backward();
    }
    let mut value = 0.0;
    lazy(|k: &mut dyn FnMut(Var)| {
        loss.bind(|loss| {
            value = loss.item();
            (&loss * scale).bind(&mut *k)
        })
    })
    .backward();
    value
}

/// One epoch over `set` in batches of `batch` trees (the last one may be
/// shorter); `on_batch` receives each batch's summed tree loss and its
/// number of trees, the same on every worker.
pub fn epoch<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    model: &mut TreeLstm,
    optimizer: &mut Adagrad,
    set: &TrainingSet,
    batch: usize,
    mut on_batch: impl FnMut(f32, usize),
) {
    if worker.size() == 1 && batch == 1 && matches!(set.mode, Mode::Node) {
        // The same steps, written as the README shows them.
        for (tree, words) in set.trees {
            on_batch(model::train_step(model, optimizer, tree, words), 1);
        }
        return;
    }
    batched_epoch(worker, model, optimizer, set, batch, on_batch)
}

/// [`epoch`] with every step as batches are taken: scaled, summed across
/// workers, stepped.
pub fn batched_epoch<C: Communicator<f32>>(
    worker: &mut Worker<C>,
    model: &mut TreeLstm,
    optimizer: &mut Adagrad,
    set: &TrainingSet,
    batch: usize,
    mut on_batch: impl FnMut(f32, usize),
) {
    for start in (0..set.trees.len()).step_by(batch) {
        let len = batch.min(set.trees.len() - start);
        let scale = 1.0 / len as f32;
        let mut loss = 0.0;
        // Shares of equal work, not of equal counts: a tree costs in
        // proportion to its nodes, and the workers wait for each other at
        // every step.
        let nodes: Vec<usize> = set.trees[start..start + len]
            .iter()
            .map(|(tree, _)| tree.node_count())
            .collect();
        for k in worker.balanced_share(&nodes) {
            loss += set.backward(model, start + k, scale);
        }
        // The loss is summed with the gradients, in one collective.
        let mut loss = [loss];
        worker.all_reduce_gradients_with(model, &mut loss);
        optimizer.step(model);
        on_batch(loss[0], len);
    }
}
