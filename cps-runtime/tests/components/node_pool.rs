//! Results of finished operations are pooled and serve as the results of
//! later ones (their node and value buffer). Only a result nothing else
//! holds may be reused: these tests keep results alive in every way a user
//! can and check that later computations leave them intact, and that
//! reuse changes no number.

use cps_runtime::*;
use ndarray::{ArrayD, IxDyn, array};

/// `sum(tanh(x * w + 1) * w)` in continuation-passing style, with its
/// intermediate results handed to `seen` while they are alive.
fn run(w: &Param<f64>, x: &Var<f64>, seen: &mut dyn FnMut(&Var<f64>)) -> f64 {
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        (x * w).bind(|xw| {
            seen(&xw);
            (xw + 1.0).bind(|z| {
                z.tanh().bind(|h| {
                    seen(&h);
                    (&h * w).bind(|hw| hw.sum().bind(k))
                })
            })
        })
    })
    .backward()
}

#[test]
fn reuse_changes_no_value_or_gradient() {
    let w = Param::new(array![0.3f64, -0.7, 1.1]);
    let x = Var::constant(array![2.0f64, 0.5, -1.0]);
    let first = run(&w, &x, &mut |_| {});
    let first_grad = w.take_grad().expect("a gradient");
    for _ in 0..5 {
        assert_eq!(run(&w, &x, &mut |_| {}), first);
        assert_eq!(w.take_grad().expect("a gradient"), first_grad);
    }
    // The same computation on other shapes in between: pooled values of
    // the wrong shape are replaced, not misused.
    let wide = Param::new(ArrayD::from_elem(IxDyn(&[2, 5]), 0.25f64));
    let wide_x = Var::constant(ArrayD::from_elem(IxDyn(&[2, 5]), -0.5f64));
    let wide_value = run(&wide, &wide_x, &mut |_| {});
    let scalar = Param::new(ndarray::arr0(0.3f64));
    run(&scalar, &x, &mut |_| {});
    assert_eq!(run(&w, &x, &mut |_| {}), first);
    assert_eq!(w.take_grad().expect("a gradient"), first_grad);
    assert_eq!(run(&wide, &wide_x, &mut |_| {}), wide_value);
}

#[test]
fn kept_results_are_not_reused() {
    let w = Param::new(array![0.3f64, -0.7, 1.1]);
    let x = Var::constant(array![2.0f64, 0.5, -1.0]);
    // A clone of a result, and a handle to its value, kept past the end of
    // the computation.
    let mut vars = Vec::new();
    let mut values = Vec::new();
    run(&w, &x, &mut |v| {
        vars.push(v.clone());
        values.push(v.value());
    });
    let expected: Vec<ArrayD<f64>> = vars.iter().map(|v| v.array().clone()).collect();
    assert_eq!(expected[0], array![0.6, -0.35, -1.1].into_dyn());
    // Later computations of the same shapes draw on the pool.
    let other = Param::new(array![5.0f64, 6.0, 7.0]);
    for _ in 0..3 {
        run(&other, &x, &mut |_| {});
    }
    for ((var, value), expected) in vars.iter().zip(&values).zip(&expected) {
        assert_eq!(var.array(), expected);
        assert_eq!(*value, *expected);
    }
}

#[test]
fn results_after_eval_are_independent_copies() {
    let w = Param::new(array![0.5f64, 2.0]);
    let x = Var::constant(array![1.0f64, -1.0]);
    let y = lazy(|k: &mut dyn FnMut(Var<f64>)| (x.clone() * &w).bind(k)).eval();
    for _ in 0..3 {
        lazy(|k: &mut dyn FnMut(Var<f64>)| (x.clone() * 9.0).bind(k)).eval();
    }
    assert_eq!(y.array(), &array![0.5, -2.0].into_dyn());
}
