//! Accuracy on the development and test sets: the recursive model run
//! forward only, each node's predicted class recorded as it is reached.

use std::cell::RefCell;

use cps::data::{Node, Tree};
use cps::prelude::*;

use crate::model::{TreeLstm, internal_cell, leaf_cell, logits, shared};

/// The states of the subtree at `i`, recording each node's predicted class
/// into `predictions` (indexed by node).
#[differentiable]
fn classify(
    m: &TreeLstm,
    shared: &(Var, Var),
    tree: &Tree,
    i: usize,
    predictions: &RefCell<Vec<u8>>,
) -> (Var, Var) {
    let (bias, leaf_gates) = shared;
    let (h, c) = match tree.node(i) {
        Node::Leaf { leaf, .. } => leaf_cell(m, leaf_gates, leaf),
        Node::Internal { left, right, .. } => {
            let l = classify(m, shared, tree, left, predictions);
            let r = classify(m, shared, tree, right, predictions);
            internal_cell(m, bias, l, r)
        }
    };
    let scores = logits(m, &h);
    record(predictions, i, &scores);
    (h, c)
}

/// Stores the best-scoring class of node `i`.
fn record(predictions: &RefCell<Vec<u8>>, i: usize, scores: &Var) {
    let scores = scores.array();
    let best = (0..scores.len()).fold(0, |best, k| {
        if scores[[k]] > scores[[best]] {
            k
        } else {
            best
        }
    });
    predictions.borrow_mut()[i] = best as u8;
}

/// Each node's predicted class, by forward evaluation only.
pub fn predict(m: &TreeLstm, tree: &Tree, words: &[usize]) -> Vec<u8> {
    let predictions = RefCell::new(vec![0u8; tree.node_count()]);
    let shared = shared(m, words).eval();
    classify(m, &shared, tree, tree.root(), &predictions).eval();
    predictions.into_inner()
}

/// Accuracy over a set of trees: (root accuracy, all-node accuracy).
pub fn accuracy(m: &TreeLstm, trees: &[(Tree, Vec<usize>)]) -> (f64, f64) {
    let (mut roots, mut nodes, mut total) = (0usize, 0usize, 0usize);
    for (tree, words) in trees {
        let predictions = predict(m, tree, words);
        roots += usize::from(predictions[tree.root()] == tree.root_label());
        nodes += predictions
            .iter()
            .zip(tree.labels())
            .filter(|(p, l)| **p == *l)
            .count();
        total += tree.node_count();
    }
    (
        roots as f64 / trees.len().max(1) as f64,
        nodes as f64 / total.max(1) as f64,
    )
}
