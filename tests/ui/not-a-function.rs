use cps::prelude::*;

#[differentiable]
struct Model {
    w: Param,
}

fn main() {}
