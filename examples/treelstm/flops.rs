//! The arithmetic of a training step, for the GFLOP/s the example reports.

use cps::data::Tree;

use crate::model::CLASSES;

/// Floating-point operations of one training step on `tree` (forward and
/// backward, multiply-add counted as two), counting the matrix products,
/// which dominate: leaf `3H x E` (forward; its weight gradient; no input
/// gradient when the embeddings are frozen), internal `5H x 2H` (forward,
/// weight gradient, input gradient), output `C x H` (the same three).
pub fn training_flops(tree: &Tree, embedding: usize, hidden: usize, train_embeddings: bool) -> f64 {
    let (e, h, c) = (embedding as f64, hidden as f64, CLASSES as f64);
    let leaves = tree.leaf_count() as f64;
    let internal = (tree.node_count() - tree.leaf_count()) as f64;
    let leaf = 2.0 * 3.0 * h * e * if train_embeddings { 3.0 } else { 2.0 };
    let inner = 2.0 * 5.0 * h * 2.0 * h * 3.0;
    let output = 2.0 * c * h * 3.0;
    leaves * leaf + internal * inner + (leaves + internal) * output
}
