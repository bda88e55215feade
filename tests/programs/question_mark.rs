//! `?` in differentiable functions returning `Result` or `Option`: on plain
//! values and on differentiable callees, inside loops, with `From` on the
//! error; `.try_backward()` and `.eval()` on the result. On the `Ok` path
//! gradients are checked against finite differences (f64); on the `Err`
//! path no parameter's gradient changes and nothing panics; a caller that
//! handles a callee's `Err` and goes on back-propagates its own operations.

use std::num::ParseFloatError;

use crate::common::{assert_gradients, param};
use cps::prelude::*;

/// Why a computation failed.
#[derive(Debug, PartialEq)]
enum Failure {
    /// A number could not be read.
    Parse(String),
}

impl From<ParseFloatError> for Failure {
    fn from(error: ParseFloatError) -> Self {
        Failure::Parse(error.to_string())
    }
}

/// `tanh(w)·n` for the number `n` written in `text`.
#[differentiable]
fn scaled(w: &Param<f64>, text: &str) -> Result<Var<f64>, ParseFloatError> {
    let n: f64 = text.trim().parse()?;
    Ok(w.tanh() * n)
}

/// Each text scales the running product; `?` on a differentiable callee,
/// inside a loop, converting the error with `From`.
#[differentiable]
fn product(w: &Param<f64>, texts: &[&str]) -> Result<Var<f64>, Failure> {
    let mut total = w.square().sum();
    for text in texts {
        let factor = scaled(w, text)?;
        total = total * factor.sum();
    }
    Ok(total)
}

#[test]
fn the_ok_path_has_the_plain_gradients() {
    let mut w = param(&[3], 1);
    assert_gradients(&mut w, |w| {
        product(w, &["0.5", " 2 ", "-1.5"])
            .try_backward()
            .expect("every text is a number")
    });
}

#[test]
fn the_err_path_leaves_no_gradient_and_returns_the_error() {
    let w = param(&[3], 2);
    // The first two texts are read (and their operations run) before the
    // third fails.
    let result = product(&w, &["0.5", "2", "two"]).try_backward();
    assert_eq!(
        result,
        Err(Failure::Parse("invalid float literal".to_string()))
    );
    assert_eq!(
        w.grad(),
        ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[3]))
    );
    // The same parameter trains normally afterwards.
    let loss = product(&w, &["0.5"]).try_backward().expect("a number");
    assert!(loss.is_finite());
    assert!(w.grad().iter().any(|&g| g != 0.0));
}

/// A caller that handles its callee's error and goes on.
#[differentiable]
fn tolerant(w: &Param<f64>, text: &str) -> Var<f64> {
    let base = (w * 2.0).sin().sum();
    let extra = match scaled(w, text) {
        Ok(v) => v.sum(),
        Err(_) => w.sum() * 0.25,
    };
    base + extra
}

#[test]
fn a_handled_error_lets_the_caller_back_propagate() {
    let mut w = param(&[4], 3);
    assert_gradients(&mut w, |w| tolerant(w, "not a number").backward());
    assert_gradients(&mut w, |w| tolerant(w, "3").backward());
    // The two paths differ: the handled error took the other arm.
    assert_ne!(
        tolerant(&w, "not a number").eval().item(),
        tolerant(&w, "3").eval().item()
    );
}

/// `?` on an `Option`: the first positive entry's weight.
#[differentiable]
fn first_positive(w: &Param<f64>, xs: &[f64]) -> Option<Var<f64>> {
    let i = xs.iter().position(|&x| x > 0.0)?;
    Some((w.rows(&[i]) * xs[i]).tanh().sum())
}

#[test]
fn option_with_question_mark() {
    let mut w = param(&[3, 2], 4);
    assert_gradients(&mut w, |w| {
        first_positive(w, &[-1.0, 0.5, 2.0])
            .try_backward()
            .expect("a positive entry")
    });
    w.zero_grad();
    assert_eq!(first_positive(&w, &[-1.0, -2.0]).try_backward(), None);
    assert_eq!(
        w.grad(),
        ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[3, 2]))
    );
}

#[test]
fn eval_of_a_fallible_function() {
    let w = param(&[2], 5);
    let value = scaled(&w, "2").eval().expect("a number");
    let expected = w.value().mapv(|v| v.tanh() * 2.0);
    assert_eq!(value.array(), &expected);
    assert!(scaled(&w, "x").eval().is_err());
    assert!(first_positive(&w, &[]).eval().is_none());
}
