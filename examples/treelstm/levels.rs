//! The same Tree-LSTM, computed level by level (`--mode level`, as the
//! PyTorch reference calls it too): all leaves of a tree in one matrix
//! product, then all internal nodes of each height in one product. The
//! arithmetic is the per-node model's (`model.rs`), so the per-tree losses
//! agree to rounding; what changes is that `U_int` is read once per level
//! instead of once per node.
//!
//! It is plain Rust too: a loop over the levels, with the nodes' states
//! kept as blocks of rows, one block per level, from which each level
//! gathers its children's rows (`rows_of`).

use cps::data::{Node, Tree};
use cps::prelude::*;

use crate::model::{TreeLstm, internal_bias};

/// The internal nodes of one height: the rows of their children's states.
pub struct Level {
    pub left: Vec<usize>,
    pub right: Vec<usize>,
}

/// A tree's nodes ordered for level-by-level computation. Every node has
/// a *slot*, its row in the state matrices: leaves take slots `0..leaves`
/// in word order, then internal nodes level by level, lowest first.
pub struct LevelPlan {
    pub levels: Vec<Level>,
    /// Each slot's sentiment label.
    pub labels: Vec<usize>,
}

impl LevelPlan {
    pub fn new(tree: &Tree) -> LevelPlan {
        let heights = tree.heights();
        let height = heights.iter().copied().max().unwrap_or(0);
        let mut slot = vec![0usize; tree.node_count()];
        let mut labels = vec![0usize; tree.node_count()];
        let mut levels: Vec<Level> = (0..height)
            .map(|_| Level {
                left: Vec::new(),
                right: Vec::new(),
            })
            .collect();
        for (i, node) in tree.nodes().iter().enumerate() {
            if let Node::Leaf { leaf, label } = *node {
                slot[i] = leaf;
                labels[leaf] = usize::from(label);
            }
        }
        let mut next = tree.leaf_count();
        for h in 1..=height {
            for (i, node) in tree.nodes().iter().enumerate() {
                if heights[i] != h {
                    continue;
                }
                if let Node::Internal { left, right, label } = *node {
                    let level = &mut levels[h - 1];
                    level.left.push(slot[left]);
                    level.right.push(slot[right]);
                    slot[i] = next;
                    labels[next] = usize::from(label);
                    next += 1;
                }
            }
        }
        LevelPlan { levels, labels }
    }
}

/// The leaves' states `(h, c)`, one row per leaf.
#[differentiable]
fn leaf_cells(m: &TreeLstm, words: &[usize]) -> (Var, Var) {
    let n = m.hidden();
    let gates = m.emb.rows(words).linear(&m.w_leaf) + &m.b_leaf;
    let i = gates.slice(1, 0, n).sigmoid();
    let o = gates.slice(1, n, 2 * n).sigmoid();
    let u = gates.slice(1, 2 * n, 3 * n).tanh();
    let c = i * u;
    let h = o * c.tanh();
    (h, c)
}

/// The states of the levels computed so far, one block of rows per level
/// (the leaves' first): slot `i` is row `i` of the blocks stacked. Each
/// level's computation takes them and hands them back with its own block
/// added, so they are moved, never copied or lent across the loop.
pub struct Blocks {
    h: Vec<Var>,
    c: Vec<Var>,
}

/// The next level's states, from its children's rows gathered from the
/// blocks of the levels below, added to the blocks.
#[differentiable]
fn next_level(m: &TreeLstm, bias: &Var, mut blocks: Blocks, level: &Level) -> Blocks {
    let n = m.hidden();
    let children = concat(
        &[
            &rows_of(&blocks.h, &level.left),
            &rows_of(&blocks.h, &level.right),
        ],
        1,
    );
    let gates = children.linear(&m.u_int) + bias;
    let sigmoids = gates.slice(1, 0, 4 * n).sigmoid();
    let u = gates.slice(1, 4 * n, 5 * n).tanh();
    let i = sigmoids.slice(1, 0, n);
    let f_l = sigmoids.slice(1, n, 2 * n);
    let f_r = sigmoids.slice(1, 2 * n, 3 * n);
    let o = sigmoids.slice(1, 3 * n, 4 * n);
    let c = i * u + f_l * rows_of(&blocks.c, &level.left) + f_r * rows_of(&blocks.c, &level.right);
    let h = o * c.tanh();
    blocks.h.push(h);
    blocks.c.push(c);
    blocks
}

/// The summed cross-entropy of every node's sentiment, as
/// [`tree_loss`](crate::model::tree_loss) computes it node by node.
#[differentiable]
pub fn tree_loss_by_level(m: &TreeLstm, plan: &LevelPlan, words: &[usize]) -> Var {
    let (leaf_h, leaf_c) = leaf_cells(m, words);
    let bias = internal_bias(m);
    let mut blocks = Blocks {
        h: Vec::with_capacity(plan.levels.len() + 1),
        c: Vec::with_capacity(plan.levels.len() + 1),
    };
    blocks.h.push(leaf_h);
    blocks.c.push(leaf_c);
    for level in &plan.levels {
        blocks = next_level(m, &bias, blocks, level);
    }
    let logits = concat(&blocks.h, 0).linear(&m.why) + &m.by;
    logits.cross_entropy(&plan.labels)
}
