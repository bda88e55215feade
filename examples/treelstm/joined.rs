//! The recursive model with the two subtrees of every node computed side
//! by side (`--mode joined`): `join(|| node(left), || node(right))`
//! instead of one call after the other. `join` runs each side as a
//! coroutine, and a product of a large matrix by a vector inside a side
//! waits until every side waits, so that the nodes of one height multiply
//! `U_int` together, forward and backward: the recursion stays a
//! recursion, and the runtime does the batching that `levels.rs` does by
//! hand.

use std::cell::RefCell;

use cps::data::{Node, Tree};
use cps::prelude::*;

use crate::model::{HiddenStates, TreeLstm, internal_cell, keep, leaf_cell, output_loss, shared};

/// The states of the subtree rooted at node `i`, as
/// [`node`](crate::model) computes them, with its two subtrees joined.
#[differentiable]
fn node(
    m: &TreeLstm,
    shared: &(Var, Var),
    tree: &Tree,
    i: usize,
    hidden: &HiddenStates,
) -> (Var, Var) {
    let (bias, leaf_gates) = shared;
    let (h, c) = match tree.node(i) {
        Node::Leaf { leaf, .. } => leaf_cell(m, leaf_gates, leaf),
        Node::Internal { left, right, .. } => {
            let (l, r) = join(
                || node(m, shared, tree, left, hidden),
                || node(m, shared, tree, right, hidden),
            );
            internal_cell(m, bias, l, r)
        }
    };
    keep(hidden, i, &h);
    (h, c)
}

/// The loss of [`tree_loss`](crate::model::tree_loss), with the subtrees
/// of every node joined: the same value bit for bit; the gradients of
/// what the sides share are summed in another order, so they agree to
/// rounding.
#[differentiable]
pub fn tree_loss(m: &TreeLstm, tree: &Tree, words: &[usize]) -> Var {
    let shared = shared(m, words);
    let hidden = RefCell::new(vec![None; tree.node_count()]);
    let _root = node(m, &shared, tree, tree.root(), &hidden);
    output_loss(m, tree, &hidden)
}
