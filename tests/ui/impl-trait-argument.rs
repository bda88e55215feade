use cps::prelude::*;

#[differentiable]
fn forward(x: &Var, steps: impl Iterator<Item = usize>) -> Var {
    let mut h = x.tanh();
    for _ in steps {
        h = h.tanh();
    }
    h
}

fn main() {}
