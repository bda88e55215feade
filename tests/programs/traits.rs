//! `#[differentiable]` on a trait and its impls: static dispatch through a
//! generic parameter, dynamic dispatch through `Box<dyn Layer>` (a
//! `Sequential` of three different layers) and `&dyn Node`, a supertrait
//! (`Parameters`) that boxed layers keep, a default
//! method calling the others (and overridden by one impl), and recursion
//! through a trait object (a tree whose nodes are `Box<dyn Node>`). Every
//! gradient is checked against finite differences (f64).

use crate::common::{assert_gradients, constant, param};
use cps::prelude::*;

/// A layer of a network: a differentiable map from inputs to outputs, with
/// parameters (a supertrait, which boxed layers have too).
#[differentiable]
trait Layer: Parameters<f64> {
    /// The layer's output for `x` (a batch of rows).
    fn forward(&self, x: &Var<f64>) -> Var<f64>;

    /// The layer applied twice: a default method calling another.
    fn twice(&self, x: &Var<f64>) -> Var<f64> {
        let once = self.forward(x);
        self.forward(&once)
    }
}

#[derive(Parameters)]
struct Dense {
    w: Param<f64>,
    b: Param<f64>,
}

#[differentiable]
impl Layer for Dense {
    fn forward(&self, x: &Var<f64>) -> Var<f64> {
        x.matmul(&self.w) + &self.b
    }
}

#[derive(Parameters)]
struct Tanh;

#[differentiable]
impl Layer for Tanh {
    fn forward(&self, x: &Var<f64>) -> Var<f64> {
        x.tanh()
    }
}

#[derive(Parameters)]
struct Gate {
    scale: Param<f64>,
}

#[differentiable]
impl Layer for Gate {
    fn forward(&self, x: &Var<f64>) -> Var<f64> {
        x * &self.scale.sigmoid()
    }

    /// Overrides the default: the gate applied once, squared.
    fn twice(&self, x: &Var<f64>) -> Var<f64> {
        self.forward(x).square()
    }
}

/// Layers applied in turn, behind one trait.
#[derive(Parameters)]
struct Sequential {
    layers: Vec<Box<dyn Layer>>,
}

#[differentiable]
impl Sequential {
    fn forward(&self, x: &Var<f64>) -> Var<f64> {
        let mut h = x.clone();
        for layer in &self.layers {
            h = layer.forward(&h);
        }
        h
    }
}

#[differentiable]
fn sequential_loss(model: &Sequential, x: &Var<f64>) -> Var<f64> {
    model.forward(x).square().sum()
}

/// Static dispatch: a generic function over any layer.
#[differentiable]
fn generic_loss<L: Layer>(layer: &L, x: &Var<f64>) -> Var<f64> {
    layer.twice(x).square().sum()
}

fn dense(inputs: usize, outputs: usize, seed: u64) -> Dense {
    Dense {
        w: param(&[inputs, outputs], seed),
        b: param(&[outputs], seed + 1),
    }
}

#[test]
fn a_sequential_of_three_different_dyn_layers() {
    let mut model = Sequential {
        layers: vec![
            Box::new(dense(3, 4, 10)),
            Box::new(Tanh),
            Box::new(Gate {
                scale: param(&[4], 12),
            }),
            Box::new(dense(4, 2, 13)),
        ],
    };
    let x = constant(&[5, 3], 14);
    assert_gradients(&mut model, |model| sequential_loss(model, &x).backward());
}

#[test]
fn static_dispatch_and_a_default_method() {
    let mut layer = dense(3, 3, 20);
    let x = constant(&[2, 3], 21);
    assert_gradients(&mut layer, |layer| generic_loss(layer, &x).backward());
    let mut gate = Gate {
        scale: param(&[3], 22),
    };
    assert_gradients(&mut gate, |gate| generic_loss(gate, &x).backward());
}

#[test]
fn a_boxed_layer_is_a_layer_and_keeps_its_overrides() {
    let x = constant(&[2, 3], 31);
    let gate = Gate {
        scale: param(&[3], 30),
    };
    let direct = generic_loss(&gate, &x).eval().item();
    let boxed: Box<dyn Layer> = Box::new(Gate {
        scale: gate.scale.clone(),
    });
    // `twice` through the box runs the override, not the default.
    assert_eq!(generic_loss(&boxed, &x).eval().item(), direct);
    let expected = {
        let s = gate.scale.value().mapv(|v| 1.0 / (1.0 + (-v).exp()));
        let y = x.array() * &s;
        (&y * &y).mapv(|v| v * v).sum()
    };
    assert!((direct - expected).abs() < 1e-12, "{direct} vs {expected}");
}

// --- Recursion through a trait object --------------------------------------

/// A node of an expression tree.
#[differentiable]
trait Node {
    /// The node's value.
    fn value(&self, w: &Param<f64>) -> Var<f64>;
}

/// A leaf: one row of the embedding `w`.
struct Leaf(usize);

#[differentiable]
impl Node for Leaf {
    fn value(&self, w: &Param<f64>) -> Var<f64> {
        w.rows(&[self.0]).tanh()
    }
}

/// An inner node: the product of its children's values, squashed.
struct Inner {
    children: Vec<Box<dyn Node>>,
}

#[differentiable]
impl Node for Inner {
    fn value(&self, w: &Param<f64>) -> Var<f64> {
        let mut total = self.children[0].value(w);
        let mut i = 1;
        while i < self.children.len() {
            total = (total * self.children[i].value(w)).sin();
            i += 1;
        }
        total
    }
}

/// Generic over the node type: called with `Inner` and with `&dyn Node`.
#[differentiable]
fn tree_loss<N: Node>(tree: &N, w: &Param<f64>) -> Var<f64> {
    tree.value(w).sum()
}

#[test]
fn recursion_through_a_trait_object_tree() {
    let tree = Inner {
        children: vec![
            Box::new(Leaf(0)),
            Box::new(Inner {
                children: vec![Box::new(Leaf(1)), Box::new(Leaf(2)), Box::new(Leaf(0))],
            }),
            Box::new(Leaf(3)),
        ],
    };
    let mut w = param(&[4, 3], 40);
    assert_gradients(&mut w, |w| tree_loss(&tree, w).backward());
    // A borrowed trait object is a node too.
    let borrowed: &dyn Node = &tree;
    assert_gradients(&mut w, |w| tree_loss(&borrowed, w).backward());
    assert_eq!(
        tree_loss(&borrowed, &w).eval().item(),
        tree_loss(&tree, &w).eval().item()
    );
}

// --- A trait generic over the element type ------------------------------

/// A map of either element type.
#[differentiable]
trait Map<A: Element> {
    fn apply(&self, x: &Var<A>) -> Var<A>;
}

/// `x ↦ c·x²`.
struct ScaledSquare(f64);

#[differentiable]
impl<A: Element> Map<A> for ScaledSquare {
    fn apply(&self, x: &Var<A>) -> Var<A> {
        x.square() * self.0
    }
}

#[differentiable]
fn mapped_sum<A: Element>(maps: &[Box<dyn Map<A>>], x: &Var<A>) -> Var<A> {
    let mut h = x.clone();
    for map in maps {
        h = map.apply(&h);
    }
    h.sum()
}

#[test]
fn a_generic_trait_behind_boxes_in_both_element_types() {
    let maps32: Vec<Box<dyn Map<f32>>> =
        vec![Box::new(ScaledSquare(0.5)), Box::new(ScaledSquare(2.0))];
    let x32 = Var::constant(ndarray::array![1.0f32, 2.0]);
    // 2·(0.5·x²)² = 0.5·x⁴: 0.5 + 8.
    assert_eq!(mapped_sum(&maps32, &x32).eval().item(), 8.5);
    let maps64: Vec<Box<dyn Map<f64>>> =
        vec![Box::new(ScaledSquare(0.5)), Box::new(ScaledSquare(2.0))];
    let mut w = param(&[3], 50);
    assert_gradients(&mut w, |w| mapped_sum(&maps64, w.var()).backward());
}
