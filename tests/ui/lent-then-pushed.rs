// A `Vec` lent to a call stays borrowed until the call's backward step, so
// the rest of the function cannot push into it: the error names the lending
// `&states` and the `push`.
use cps::prelude::*;

#[differentiable]
fn total(states: &Vec<Var>) -> Var {
    states[0].sum()
}

#[differentiable]
fn collect(x: &Var) -> Var {
    let mut states = vec![x.clone()];
    let y = total(&states);
    states.push(y);
    states[1].sum()
}

fn main() {}
