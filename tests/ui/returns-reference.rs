use cps::prelude::*;

#[differentiable]
fn forward(x: &Var) -> &Var {
    x
}

fn main() {}
