use cps::prelude::*;

#[differentiable]
fn forward(x: &Var, n: usize) -> Var {
    let mut h = x.tanh();
    'outer: for _ in 0..n {
        for _ in 0..n {
            h = h.tanh();
            if n > 3 {
                break 'outer;
            }
        }
    }
    h
}

fn main() {}
