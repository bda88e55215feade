use cps::prelude::*;

#[differentiable]
fn forward(x: &Var) -> Var {
    let h = x.tanh();
    let later = |y: &Var| h.matmul(y);
    later(x).sum()
}

fn main() {}
