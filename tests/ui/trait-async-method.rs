use cps::prelude::*;

#[differentiable]
trait Forward {
    async fn forward(&self, x: &Var) -> Var;
}

fn main() {}
