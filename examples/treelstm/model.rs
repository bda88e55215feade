//! The binary constituency Tree-LSTM of Tai et al. (2015), in the variant
//! of Lantern's benchmark: the model of the PyTorch reference, written as
//! one recursive differentiable function over the tree (`node`).
//!
//! The other ways of training the same model live beside it, each in
//! its own file: `joined.rs` (sibling subtrees side by side), `levels.rs`
//! (all nodes of one height at once) and `parallel.rs` (several trees per
//! step, one per thread).

use std::cell::RefCell;

use cps::data::{Node, Tree, Vocab};
use cps::prelude::*;
use ndarray::{Array, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Sentiment classes of the treebank (labels 0-4).
pub const CLASSES: usize = 5;

/// The trainable parameters, in the reference's order (its names are in
/// `reference_init.rs`). Gate matrices are fused as in the reference:
/// `w_leaf` rows are the gates i, o, u; `u_int` rows are i, f_l, f_r, o, u
/// and its columns read `[h_l; h_r]`. The two forget gates share `b_f`.
#[derive(Parameters)]
pub struct TreeLstm {
    /// Word vectors, one row per vocabulary entry (frozen unless trained).
    pub emb: Param,
    pub w_leaf: Param,
    pub b_leaf: Param,
    pub u_int: Param,
    pub b_i: Param,
    pub b_f: Param,
    pub b_o: Param,
    pub b_u: Param,
    pub why: Param,
    pub by: Param,
}

impl TreeLstm {
    /// A model initialised as the reference does it (with our own random
    /// stream): parameters N(0, 1) * 0.01, word vectors N(0, emb_std^2),
    /// the unknown word's row uniform in [-0.05, 0.05).
    pub fn new(
        vocabulary: usize,
        embedding: usize,
        hidden: usize,
        emb_std: f32,
        seed: u64,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let standard = Normal::new(0.0f32, 1.0).expect("a valid normal distribution");
        let mut small = |shape: &[usize]| {
            Param::new(Array::from_shape_fn(shape, |_| {
                standard.sample(&mut rng) * 0.01
            }))
        };
        let (w_leaf, b_leaf) = (small(&[3 * hidden, embedding]), small(&[3 * hidden]));
        let u_int = small(&[5 * hidden, 2 * hidden]);
        let (b_i, b_f, b_o, b_u) = (
            small(&[hidden]),
            small(&[hidden]),
            small(&[hidden]),
            small(&[hidden]),
        );
        let (why, by) = (small(&[CLASSES, hidden]), small(&[CLASSES]));
        let mut emb = Array2::from_shape_fn((vocabulary, embedding), |_| {
            standard.sample(&mut rng) * emb_std
        });
        for v in emb.row_mut(0) {
            *v = rng.random_range(-0.05..0.05);
        }
        let mut emb = Param::new(emb);
        emb.set_trainable(false);
        TreeLstm {
            emb,
            w_leaf,
            b_leaf,
            u_int,
            b_i,
            b_f,
            b_o,
            b_u,
            why,
            by,
        }
    }

    /// The hidden size.
    pub fn hidden(&self) -> usize {
        self.b_i.len()
    }
}

/// Pairs each tree with its words' vocabulary indices, the model's input.
pub fn encode(vocab: &Vocab, trees: Vec<Tree>) -> Vec<(Tree, Vec<usize>)> {
    trees
        .into_iter()
        .map(|tree| {
            let words = vocab.indices(&tree);
            (tree, words)
        })
        .collect()
}

/// What every node of a tree shares: the internal gates' bias, and the
/// leaves' gate inputs `[x_1 ... x_L]ᵀ W_leafᵀ`, one row per leaf: one
/// matrix product per tree rather than a matrix-vector product per leaf
/// (the same numbers; the weights are read once instead of once a leaf).
#[differentiable]
pub fn shared(m: &TreeLstm, words: &[usize]) -> (Var, Var) {
    let leaf_gates = m.emb.rows(words).linear(&m.w_leaf);
    (internal_bias(m), leaf_gates)
}

/// The bias of the internal gates, `[b_i; b_f; b_f; b_o; b_u]`.
#[differentiable]
pub fn internal_bias(m: &TreeLstm) -> Var {
    concat(
        &[
            m.b_i.var(),
            m.b_f.var(),
            m.b_f.var(),
            m.b_o.var(),
            m.b_u.var(),
        ],
        0,
    )
}

/// A leaf: `[i; o; u] = W_leaf x + b_leaf`, `c = i * u`, `h = o * tanh(c)`.
#[differentiable]
pub fn leaf_cell(m: &TreeLstm, leaf_gates: &Var, leaf: usize) -> (Var, Var) {
    let n = m.hidden();
    let gates = leaf_gates.slice(0, leaf, leaf + 1).reshape(&[3 * n]) + &m.b_leaf;
    let i = gates.slice(0, 0, n).sigmoid();
    let o = gates.slice(0, n, 2 * n).sigmoid();
    let u = gates.slice(0, 2 * n, 3 * n).tanh();
    let c = i * u;
    let h = o * c.tanh();
    (h, c)
}

/// An internal node: `[i; f_l; f_r; o; u] = U [h_l; h_r] + b`,
/// `c = i * u + f_l * c_l + f_r * c_r`, `h = o * tanh(c)`.
#[differentiable]
pub fn internal_cell(m: &TreeLstm, bias: &Var, left: (Var, Var), right: (Var, Var)) -> (Var, Var) {
    let n = m.hidden();
    let (h_l, c_l) = left;
    let (h_r, c_r) = right;
    let gates = m.u_int.matmul(&concat(&[&h_l, &h_r], 0)) + bias;
    let sigmoids = gates.slice(0, 0, 4 * n).sigmoid();
    let u = gates.slice(0, 4 * n, 5 * n).tanh();
    let i = sigmoids.slice(0, 0, n);
    let f_l = sigmoids.slice(0, n, 2 * n);
    let f_r = sigmoids.slice(0, 2 * n, 3 * n);
    let o = sigmoids.slice(0, 3 * n, 4 * n);
    let c = i * u + f_l * c_l + f_r * c_r;
    let h = o * c.tanh();
    (h, c)
}

/// The output layer: class scores `Why h + by`.
#[differentiable]
pub fn logits(m: &TreeLstm, h: &Var) -> Var {
    m.why.matmul(h) + &m.by
}

/// The hidden states of a tree's nodes, kept by node index as the
/// recursion computes them, so that the output layer runs once per tree
/// on all of them (as the reference does).
pub type HiddenStates = RefCell<Vec<Option<Var>>>;

// region: readme-sample
/// The states (h, c) of the subtree rooted at node `i`; every node's
/// hidden state is kept in `hidden` for the output layer.
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
            let l = node(m, shared, tree, left, hidden); // recursion: just a call
            let r = node(m, shared, tree, right, hidden);
            internal_cell(m, bias, l, r)
        }
    };
    keep(hidden, i, &h);
    (h, c)
}

/// The loss of a whole tree: the cross-entropy of every node's sentiment, summed.
#[differentiable]
pub fn tree_loss(m: &TreeLstm, tree: &Tree, words: &[usize]) -> Var {
    let shared = shared(m, words);
    let hidden = RefCell::new(vec![None; tree.node_count()]);
    let _root = node(m, &shared, tree, tree.root(), &hidden);
    output_loss(m, tree, &hidden)
}

/// One step of training on one tree; returns the tree's loss.
pub fn train_step(
    model: &mut TreeLstm,
    optimizer: &mut Adagrad,
    tree: &Tree,
    words: &[usize],
) -> f32 {
    let loss = tree_loss(model, tree, words).backward(); // forward, then backward
    optimizer.step(model); // the gradients sit on the Params
    loss
}
// endregion: readme-sample

/// Keeps node `i`'s hidden state for the output layer.
pub fn keep(hidden: &HiddenStates, i: usize, h: &Var) {
    hidden.borrow_mut()[i] = Some(h.clone());
}

/// The summed cross-entropy of every node's sentiment: the output layer
/// on all the hidden states at once, one row per node in index order (as
/// the reference does in both its modes).
#[differentiable]
pub fn output_loss(m: &TreeLstm, tree: &Tree, hidden: &HiddenStates) -> Var {
    let states = hidden
        .take()
        .into_iter()
        .map(|h| h.expect("the recursion keeps every node's hidden state"))
        .collect::<Vec<Var>>();
    let rows = states.iter().collect::<Vec<&Var>>();
    let labels = tree.labels().map(usize::from).collect::<Vec<usize>>();
    let every_h = concat(&rows, 0).reshape(&[rows.len(), m.hidden()]);
    let logits = every_h.linear(&m.why) + &m.by;
    logits.cross_entropy(&labels)
}
