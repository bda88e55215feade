//! The `?` operator in differentiable code: `e?` is written by the macro
//! as
//!
//! ```text
//! match QuestionMark::branch(e) {
//!     ControlFlow::Continue(v) => v,
//!     ControlFlow::Break(r) => return FromResidual::from_residual(r),
//! }
//! ```
//!
//! (the standard library's `Try` and `FromResidual` are unstable), so that
//! the early return is lowered like any other `return`: every frame of the
//! function hands the error on and unwinds. For `Result` (with `From` on
//! the error, as `?` does) and `Option`.

use std::convert::Infallible;
use std::ops::ControlFlow;

/// What `?` splits a value into: the value to go on with, or what to
/// return.
pub trait QuestionMark {
    /// The value `e?` gives.
    type Output;
    /// What goes back to the caller (`Result<Infallible, E>`, or
    /// `Option<Infallible>`).
    type Residual;
    /// `Continue(value)` or `Break(residual)`.
    fn branch(self) -> ControlFlow<Self::Residual, Self::Output>;
}

impl<T, E> QuestionMark for Result<T, E> {
    type Output = T;
    type Residual = Result<Infallible, E>;
    #[inline(always)]
    fn branch(self) -> ControlFlow<Self::Residual, T> {
        match self {
            Ok(v) => ControlFlow::Continue(v),
            Err(e) => ControlFlow::Break(Err(e)),
        }
    }
}

impl<T> QuestionMark for Option<T> {
    type Output = T;
    type Residual = Option<Infallible>;
    #[inline(always)]
    fn branch(self) -> ControlFlow<Self::Residual, T> {
        match self {
            Some(v) => ControlFlow::Continue(v),
            None => ControlFlow::Break(None),
        }
    }
}

/// The function's return value made from what `?` returns early.
#[diagnostic::on_unimplemented(
    message = "`?` in a differentiable function returning `{Self}`",
    label = "this `?` returns early with an error, which `{Self}` cannot hold",
    note = "a differentiable function using `?` returns `Result<_, E>` (with `E: From` the \
            error) or `Option<_>`, like any Rust function; its caller runs it with \
            `.try_backward()` or `.eval()`"
)]
pub trait FromResidual<R> {
    /// The early return value.
    fn from_residual(residual: R) -> Self;
}

impl<T, E, F: From<E>> FromResidual<Result<Infallible, E>> for Result<T, F> {
    #[inline(always)]
    fn from_residual(residual: Result<Infallible, E>) -> Self {
        match residual {
            Err(e) => Err(F::from(e)),
        }
    }
}

impl<T> FromResidual<Option<Infallible>> for Option<T> {
    #[inline(always)]
    fn from_residual(_: Option<Infallible>) -> Self {
        None
    }
}

/// `O::from_residual(residual)`, as a function: the macro names the
/// function's result type `O`, and the residual's type is inferred, so
/// that a function that cannot hold it is reported with both types.
#[inline(always)]
pub fn early_return<O: FromResidual<R>, R>(residual: R) -> O {
    O::from_residual(residual)
}
