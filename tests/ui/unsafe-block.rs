use cps::prelude::*;

#[differentiable]
fn forward(x: &Var) -> Var {
    let y = unsafe { x.tanh() };
    y
}

fn main() {}
