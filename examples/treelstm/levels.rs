//! The same Tree-LSTM, computed level by level: all leaves of a tree in
//! one matrix product, then all internal nodes of each height in one
//! product (what the PyTorch reference calls `--mode level`). The
//! arithmetic is the per-node model's (`model.rs`), so the per-tree losses
//! agree to rounding; what changes is that `U_int` is read once per level
//! instead of once per node.
//!
//! It is plain Rust too: a loop over the levels, with the nodes' states
//! kept as blocks of rows, one block per level, from which each level
//! gathers its children's rows (`rows_of`).

use std::rc::Rc;

use cps::data::{Node, Tree};
use cps::prelude::*;
use smallvec::SmallVec;

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

/// The blocks of states of the levels computed so far, one link per
/// level, the newest first. A level's computation holds what it was lent
/// until its backward step, while the loop goes on to add the next block:
/// a `Vec` of blocks lent to it would stay borrowed and could not grow.
/// An `Rc` is lent as a copy of the handle, so each level links a new
/// block onto the shared ones below, allocating only the link.
pub struct Blocks {
    h: Var,
    c: Var,
    below: Option<Rc<Blocks>>,
}

/// Blocks of states in slot order, as `rows_of` takes them (inline for
/// trees of up to 63 levels; SST's deepest has 46).
type Tables<'a> = SmallVec<[&'a Var; 64]>;

impl Blocks {
    /// The hidden and the cell states of every level so far, in slot
    /// order (the leaves' block first), so that slot `i` is row `i` of
    /// the blocks stacked.
    fn tables(&self) -> (Tables<'_>, Tables<'_>) {
        let (mut hs, mut cs) = (Tables::new(), Tables::new());
        let mut link = Some(self);
        while let Some(blocks) = link {
            hs.push(&blocks.h);
            cs.push(&blocks.c);
            link = blocks.below.as_deref();
        }
        hs.reverse();
        cs.reverse();
        (hs, cs)
    }
}

/// The states of one level's nodes from their children's rows, gathered
/// from the blocks of the levels below.
#[differentiable]
fn level_cells(m: &TreeLstm, bias: &Var, below: &Blocks, level: &Level) -> (Var, Var) {
    let n = m.hidden();
    let (hs, cs) = below.tables();
    let children = concat(
        &[&rows_of(&hs, &level.left), &rows_of(&hs, &level.right)],
        1,
    );
    let gates = children.linear(&m.u_int) + bias;
    let sigmoids = gates.slice(1, 0, 4 * n).sigmoid();
    let u = gates.slice(1, 4 * n, 5 * n).tanh();
    let i = sigmoids.slice(1, 0, n);
    let f_l = sigmoids.slice(1, n, 2 * n);
    let f_r = sigmoids.slice(1, 2 * n, 3 * n);
    let o = sigmoids.slice(1, 3 * n, 4 * n);
    let c = i * u + f_l * rows_of(&cs, &level.left) + f_r * rows_of(&cs, &level.right);
    let h = o * c.tanh();
    (h, c)
}

/// The summed cross-entropy of every node's sentiment, as
/// [`tree_loss`](crate::model::tree_loss) computes it node by node.
#[differentiable]
pub fn tree_loss_by_level(m: &TreeLstm, plan: &LevelPlan, words: &[usize]) -> Var {
    let (leaf_h, leaf_c) = leaf_cells(m, words);
    let bias = internal_bias(m);
    let mut blocks = Rc::new(Blocks {
        h: leaf_h,
        c: leaf_c,
        below: None,
    });
    for level in &plan.levels {
        let (h, c) = level_cells(m, &bias, &blocks, level);
        blocks = Rc::new(Blocks {
            h,
            c,
            below: Some(blocks),
        });
    }
    let (every_h, _every_c) = blocks.tables();
    let logits = concat(&every_h, 0).linear(&m.why) + &m.by;
    logits.cross_entropy(&plan.labels)
}
