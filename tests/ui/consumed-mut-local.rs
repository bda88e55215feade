// A `let mut` local used by method calls as statements is dropped where its
// block ends; a method that consumed it makes that drop a use after move,
// reported at the binding. Drop the `mut`, or chain the call.
use cps::prelude::*;

#[differentiable]
fn consumed(x: &Var) -> Var {
    let mut values = vec![1.0f32, 2.0].into_iter();
    values.next();
    values.for_each(|v| println!("{v}"));
    x.tanh()
}

fn main() {}
