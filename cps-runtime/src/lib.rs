//! Runtime of [`cps`](https://docs.rs/cps): differentiable tensors in
//! continuation-passing style.
//!
//! Every operation takes the rest of the computation as a callback (its
//! continuation), runs it, and on return adds its output's gradient into
//! its inputs' gradients. The call stack is the tape: there is no graph.
//! Users normally reach this crate through `cps::prelude`.

// The layers, lowest first; each module uses only the layers above it in
// this list (checked by `tests/components/module_layers.rs`; see docs/architecture.md).
// Kernels: pure functions on slices, and the element types.
pub mod element;
mod flat;
mod kernels;
// Memory: the thread's pool of free buffers.
mod memory;
// Execution: where work runs (second core, batches across joined sides,
// stack segments).
mod execution;
pub use execution::{second_core, stack, workers};
// Values: `Var`, `Param` and their gradients; computations and `join`.
pub mod computation;
pub mod custom;
pub mod higher_order;
pub mod join;
pub mod param;
pub mod parameters;
pub mod reversible;
pub mod var;
// Operations, each family's forward and backward side by side.
pub mod gradcheck;
pub mod ops;
// Optimizers.
pub mod optim;
// Data-parallel training on workers.
pub mod parallel;
// Parameter files and data sets.
#[cfg(feature = "data")]
pub mod data;
pub mod io;

#[doc(hidden)]
pub mod __private {
    //! Support for generated code; see `private.rs`.
    pub use crate::private::*;
}
mod private;

pub use computation::{
    BackwardStep, BoxedComputation, Computation, Detach, FallibleLoss, Lazy, Pending, lazy,
};
pub use custom::{Checkpoint, Vjp, checkpoint, checkpoint_with_rng, vjp};
pub use element::{Dual, Element};
pub use gradcheck::{GradcheckReport, gradcheck};
pub use higher_order::{Hvp, Jvp, hvp, jvp};
pub use join::join;
pub use ops::blackbox::{CallCounter, CentralDifferences, ForwardDifferences, JacobianEstimator};
pub use ops::conv::{Conv1dOptions, Conv2dOptions};
pub use ops::norm::BatchNormStats;
pub use ops::operand::{IntoOperand, Operand};
pub use ops::pool::Pool2dOptions;
pub use ops::reductions::{AxisIndex, NormOrder};
pub use ops::shape::{Split, concat, rows_of, stack};
pub use param::Param;
pub use parameters::Parameters;
pub use reversible::{Reversible, reversible};
pub use second_core::SecondCore;
pub use var::{Tap, Value, Var, live_result_bytes};
