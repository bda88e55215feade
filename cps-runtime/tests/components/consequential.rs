//! The consequentialist optimizer wrapper: its invariant (each sample's
//! output moves by exactly `−μ·δ_b`), its direction against the formula
//! written out, and how it hands that direction to the wrapped optimizers.

use cps_runtime::optim::{Adam, Consequential, Damping, LossScale, Optimizer, Sgd};
use cps_runtime::*;
use ndarray::{Array1, Array2, Ix2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(rows: usize, cols: usize, rng: &mut StdRng) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-1.0..1.0))
}

/// A dense layer `z = x·Wᵀ + b` with squared error against `targets`,
/// as the batch's mean (or sum) of `½‖z_b − t_b‖²`: back-propagates and
/// returns the outputs before the step.
fn backward(
    w: &Param<f64>,
    b: &Param<f64>,
    x: &Array2<f64>,
    targets: &Array2<f64>,
    mean: bool,
) -> Array2<f64> {
    let z = outputs(w, b, x);
    let scale = if mean { 0.5 / x.nrows() as f64 } else { 0.5 };
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        Var::constant(x.clone()).linear(w).bind(|y| {
            (y + b).bind(|z| {
                (z - Var::constant(targets.clone())).bind(|e| {
                    e.square()
                        .bind(|s| s.sum().bind(|t| (t * scale).bind(&mut *k)))
                })
            })
        })
    })
    .backward();
    z
}

fn outputs(w: &Param<f64>, b: &Param<f64>, x: &Array2<f64>) -> Array2<f64> {
    let w = w.array().clone().into_dimensionality::<Ix2>().unwrap();
    let b = b
        .array()
        .clone()
        .into_dimensionality::<ndarray::Ix1>()
        .unwrap();
    x.dot(&w.t()) + &b
}

/// One step of `optimizer` on the model `[w, b]`, which it owns while
/// stepping (a `Param` handle kept elsewhere would be left behind: a
/// parameter's value is copied on write when shared).
fn stepped(
    optimizer: &mut dyn Optimizer<f64>,
    w: Param<f64>,
    b: Param<f64>,
) -> (Param<f64>, Param<f64>) {
    let mut model = vec![w, b];
    optimizer.step(&mut model);
    let b = model.pop().unwrap();
    (model.pop().unwrap(), b)
}

fn layer(inputs: usize, outputs: usize, rng: &mut StdRng) -> (Param<f64>, Param<f64>) {
    let w = Param::new(random(outputs, inputs, rng));
    let b = Param::new(Array1::from_shape_fn(outputs, |_| {
        rng.random_range(-1.0..1.0)
    }));
    (w, b)
}

/// With ε = 0 and a batch no larger than the layer's width, one
/// consequentialist SGD step moves each sample's output by exactly
/// `−μ·δ_b`; plain SGD (the negative control) does not.
#[test]
fn each_sample_moves_by_its_own_gradient() {
    let mut rng = StdRng::seed_from_u64(3);
    for (batch, inputs, outputs_count) in [(4, 6, 3), (6, 6, 2), (1, 3, 4)] {
        let (w, b) = layer(inputs, outputs_count, &mut rng);
        let x = random(batch, inputs, &mut rng);
        let targets = random(batch, outputs_count, &mut rng);
        let mu = 0.3;
        let mut optimizer = Consequential::new(Sgd::new(mu)).damping(Damping::Fixed(0.0));
        optimizer.layer(&w, Some(&b));
        let before = backward(&w, &b, &x, &targets, true);
        let (w, b) = stepped(&mut optimizer, w, b);
        let moved = outputs(&w, &b, &x) - &before;
        let wanted = (&before - &targets) * -mu;
        let worst = (&moved - &wanted)
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(worst < 1e-9, "B {batch}, n {inputs}: off by {worst}");

        let (w, b) = layer(inputs, outputs_count, &mut rng);
        let before = backward(&w, &b, &x, &targets, true);
        let (w, b) = stepped(&mut Sgd::new(mu), w, b);
        let moved = outputs(&w, &b, &x) - &before;
        let wanted = (&before - &targets) * -mu;
        let off = (&moved - &wanted)
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        if batch > 1 {
            assert!(off > 1e-3, "plain SGD should not satisfy the invariant");
        }
    }
}

/// The direction handed to the optimizer is `δᵀ(A'A'ᵀ + εI)⁻¹A'` (A' the
/// inputs with a column of ones), computed here with an explicit inverse
/// by Gauss–Jordan elimination, for a batch larger than the width (ε > 0
/// needed) and the default damping `1e-3·tr(A'A'ᵀ)/B`.
#[test]
fn the_direction_is_the_formula() {
    let mut rng = StdRng::seed_from_u64(8);
    let (batch, inputs, outputs_count) = (10, 4, 3);
    let (w, b) = layer(inputs, outputs_count, &mut rng);
    let x = random(batch, inputs, &mut rng);
    let targets = random(batch, outputs_count, &mut rng);
    let (w0, b0) = (w.array().clone(), b.array().clone());
    let mut optimizer = Consequential::new(Sgd::new(1.0));
    optimizer.layer(&w, Some(&b));
    let before = backward(&w, &b, &x, &targets, true);
    let (w, b) = stepped(&mut optimizer, w, b);

    let mut a = Array2::ones((batch, inputs + 1));
    a.slice_mut(ndarray::s![.., ..inputs]).assign(&x);
    let mut gram = a.dot(&a.t());
    let epsilon = 1e-3 * gram.diag().sum() / batch as f64;
    gram.diag_mut().mapv_inplace(|g| g + epsilon);
    let delta = &before - &targets; // per-sample gradients
    let direction = delta.t().dot(&inverse(&gram)).dot(&a);
    let w_step = &w0 - w.array();
    let b_step = &b0 - b.array();
    for i in 0..outputs_count {
        for j in 0..inputs {
            assert!((w_step[[i, j]] - direction[[i, j]]).abs() < 1e-9);
        }
        assert!((b_step[[i]] - direction[[i, inputs]]).abs() < 1e-9);
    }
}

fn inverse(m: &Array2<f64>) -> Array2<f64> {
    let n = m.nrows();
    let mut a = m.clone();
    let mut inv = Array2::eye(n);
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[[i, col]].abs().total_cmp(&a[[j, col]].abs()))
            .unwrap();
        for k in 0..n {
            a.swap([col, k], [pivot, k]);
            inv.swap([col, k], [pivot, k]);
        }
        let p = a[[col, col]];
        a.row_mut(col).mapv_inplace(|v| v / p);
        inv.row_mut(col).mapv_inplace(|v| v / p);
        for r in 0..n {
            if r != col {
                let f = a[[r, col]];
                let (pivot_a, pivot_inv) = (a.row(col).to_owned(), inv.row(col).to_owned());
                a.row_mut(r).scaled_add(-f, &pivot_a);
                inv.row_mut(r).scaled_add(-f, &pivot_inv);
            }
        }
    }
    inv
}

/// A summed loss with `LossScale::Sum` takes the step a mean loss takes
/// with the default `LossScale::Mean`.
#[test]
fn mean_and_sum_losses_agree_when_said_so() {
    let mut rng = StdRng::seed_from_u64(5);
    let x = random(5, 7, &mut rng);
    let targets = random(5, 2, &mut rng);
    let run = |mean: bool, scale: LossScale<f64>| {
        let (w, b) = layer(7, 2, &mut StdRng::seed_from_u64(1));
        let mut optimizer = Consequential::new(Sgd::new(0.1)).loss_scale(scale);
        optimizer.layer(&w, Some(&b));
        backward(&w, &b, &x, &targets, mean);
        let (w, _) = stepped(&mut optimizer, w, b);
        w.array().clone()
    };
    let mean = run(true, LossScale::Mean);
    let sum = run(false, LossScale::Sum);
    assert!((&mean - &sum).iter().all(|d| d.abs() < 1e-12));
    let wrong = run(false, LossScale::Mean);
    assert!((&mean - &wrong).iter().any(|d| d.abs() > 1e-6));
}

/// The wrapped optimizer's state accumulates the directions (Adam's first
/// moment after one step is `(1 − β₁)·direction`), and parameters that are
/// not registered take their ordinary step.
#[test]
fn the_wrapped_optimizer_steps_with_the_direction() {
    let mut rng = StdRng::seed_from_u64(11);
    let (w, b) = layer(6, 3, &mut rng);
    let other = Param::new(Array1::from_vec(vec![1.0f64, 2.0]));
    let x = random(4, 6, &mut rng);
    let targets = random(4, 3, &mut rng);
    let (w0, b0) = (w.array().clone(), b.array().clone());
    // SGD with learning rate 1 gives the direction itself. The layer is
    // registered (tapped) before the backward pass it is to see.
    let mut sgd = Consequential::new(Sgd::new(1.0));
    sgd.layer(&w, Some(&b));
    backward(&w, &b, &x, &targets, true);
    other
        .var()
        .accumulate(ndarray::array![0.5, -0.5].into_dyn());
    let gradient = w.grad();
    let (w, _) = stepped(&mut sgd, w, b);
    let direction = &w0 - w.array();

    assert!(
        (&direction - &gradient).iter().any(|d| d.abs() > 1e-3),
        "the consequentialist direction is not the plain gradient"
    );

    let (w, b) = (Param::new(w0.clone()), Param::new(b0.clone()));
    let mut adam = Consequential::new(Adam::new(0.01));
    adam.layer(&w, Some(&b));
    backward(&w, &b, &x, &targets, true);
    let mut model = vec![w, b, other];
    adam.step(&mut model);
    let (w, other) = (&model[0], &model[2]);
    let state = adam.param_state(w.id()).expect("Adam keeps a state");
    let first_moment = &state.buffers["exp_avg"];
    assert!(
        (first_moment - &(&direction * 0.1))
            .iter()
            .all(|d| d.abs() < 1e-12),
        "Adam's first moment is not (1 − β₁)·direction"
    );
    // The other parameter took Adam's first step: −lr·sign(g).
    assert!((other.array()[0] - (1.0 - 0.01)).abs() < 1e-9);
    assert!((other.array()[1] - (2.0 + 0.01)).abs() < 1e-9);
}

/// A batch larger than the width with ε = 0 is singular: refused, naming
/// the wrapper.
#[test]
#[should_panic(
    expected = "Consequential (A·Aᵀ + εI): the matrix of shape [8, 8] is not positive definite"
)]
fn a_singular_batch_without_damping_is_refused() {
    let mut rng = StdRng::seed_from_u64(2);
    let (w, b) = layer(3, 2, &mut rng);
    let x = random(8, 3, &mut rng);
    let targets = random(8, 2, &mut rng);
    let mut optimizer = Consequential::new(Sgd::new(0.1)).damping(Damping::Fixed(0.0));
    optimizer.layer(&w, Some(&b));
    backward(&w, &b, &x, &targets, true);
    stepped(&mut optimizer, w, b);
}

/// A registered weight used through `x.matmul(&w)`, which taps do not
/// see, is an error at the step, not a silent fall-back to the plain one.
#[test]
#[should_panic(
    expected = "registered layer 0 has a gradient, but its weight's tap recorded no products"
)]
fn a_weight_the_tap_cannot_see_is_refused_at_the_step() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut w = Param::new(random(3, 2, &mut rng));
    let mut optimizer = Consequential::new(Sgd::new(0.1));
    optimizer.layer(&w, None);
    let x = Var::constant(random(4, 3, &mut rng));
    lazy(|k: &mut dyn FnMut(Var<f64>)| x.matmul(&w).bind(|y| y.sum().bind(&mut *k))).backward();
    optimizer.step(&mut w);
}
