// A `Vec` lent to a call inside a loop, then moved after the loop: the
// calls of every iteration still hold it. Lend a clone, or keep the states
// in an `Rc`.
use cps::prelude::*;

#[differentiable]
fn total(states: &Vec<Var>) -> Var {
    states[0].sum()
}

#[differentiable]
fn run(x: &Var, n: usize) -> (Var, Vec<Var>) {
    let states = vec![x.clone()];
    let mut sum = x.sum();
    for _ in 0..n {
        sum = sum + total(&states);
    }
    (sum, states)
}

fn main() {}
