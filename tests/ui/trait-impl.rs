use cps::prelude::*;

trait Forward {
    fn forward(&self, x: &Var) -> Var;
}

struct Model;

#[differentiable]
impl Forward for Model {
    fn forward(&self, x: &Var) -> Var {
        x.tanh()
    }
}

fn main() {}
