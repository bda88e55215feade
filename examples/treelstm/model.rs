//! The binary constituency Tree-LSTM of Tai et al. (2015), in the variant
//! of Lantern's benchmark: the model of the PyTorch reference, written as
//! one recursive differentiable function over the tree.

use std::cell::RefCell;
use std::path::Path;

use cps::data::{Node, Tree, Vocab};
use cps::prelude::*;
use ndarray::{Array, Array2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// Sentiment classes of the treebank (labels 0-4).
pub const CLASSES: usize = 5;

/// The trainable parameters, in the reference's order and under its names
/// (see `names` below). Gate matrices are fused as in the reference:
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

/// Names of the parameters in the reference's parameter files, in the
/// order `Parameters::visit` walks the fields.
pub const FILE_NAMES: [(&str, &str); 10] = [
    ("emb", "emb"),
    ("w_leaf", "W_leaf"),
    ("b_leaf", "b_leaf"),
    ("u_int", "U_int"),
    ("b_i", "b_i"),
    ("b_f", "b_f"),
    ("b_o", "b_o"),
    ("b_u", "b_u"),
    ("why", "Why"),
    ("by", "by"),
];

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

/// What every node of a tree shares: the internal gates' bias, and the
/// leaves' gate inputs `[x_1 ... x_L]ᵀ W_leafᵀ`, one row per leaf: one
/// matrix product per tree rather than a matrix-vector product per leaf
/// (the same numbers; the weights are read once instead of once a leaf).
#[differentiable]
fn shared(m: &TreeLstm, words: &[usize]) -> (Var, Var) {
    let leaf_gates = m.emb.rows(words).linear(&m.w_leaf);
    (internal_bias(m), leaf_gates)
}

/// A leaf: `[i; o; u] = W_leaf x + b_leaf`, `c = i * u`, `h = o * tanh(c)`.
#[differentiable]
fn leaf_cell(m: &TreeLstm, leaf_gates: &Var, leaf: usize) -> (Var, Var) {
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
fn internal_cell(m: &TreeLstm, bias: &Var, left: (Var, Var), right: (Var, Var)) -> (Var, Var) {
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
fn logits(m: &TreeLstm, h: &Var) -> Var {
    m.why.matmul(h) + &m.by
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

/// The hidden states of a tree's nodes, kept by node index as the
/// recursion computes them, for the output layer to read all at once.
type HiddenStates = RefCell<Vec<Option<Var>>>;

/// The states of the subtree rooted at node `i`, keeping each node's
/// hidden state in `hidden` (by node index). With `joined`, the two
/// subtrees of a node run side by side (`join`), so that the runtime
/// batches the products of nodes of one height with `U_int`; the values
/// are the same, the gradients equal to rounding.
#[differentiable]
fn node(
    m: &TreeLstm,
    shared: &(Var, Var),
    tree: &Tree,
    i: usize,
    joined: bool,
    hidden: &HiddenStates,
) -> (Var, Var) {
    let (bias, leaf_gates) = shared;
    let (h, c) = match tree.node(i) {
        Node::Leaf { leaf, .. } => leaf_cell(m, leaf_gates, leaf),
        Node::Internal { left, right, .. } => {
            let (l, r) = if joined {
                join(
                    || node(m, shared, tree, left, true, hidden),
                    || node(m, shared, tree, right, true, hidden),
                )
            } else {
                let l = node(m, shared, tree, left, false, hidden);
                let r = node(m, shared, tree, right, false, hidden);
                (l, r)
            };
            internal_cell(m, bias, l, r)
        }
    };
    keep(hidden, i, &h);
    (h, c)
}

/// Keeps node `i`'s hidden state for the output layer.
fn keep(hidden: &HiddenStates, i: usize, h: &Var) {
    hidden.borrow_mut()[i] = Some(h.clone());
}

/// The summed cross-entropy of every node's sentiment: the output layer
/// on all the hidden states at once, one row per node in index order (as
/// the reference does in both its modes).
#[differentiable]
fn output_loss(m: &TreeLstm, tree: &Tree, hidden: &HiddenStates) -> Var {
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

/// The loss of a whole tree: the sum of the cross-entropy at every node,
/// node by node.
#[differentiable]
pub fn tree_loss(m: &TreeLstm, tree: &Tree, words: &[usize]) -> Var {
    recursive_loss(m, tree, words, false)
}

/// [`tree_loss`] with the subtrees of every node joined (see [`node`]).
#[differentiable]
pub fn tree_loss_joined(m: &TreeLstm, tree: &Tree, words: &[usize]) -> Var {
    recursive_loss(m, tree, words, true)
}

/// The loss of the recursive model, its subtrees joined or not.
#[differentiable]
fn recursive_loss(m: &TreeLstm, tree: &Tree, words: &[usize], joined: bool) -> Var {
    let shared = shared(m, words);
    let hidden = RefCell::new(vec![None; tree.node_count()]);
    let _root = node(m, &shared, tree, tree.root(), joined, &hidden);
    output_loss(m, tree, &hidden)
}

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

/// Pairs each tree with its words' vocabulary indices.
pub fn encode(vocab: &Vocab, trees: Vec<Tree>) -> Vec<(Tree, Vec<usize>)> {
    trees
        .into_iter()
        .map(|tree| {
            let words = vocab.indices(&tree);
            (tree, words)
        })
        .collect()
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

/// Loads the PyTorch reference's initial parameters (`--save-init`).
pub fn load_reference_init(model: &mut TreeLstm, path: &Path) -> Result<(), String> {
    let tensors = cps::io::read_tensors::<f32>(path).map_err(|e| e.to_string())?;
    let mut problem = None;
    let mut index = 0;
    model.visit_mut(&mut |name, param| {
        let file_name = FILE_NAMES[index].1;
        debug_assert_eq!(FILE_NAMES[index].0, name);
        index += 1;
        match tensors.get(file_name) {
            Some(t) if t.shape() == param.shape() => param.set_value(t.clone()),
            Some(t) => {
                problem.get_or_insert(format!(
                    "{}: tensor `{file_name}` has shape {:?}, the model expects {:?} (same --data, --limit, sizes?)",
                    path.display(),
                    t.shape(),
                    param.shape()
                ));
            }
            None => {
                problem.get_or_insert(format!("{}: no tensor named `{file_name}`", path.display()));
            }
        }
    });
    problem.map_or(Ok(()), Err)
}
