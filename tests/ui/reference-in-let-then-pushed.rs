// A reference kept in a `let` keeps its variable borrowed until the block
// ends, because the rest of the block runs inside the continuation that
// holds it: pushing into the `Vec` in the same block is a borrow error.
// Clone what is needed in the same statement (`states.last().cloned()`).
use cps::prelude::*;

#[differentiable]
fn grow(x: &Var, n: usize) -> Var {
    let mut states = vec![x.clone()];
    for _ in 0..n {
        let last = states.last().unwrap();
        let next = last.tanh();
        states.push(next);
    }
    states[n].sum()
}

fn main() {}
