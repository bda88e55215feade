//! Differentiable operations, one module per family. Each operation is a
//! method on [`Var`](crate::Var) (or an operator) returning a
//! [`Pending`](crate::Pending): its forward computation, with its backward
//! step written right beside it as the closure that adds into the inputs'
//! gradients.

pub mod activations;
pub(crate) mod broadcast;
pub mod compare;
pub mod conv;
pub mod elementwise;
pub mod linalg;
pub mod losses;
pub mod norm;
pub mod operand;
pub mod pool;
pub mod random;
pub mod reductions;
pub mod shape;
pub mod solve;
pub mod unary;

/// Panics with a message naming the operation and both shapes.
#[track_caller]
pub(crate) fn shape_mismatch(op: &str, left: &[usize], right: &[usize], detail: &str) -> ! {
    panic!("{op}: shape mismatch between {left:?} and {right:?}: {detail}")
}
