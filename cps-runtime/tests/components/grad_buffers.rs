//! A parameter's gradient buffer serves again from one step to the next:
//! the optimizer gives it back to the thread's buffer pool, and the next
//! gradient of its size is written into it instead of into a fresh
//! allocation. These tests check that the stale contents never leak into a
//! gradient, whichever way the gradient is built (deferred weight
//! gradients, direct accumulation, both).

use cps_runtime::optim::{Adagrad, Optimizer, Sgd};
use cps_runtime::*;
use ndarray::{Array1, Array2, ArrayD, array};

/// A small model: `w` both as a matrix times a vector (whose gradient is
/// deferred) and elementwise (whose gradient is added at once), and `b`.
struct Model {
    w: Param<f64>,
    b: Param<f64>,
}

impl Parameters<f64> for Model {
    fn visit(&self, f: &mut dyn FnMut(&str, &Param<f64>)) {
        f("w", &self.w);
        f("b", &self.b);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&str, &mut Param<f64>)) {
        f("w", &mut self.w);
        f("b", &mut self.b);
    }
}

fn model() -> Model {
    Model {
        w: Param::new(array![[0.3f64, -0.7, 1.1], [0.5, 0.2, -0.4]]),
        b: Param::new(array![0.1f64, -0.2]),
    }
}

/// `sum(tanh(w·x + b)) + sum(w ⊙ w)` when `square`, else the first term.
fn loss(model: &Model, x: &Var<f64>, square: bool) -> f64 {
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        model.w.matmul(x).bind(|wx| {
            (&wx + &*model.b).bind(|z| {
                z.tanh().bind(|h| {
                    h.sum().bind(|s| {
                        if square {
                            (&*model.w * &*model.w)
                                .bind(|ww| ww.sum().bind(|q| (&s + &q).bind(&mut *k)))
                        } else {
                            k(s)
                        }
                    })
                })
            })
        })
    })
    .backward()
}

/// The gradient of [`loss`] with respect to `w`, by hand:
/// `(1 − h²) ⊗ x`, plus `2w` with the square term.
fn expected_w_grad(model: &Model, x: &Var<f64>, square: bool) -> ArrayD<f64> {
    let w = model
        .w
        .array()
        .view()
        .into_dimensionality::<ndarray::Ix2>()
        .unwrap();
    let x = x
        .array()
        .view()
        .into_dimensionality::<ndarray::Ix1>()
        .unwrap();
    let h = (w.dot(&x) + model.b.array()).mapv(f64::tanh);
    let dz = h.mapv(|h| 1.0 - h * h);
    let mut grad = Array2::from_shape_fn(w.raw_dim(), |(i, j)| dz[i] * x[j]);
    if square {
        grad = grad + &w * 2.0;
    }
    grad.into_dyn()
}

fn assert_close(actual: &ArrayD<f64>, expected: &ArrayD<f64>) {
    assert_eq!(actual.shape(), expected.shape());
    for (a, e) in actual.iter().zip(expected) {
        assert!(
            (a - e).abs() < 1e-12,
            "gradient {actual} differs from {expected}"
        );
    }
}

fn inputs() -> Vec<Var<f64>> {
    [[1.0, -2.0, 0.5], [0.3, 0.3, -1.5], [-0.7, 1.2, 2.0]]
        .iter()
        .map(|x| Var::constant(Array1::from(x.to_vec())))
        .collect()
}

#[test]
fn reused_buffers_give_the_same_training_as_fresh_ones() {
    for square in [false, true] {
        let reference = {
            // Every step on fresh buffers, by hand.
            let mut m = model();
            let mut opt = Adagrad::new(0.1f64);
            for x in inputs().iter().cycle().take(7) {
                loss(&m, x, square);
                m.visit_mut(&mut |_, p| {
                    let mut grad = p.take_grad().expect("a gradient");
                    let id = p.id();
                    opt.update(id, p.value_mut(), &mut grad);
                    // The buffer is dropped, not given back.
                });
            }
            vec![m.w.array().clone(), m.b.array().clone()]
        };
        let mut m = model();
        let mut opt = Adagrad::new(0.1f64);
        for x in inputs().iter().cycle().take(7) {
            loss(&m, x, square);
            opt.step(&mut m);
        }
        assert_eq!(vec![m.w.array().clone(), m.b.array().clone()], reference);
    }
}

#[test]
fn stale_contents_never_reach_a_gradient() {
    let m = model();
    let x = &inputs()[0];
    for square in [false, true] {
        loss(&m, x, square);
        let expected = m.w.take_grad().expect("a gradient");
        assert_close(&expected, &expected_w_grad(&m, x, square));
        // A gradient full of NaN and infinities, discarded: its buffer
        // goes back to the pool for the next gradient of its size.
        m.w.var().accumulate_with(|mut g| {
            g.fill(f64::NAN);
            g[[0, 1]] = f64::INFINITY;
        });
        m.w.zero_grad();
        m.b.zero_grad();
        loss(&m, x, square);
        assert_eq!(m.w.take_grad().expect("a gradient"), expected);
    }
}

#[test]
fn zero_grad_keeps_the_buffer_and_discards_its_contents() {
    let m = model();
    let x = &inputs()[1];
    loss(&m, x, true);
    let expected = m.w.grad();
    assert_close(&expected, &expected_w_grad(&m, x, true));
    // Twice the gradient, discarded: the next one starts from zero.
    loss(&m, x, true);
    m.w.zero_grad();
    assert_eq!(m.w.grad(), ArrayD::<f64>::zeros(expected.raw_dim()));
    loss(&m, x, true);
    assert_eq!(m.w.grad(), expected);
}

#[test]
fn sgd_with_momentum_keeps_its_own_copy_of_the_first_gradient() {
    // Momentum's first buffer is the first gradient: the gradient's buffer,
    // handed back to the parameter and overwritten by the next step, must
    // not be that buffer.
    let run = |reuse: bool| {
        let mut m = model();
        let mut sgd = Sgd::new(0.05f64).momentum(0.9);
        for x in inputs().iter().cycle().take(5) {
            loss(&m, x, true);
            if reuse {
                sgd.step(&mut m);
            } else {
                m.visit_mut(&mut |_, p| {
                    let mut grad = p.take_grad().expect("a gradient");
                    let id = p.id();
                    sgd.update(id, p.value_mut(), &mut grad);
                });
            }
        }
        vec![m.w.array().clone(), m.b.array().clone()]
    };
    assert_eq!(run(true), run(false));
}
