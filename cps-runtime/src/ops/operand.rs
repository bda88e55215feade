//! What may stand on either side of an arithmetic operator: a tensor
//! ([`Var`], [`Param`], by value or by reference) or a scalar.

use crate::element::Element;
use crate::param::Param;
use crate::var::Var;

/// The right-hand side of an arithmetic operator, resolved.
#[derive(Clone, Debug)]
pub enum Operand<A: Element> {
    /// A tensor: same shape as the other side, or a vector broadcast along
    /// the other side's last axis (a bias).
    Tensor(Var<A>),
    /// A scalar, applied to every element.
    Scalar(A),
}

/// Conversion into an [`Operand`]; lets `x + &param`, `x * 2.0` and
/// `x - y` all type-check.
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

impl IntoOperand<f32> for f32 {
    fn into_operand(self) -> Operand<f32> {
        Operand::Scalar(self)
    }
}

impl IntoOperand<f64> for f64 {
    fn into_operand(self) -> Operand<f64> {
        Operand::Scalar(self)
    }
}
