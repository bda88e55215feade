use cps::prelude::*;

// `?` needs the function to return `Result` or `Option`.
#[differentiable]
fn forward(x: &Var, text: &str) -> Var {
    let n: usize = text.parse()?;
    x.tanh() * (n as f32)
}

fn main() {}
