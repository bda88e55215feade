//! Runtime of [`cps`](https://docs.rs/cps): differentiable tensors in
//! continuation-passing style.
//!
//! Every operation takes the rest of the computation as a callback (its
//! continuation), runs it, and on return adds its output's gradient into
//! its inputs' gradients. The call stack is the tape: there is no graph.
//! Users normally reach this crate through `cps::prelude`.

pub mod computation;
pub mod data;
pub mod element;
pub mod gradcheck;
pub mod io;
pub mod join;
pub mod ops;
pub mod optim;
pub mod param;
pub mod parameters;
pub mod second_core;
pub mod stack;
pub mod var;

#[doc(hidden)]
pub mod __private {
    //! Support for generated code; see `private.rs`.
    pub use crate::private::*;
}
mod flat;
mod private;
mod simd;

pub use computation::{BackwardStep, Computation, Detach, Lazy, Pending, lazy};
pub use element::Element;
pub use gradcheck::{GradcheckReport, gradcheck};
pub use join::join;
pub use ops::operand::{IntoOperand, Operand};
pub use ops::shape::{concat, rows_of};
pub use param::Param;
pub use parameters::Parameters;
pub use second_core::SecondCore;
pub use var::{Value, Var};
