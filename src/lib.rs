//! # cps: differentiable programming in continuation-passing style
//!
//! Write ordinary Rust, put `#[differentiable]` on it, and every operation
//! receives the rest of the computation as its callback. The forward pass
//! is the calls, the backward pass is the returns: no tape, no graph, and
//! any control flow Rust has is differentiable because it simply runs.

pub use cps_macros::{Parameters, differentiable};
pub use cps_runtime::*;

/// Everything a user of `cps` needs: `use cps::prelude::*;`.
pub mod prelude {
    pub use cps_macros::{Parameters, differentiable};
    pub use cps_runtime::{
        BackwardStep, Computation, Detach, Element, GradcheckReport, IntoOperand, Lazy, Operand,
        Param, Parameters, Pending, Var, gradcheck, lazy,
    };
}
