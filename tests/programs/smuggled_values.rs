//! A value used after its producer's backward step has run would lose its
//! gradient silently; instead it is a loud error naming the operation.

use std::cell::RefCell;

use cps::prelude::*;
use ndarray::array;

thread_local! {
    static KEPT: RefCell<Option<Var<f64>>> = const { RefCell::new(None) };
}

fn keep(v: &Var<f64>) {
    KEPT.with(|k| *k.borrow_mut() = Some(v.clone()));
}

#[differentiable]
fn leaks(w: &Param<f64>) -> Var<f64> {
    let h = w.tanh();
    keep(&h);
    h.sum()
}

#[differentiable]
fn uses_kept(w: &Param<f64>, kept: &Var<f64>) -> Var<f64> {
    (kept * w).sum()
}

#[test]
#[should_panic(
    expected = "a gradient arrived at the result of `tanh` (shape [2]) after that operation's backward step had already run"
)]
fn a_smuggled_value_receiving_a_gradient_is_an_error() {
    let w = Param::new(array![0.5f64, -0.5]);
    leaks(&w).backward();
    let kept = KEPT.with(|k| k.borrow_mut().take()).expect("kept");
    uses_kept(&w, &kept).backward();
}

#[test]
fn a_smuggled_value_read_forward_only_is_fine() {
    let w = Param::new(array![0.5f64, -0.5]);
    leaks(&w).backward();
    let kept = KEPT.with(|k| k.borrow_mut().take()).expect("kept");
    // Forward only: no gradient flows, so nothing is lost.
    let v = uses_kept(&w, &kept).eval().item();
    assert!((v - (0.5f64.tanh() * 0.5 + (-0.5f64).tanh() * -0.5)).abs() < 1e-12);
    // Detached, it is an ordinary constant.
    let value = uses_kept(&w, &kept.detach()).backward();
    assert!((value - v).abs() < 1e-12);
}

#[test]
#[should_panic(
    expected = "backward: the result must have exactly one element (a loss), got shape [2]"
)]
fn backward_needs_a_scalar() {
    let w = Param::new(array![0.5f64, -0.5]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| w.tanh().bind(k)).backward();
}
