use cps::prelude::*;

#[differentiable]
unsafe fn forward(x: &Var) -> Var {
    x.tanh()
}

fn main() {}
