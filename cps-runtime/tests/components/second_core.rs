//! With a [`SecondCore`], the split matrix kernels give the results of one
//! core: forward values and parameter gradients equal, input gradients
//! (whose two halves are summed in another order) equal to rounding, an
//! optimizer step equal; and gradients still match finite differences.

use cps_runtime::optim::{Adagrad, Optimizer};
use cps_runtime::*;
use ndarray::{Array, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f64> {
    Array::from_shape_fn(IxDyn(shape), |_| rng.random_range(-1.0..1.0))
}

/// Large enough for every product to split (see `MIN_SPLIT_ELEMENTS`),
/// with odd row counts so that the halves differ in size.
struct Model {
    w: Param<f64>,
    x: Param<f64>,
    m: Param<f64>,
}

impl Parameters<f64> for Model {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<f64>)) {
        f("w", &self.w);
        f("x", &self.x);
        f("m", &self.m);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<f64>)) {
        f("w", &mut self.w);
        f("x", &mut self.x);
        f("m", &mut self.m);
    }
}

fn model(seed: u64, m_columns: usize) -> Model {
    let mut rng = StdRng::seed_from_u64(seed);
    Model {
        w: Param::new(random(&[203, 151], &mut rng)),
        x: Param::new(random(&[151], &mut rng)),
        m: Param::new(random(&[151, m_columns], &mut rng)),
    }
}

/// `sum(tanh(W·x)) + sum(tanh(W·M)) + sum(Wᵀ·tanh(W·x))`: a matrix times a
/// vector (with its deferred weight gradient), a matrix product, and the
/// transpose of a matrix times a vector.
fn loss(model: &Model) -> f64 {
    let Model { w, x, m } = model;
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        w.matmul(x).bind(|wx| {
            wx.tanh().bind(|h| {
                w.matmul(m).bind(|wm| {
                    wm.tanh().bind(|p| {
                        w.t().bind(|wt| {
                            wt.matmul(&h).bind(|back| {
                                h.sum().bind(|a| {
                                    p.sum().bind(|b| {
                                        back.sum()
                                            .bind(|c| (&a + &b).bind(|ab| (&ab + &c).bind(&mut *k)))
                                    })
                                })
                            })
                        })
                    })
                })
            })
        })
    })
    .backward()
}

fn grads(model: &Model) -> Vec<ArrayD<f64>> {
    let mut out = Vec::new();
    model.visit(&mut |_, p| out.push(p.grad()));
    out
}

fn max_relative_difference(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-12))
        .fold(0.0, f64::max)
}

#[test]
fn split_kernels_give_the_results_of_one_core() {
    let alone = model(11, 37);
    let loss_alone = loss(&alone);
    let grads_alone = grads(&alone);

    let shared = model(11, 37);
    let core = SecondCore::start();
    assert!(SecondCore::is_active());
    let loss_shared = loss(&shared);
    let grads_shared = grads(&shared);

    assert!((loss_alone - loss_shared).abs() <= 1e-12 * loss_alone.abs());
    for ((name, a), b) in ["w", "x", "m"].iter().zip(&grads_alone).zip(&grads_shared) {
        let difference = max_relative_difference(a, b);
        assert!(
            difference < 1e-10,
            "gradient of {name} differs by {difference:e}"
        );
    }

    // An optimizer step, split the same way, moves the parameters alike.
    let mut alone = alone;
    let mut shared = shared;
    Adagrad::new(0.1).step(&mut shared);
    drop(core);
    Adagrad::new(0.1).step(&mut alone);
    let (mut before, mut after) = (Vec::new(), Vec::new());
    alone.visit(&mut |_, p| before.push(p.array().clone()));
    shared.visit(&mut |_, p| after.push(p.array().clone()));
    for (a, b) in before.iter().zip(&after) {
        assert!(max_relative_difference(a, b) < 1e-10);
    }
}

#[test]
fn gradients_match_finite_differences_on_a_second_core() {
    let _core = SecondCore::start();
    // W (30,653 elements) stays fixed to keep the check short; it still
    // makes every product split. Its own gradient is compared above.
    let mut m = model(5, 3);
    m.w.set_trainable(false);
    let report = gradcheck(&mut m, loss);
    assert!(report.passes(1e-6), "{report:?}");
}
