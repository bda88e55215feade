use cps::prelude::*;

#[differentiable(fast)]
fn forward(x: &Var) -> Var {
    x.tanh()
}

fn main() {}
