// A variable read inside an `if` with operations, then moved after it: the
// `if` is a computation still running while the rest runs, so it holds the
// variable. The error names the `if`'s use and the later move; clone the
// variable before the `if`, or declare it `mut` so that the `if` carries it.
use cps::prelude::*;

#[differentiable]
fn pair(x: &Var, c: bool) -> (Var, Var) {
    let y = x.tanh();
    let z = if c { y.sigmoid() } else { y.tanh() };
    (z, y)
}

fn main() {}
