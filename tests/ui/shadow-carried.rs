use cps::prelude::*;

#[differentiable]
fn forward(x: &Var, n: usize) -> Var {
    let mut h = x.tanh();
    for _ in 0..n {
        let h = h.tanh();
        println!("{:?}", h.shape());
    }
    h
}

fn main() {}
