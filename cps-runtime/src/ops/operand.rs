//! What may stand on either side of an arithmetic operator: a tensor
//! ([`Var`], [`Param`], by value or by reference) or a scalar.

use crate::element::Element;
use crate::param::Param;
use crate::var::Var;

/// The right-hand side of an arithmetic operator, resolved.
#[derive(Clone, Debug)]
pub enum Operand<A: Element> {
    /// A tensor, broadcast against the other side by NumPy's rules.
    Tensor(Var<A>),
    /// A scalar, applied to every element.
    Scalar(A),
}

/// Conversion into an [`Operand`]; lets `x + &param`, `x * 2.0` and
/// `x - y` all type-check, also in code generic over the element type
/// (with the scalar on the right):
///
/// ```
/// use cps_runtime::*;
///
/// fn half<A: Element>(h: &Var<A>) -> Pending<A, ops::elementwise::Arithmetic<A>> {
///     h * 0.5
/// }
/// half(&Var::scalar(3.0f32)).bind(|y| assert_eq!(y.item(), 1.5));
/// half(&Var::scalar(3.0f64)).bind(|y| assert_eq!(y.item(), 1.5));
/// ```
pub trait IntoOperand<A: Element> {
    /// Resolves the operand.
    fn into_operand(self) -> Operand<A>;
}

impl<A: Element> IntoOperand<A> for Var<A> {
    fn into_operand(self) -> Operand<A> {
        Operand::Tensor(self)
    }
}

impl<A: Element> IntoOperand<A> for &Var<A> {
    fn into_operand(self) -> Operand<A> {
        Operand::Tensor(self.clone())
    }
}

impl<A: Element> IntoOperand<A> for &Param<A> {
    fn into_operand(self) -> Operand<A> {
        Operand::Tensor(self.var().clone())
    }
}

/// An `f64` scalar, for a tensor of any element type: so that `h * 0.5`
/// type-checks in code generic over `A: Element` (a literal is an `f64`
/// unless something says otherwise); it is rounded for an `f32` tensor.
impl<A: Element> IntoOperand<A> for f64 {
    fn into_operand(self) -> Operand<A> {
        Operand::Scalar(A::from_f64_lossy(self))
    }
}

/// An `f32` scalar, for an `f32` tensor.
impl IntoOperand<f32> for f32 {
    fn into_operand(self) -> Operand<f32> {
        Operand::Scalar(self)
    }
}
