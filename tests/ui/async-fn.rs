use cps::prelude::*;

#[differentiable]
async fn forward(x: &Var) -> Var {
    x.tanh()
}

fn main() {}
