//! A mismatched argument to an operation is reported at the argument, as
//! it is outside the macro (a `&Param` where the operation takes a
//! `&Var`: write `b.var()`).

use cps::prelude::*;

#[differentiable]
fn convolve(x: &Var<f64>, w: &Var<f64>, b: &Param<f64>) -> Var<f64> {
    let y = x.conv2d(w, Some(b), Conv2dOptions::default());
    y.sum()
}

fn main() {}
