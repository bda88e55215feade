//! `join`: two independent sub-computations run side by side, their
//! products of a weight matrix by a vector batched. Checked on a recursive
//! model over trees: finite differences, the same values as the sequential
//! program and gradients equal to rounding, deep sides, panics.

use crate::common::{assert_gradients, param};
use cps::prelude::*;

/// A user's own tree type.
enum Tree {
    Leaf(usize),
    Node(Box<Tree>, Box<Tree>),
}

const WIDTH: usize = 3;

#[derive(Parameters)]
struct TreeRnn {
    embed: Param<f64>,
    w: Param<f64>,
    b: Param<f64>,
    out: Param<f64>,
}

fn model(seed: u64) -> TreeRnn {
    TreeRnn {
        embed: param(&[5, WIDTH], seed),
        w: param(&[WIDTH, 2 * WIDTH], seed + 1),
        b: param(&[WIDTH], seed + 2),
        out: param(&[2, WIDTH], seed + 3),
    }
}

/// A node's loss, from its state: a matrix times a vector too.
#[differentiable]
fn node_loss(m: &TreeRnn, h: &Var<f64>) -> Var<f64> {
    m.out.matmul(h).square().sum()
}

/// The summed loss of every node of the subtree, and its root's state;
/// with `joined`, the two subtrees of every node side by side.
#[differentiable]
fn encode(m: &TreeRnn, t: &Tree, joined: bool) -> (Var<f64>, Var<f64>) {
    match t {
        Tree::Leaf(word) => {
            let h = m.embed.rows(&[*word]).reshape(&[WIDTH]).tanh();
            (node_loss(m, &h), h)
        }
        Tree::Node(l, r) => {
            let ((loss_l, h_l), (loss_r, h_r)) = if joined {
                join(|| encode(m, l, true), || encode(m, r, true))
            } else {
                let left = encode(m, l, false);
                let right = encode(m, r, false);
                (left, right)
            };
            let h = (m.w.matmul(&concat(&[&h_l, &h_r], 0)) + &m.b).tanh();
            (loss_l + loss_r + node_loss(m, &h), h)
        }
    }
}

#[differentiable]
fn tree_loss(m: &TreeRnn, t: &Tree, joined: bool) -> Var<f64> {
    let (loss, _h) = encode(m, t, joined);
    loss
}

fn leaf(word: usize) -> Box<Tree> {
    Box::new(Tree::Leaf(word))
}

fn node(l: Box<Tree>, r: Box<Tree>) -> Box<Tree> {
    Box::new(Tree::Node(l, r))
}

/// Unbalanced, so that nodes of one height sit at several depths.
fn sample_tree() -> Tree {
    *node(
        node(leaf(0), node(leaf(2), leaf(4))),
        node(
            node(leaf(1), node(node(leaf(3), leaf(0)), leaf(2))),
            leaf(4),
        ),
    )
}

/// Batches every product, however small (these matrices are tiny).
fn batch_everything() {
    cps::join::set_batch_threshold(1);
}

/// The largest elementwise difference of two gradients.
fn largest_difference(a: &ndarray::ArrayD<f64>, b: &ndarray::ArrayD<f64>) -> f64 {
    a.iter()
        .zip(b)
        .fold(0.0f64, |worst, (x, y)| worst.max((x - y).abs()))
}

#[test]
fn joined_gradients_match_finite_differences() {
    batch_everything();
    let tree = sample_tree();
    let mut m = model(10);
    assert_gradients(&mut m, |m| tree_loss(m, &tree, true).backward());
}

#[test]
fn join_computes_the_sequential_values_and_gradients() {
    batch_everything();
    let tree = sample_tree();
    let m = model(20);
    let gradients = |m: &TreeRnn| {
        let mut all = Vec::new();
        m.visit(&mut |name, p| all.push((name.to_string(), p.take_grad())));
        all
    };
    let by_join = tree_loss(&m, &tree, true).backward();
    let joined_grads = gradients(&m);
    let in_sequence = tree_loss(&m, &tree, false).backward();
    let sequential_grads = gradients(&m);
    // The forward pass is the same arithmetic, batched or not.
    assert_eq!(by_join.to_bits(), in_sequence.to_bits());
    for ((name, a), (_, b)) in joined_grads.iter().zip(&sequential_grads) {
        let (a, b) = (
            a.as_ref().expect("a gradient"),
            b.as_ref().expect("a gradient"),
        );
        let scale = b.iter().fold(1e-12f64, |s, v| s.max(v.abs()));
        let worst = largest_difference(a, b);
        assert!(
            worst <= 1e-12 * scale,
            "{name}: differs by {worst} (scale {scale})"
        );
        assert!(
            a.iter().any(|&v| v != 0.0),
            "{name}: no gradient reached it"
        );
    }
}

/// A side that runs far deeper than its own stack: it moves on to stack
/// segments, and the join still batches and back-propagates.
#[differentiable]
fn long_chain(w: &Param<f64>, x: &Var<f64>, steps: usize) -> Var<f64> {
    let mut h = w.matmul(x).tanh();
    for _ in 0..steps {
        h = h * 0.999 + 0.001;
    }
    h.sum()
}

#[differentiable]
fn two_long_chains(w: &Param<f64>, x: &Var<f64>, y: &Var<f64>, steps: usize) -> Var<f64> {
    let (a, b) = join(|| long_chain(w, x, steps), || long_chain(w, y, steps));
    a + b
}

#[test]
fn deep_sides_run_on_stack_segments() {
    batch_everything();
    let w = param(&[WIDTH, WIDTH], 30);
    let x = crate::common::constant(&[WIDTH], 31);
    let y = crate::common::constant(&[WIDTH], 32);
    let steps = 100_000;
    let joined = two_long_chains(&w, &x, &y, steps).backward();
    let joined_grad = w.take_grad().expect("a gradient");
    let a = long_chain(&w, &x, steps).backward();
    let b = long_chain(&w, &y, steps).backward();
    let sequential_grad = w.take_grad().expect("a gradient");
    assert_eq!(joined.to_bits(), (a + b).to_bits());
    let worst = largest_difference(&joined_grad, &sequential_grad);
    assert!(worst <= 1e-12, "gradients differ by {worst}");
}

#[differentiable]
fn failing_side(w: &Param<f64>, x: &Var<f64>) -> Var<f64> {
    let h = w.matmul(x);
    if h.value().len() == WIDTH {
        panic!("the side fails");
    }
    h.sum()
}

#[differentiable]
fn join_with_a_failing_side(w: &Param<f64>, x: &Var<f64>) -> Var<f64> {
    let (a, b) = join(|| long_chain(w, x, 10), || failing_side(w, x));
    a + b
}

/// A panic in a side reaches the caller, and the thread can run joins
/// afterwards.
#[test]
fn a_panic_in_a_side_reaches_the_caller() {
    batch_everything();
    let w = param(&[WIDTH, WIDTH], 40);
    let x = crate::common::constant(&[WIDTH], 41);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        join_with_a_failing_side(&w, &x).backward()
    }));
    let message = caught.expect_err("the side's panic");
    assert_eq!(message.downcast_ref::<&str>(), Some(&"the side fails"));
    w.zero_grad();
    let tree = sample_tree();
    let m = model(42);
    let after = tree_loss(&m, &tree, true).backward();
    assert_eq!(
        after.to_bits(),
        tree_loss(&m, &tree, false).backward().to_bits()
    );
}
