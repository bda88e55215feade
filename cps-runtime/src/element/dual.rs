//! Dual numbers: a value and its derivative along one direction, carried
//! through every operation together (forward-mode differentiation).
//!
//! A tensor of [`Dual`] elements runs through the runtime's operations as
//! a tensor of `f32` or `f64` does, and its backward pass too: so the
//! gradient a backward pass computes comes out with its own derivative
//! along the direction the inputs' tangents give. That derivative of a
//! gradient is a Hessian-vector product ([`hvp`](crate::higher_order::hvp)):
//! forward mode over reverse mode, with no operation written twice.
//!
//! The arithmetic and comparisons are here; the elementary functions and
//! their derivatives are in `dual/float.rs`.

mod float;

use std::cmp::Ordering;
use std::fmt;
use std::iter::Sum;
use std::ops::{
    Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Rem, RemAssign, Sub, SubAssign,
};

use ndarray::{ArrayD, ScalarOperand, Zip};
use num_traits::{FromPrimitive, Num, NumCast, One, ToPrimitive, Zero};

use super::Element;

/// A dual number `value + tangent·ε` with `ε² = 0`: the value of a
/// quantity and its derivative along one direction. Every function `f`
/// of the runtime maps `x + t·ε` to `f(x) + f'(x)·t·ε`.
///
/// Comparisons and equality look at the value only, so that every
/// decision (a `max`, a ReLU, a clamp, a mask, a tie) is the one the same
/// code makes on the values alone: the forward values are those of the
/// plain element type, and the tangent follows the branch taken. Only
/// [`Zero::is_zero`] reads both parts, so that the kernels' "`beta = 0`
/// overwrites" shortcut never drops a tangent.
///
/// ```
/// use cps_runtime::element::Dual;
/// use num_traits::Float;
///
/// // d/dx sin(x²) at x = 1.5 is 2x·cos(x²).
/// let x = Dual::new(1.5f64, 1.0);
/// let y = (x * x).sin();
/// assert_eq!(y.value, (2.25f64).sin());
/// assert!((y.tangent - 3.0 * (2.25f64).cos()).abs() < 1e-15);
/// ```
// `repr(C)`: the value, then the tangent, so that the kernels can read a
// slice of dual numbers as one of values and tangents in turn.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct Dual<A> {
    /// The value.
    pub value: A,
    /// Its derivative along the direction of differentiation.
    pub tangent: A,
}

impl<A: Element> Dual<A> {
    /// `value + tangent·ε`.
    pub fn new(value: A, tangent: A) -> Self {
        Dual { value, tangent }
    }

    /// A constant: `value + 0·ε`.
    pub fn constant(value: A) -> Self {
        Dual {
            value,
            tangent: A::zero(),
        }
    }

    /// `f(value) + f'(value)·tangent·ε`, given `f(value)` and `f'(value)`.
    #[inline]
    fn chain(self, value: A, derivative: A) -> Self {
        Dual {
            value,
            tangent: derivative * self.tangent,
        }
    }
}

/// An array of dual numbers from the values and the tangents, of one
/// shape.
///
/// # Panics
/// When the shapes differ, naming both.
///
/// ```
/// use cps_runtime::element::dual;
/// use ndarray::array;
///
/// let x = dual::lift(&array![1.0f64, 2.0].into_dyn(), &array![0.5, 0.0].into_dyn());
/// assert_eq!(x[[0]].tangent, 0.5);
/// let (values, tangents) = dual::split(&x);
/// assert_eq!(values, array![1.0, 2.0].into_dyn());
/// assert_eq!(tangents, array![0.5, 0.0].into_dyn());
/// ```
pub fn lift<A: Element>(values: &ArrayD<A>, tangents: &ArrayD<A>) -> ArrayD<Dual<A>> {
    assert_eq!(
        values.shape(),
        tangents.shape(),
        "dual::lift: values of shape {:?} and tangents of shape {:?}",
        values.shape(),
        tangents.shape()
    );
    Zip::from(values)
        .and(tangents)
        .map_collect(|&v, &t| Dual::new(v, t))
}

/// The values and the tangents of an array of dual numbers.
pub fn split<A: Element>(duals: &ArrayD<Dual<A>>) -> (ArrayD<A>, ArrayD<A>) {
    (duals.mapv(|d| d.value), duals.mapv(|d| d.tangent))
}

impl<A: Element> PartialEq for Dual<A> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<A: Element> PartialOrd for Dual<A> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.value.partial_cmp(&other.value)
    }
}

impl<A: Element> fmt::Display for Dual<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} + {}ε", self.value, self.tangent)
    }
}

impl<A: Element> Neg for Dual<A> {
    type Output = Self;
    fn neg(self) -> Self {
        Dual::new(-self.value, -self.tangent)
    }
}

impl<A: Element> Add for Dual<A> {
    type Output = Self;
    #[inline]
    fn add(self, other: Self) -> Self {
        Dual::new(self.value + other.value, self.tangent + other.tangent)
    }
}

impl<A: Element> Sub for Dual<A> {
    type Output = Self;
    #[inline]
    fn sub(self, other: Self) -> Self {
        Dual::new(self.value - other.value, self.tangent - other.tangent)
    }
}

impl<A: Element> Mul for Dual<A> {
    type Output = Self;
    #[inline]
    fn mul(self, other: Self) -> Self {
        Dual::new(
            self.value * other.value,
            self.value * other.tangent + self.tangent * other.value,
        )
    }
}

impl<A: Element> Div for Dual<A> {
    type Output = Self;
    #[inline]
    fn div(self, other: Self) -> Self {
        let quotient = self.value / other.value;
        Dual::new(
            quotient,
            (self.tangent - quotient * other.tangent) / other.value,
        )
    }
}

impl<A: Element> Rem for Dual<A> {
    type Output = Self;
    /// `x − trunc(x/y)·y`, whose derivative is `dx − trunc(x/y)·dy`
    /// wherever the quotient's integer part is locally constant.
    fn rem(self, other: Self) -> Self {
        let whole = (self.value / other.value).trunc();
        Dual::new(
            self.value % other.value,
            self.tangent - whole * other.tangent,
        )
    }
}

macro_rules! assign_with {
    ($($trait:ident $method:ident $op:tt),*) => {$(
        impl<A: Element> $trait for Dual<A> {
            #[inline]
            fn $method(&mut self, other: Self) {
                *self = *self $op other;
            }
        }
    )*};
}
assign_with!(AddAssign add_assign +, SubAssign sub_assign -, MulAssign mul_assign *,
    DivAssign div_assign /, RemAssign rem_assign %);

impl<A: Element> Sum for Dual<A> {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::zero(), Add::add)
    }
}

impl<A: Element> Zero for Dual<A> {
    fn zero() -> Self {
        Dual::constant(A::zero())
    }
    fn is_zero(&self) -> bool {
        self.value.is_zero() && self.tangent.is_zero()
    }
}

impl<A: Element> One for Dual<A> {
    fn one() -> Self {
        Dual::constant(A::one())
    }
}

impl<A: Element> Num for Dual<A> {
    type FromStrRadixErr = A::FromStrRadixErr;
    fn from_str_radix(text: &str, radix: u32) -> Result<Self, Self::FromStrRadixErr> {
        A::from_str_radix(text, radix).map(Dual::constant)
    }
}

/// Conversions to primitives read the value.
impl<A: Element> ToPrimitive for Dual<A> {
    fn to_i64(&self) -> Option<i64> {
        self.value.to_i64()
    }
    fn to_u64(&self) -> Option<u64> {
        self.value.to_u64()
    }
    fn to_f32(&self) -> Option<f32> {
        self.value.to_f32()
    }
    fn to_f64(&self) -> Option<f64> {
        self.value.to_f64()
    }
}

/// Conversions from primitives make constants.
impl<A: Element> NumCast for Dual<A> {
    fn from<T: ToPrimitive>(n: T) -> Option<Self> {
        <A as NumCast>::from(n).map(Dual::constant)
    }
}

impl<A: Element> FromPrimitive for Dual<A> {
    fn from_i64(n: i64) -> Option<Self> {
        A::from_i64(n).map(Dual::constant)
    }
    fn from_u64(n: u64) -> Option<Self> {
        A::from_u64(n).map(Dual::constant)
    }
    fn from_f32(n: f32) -> Option<Self> {
        A::from_f32(n).map(Dual::constant)
    }
    fn from_f64(n: f64) -> Option<Self> {
        A::from_f64(n).map(Dual::constant)
    }
}

impl<A: Element> ScalarOperand for Dual<A> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_and_quotients_follow_the_rules_of_derivatives() {
        let x = Dual::new(3.0f64, 1.0);
        let y = Dual::new(-2.0f64, 0.5);
        let p = x * y;
        assert_eq!((p.value, p.tangent), (-6.0, 3.0 * 0.5 + 1.0 * -2.0));
        let q = x / y;
        assert_eq!(q.value, -1.5);
        // (x/y)' = (x' y − x y') / y² = (−2 − 1.5) / 4.
        assert!((q.tangent - (-3.5 / 4.0)).abs() < 1e-15);
        let r = Dual::new(7.5f64, 1.0) % Dual::new(2.0, 1.0);
        assert_eq!((r.value, r.tangent), (1.5, 1.0 - 3.0));
    }

    #[test]
    fn equality_and_order_read_the_value_and_zero_both_parts() {
        let a = Dual::new(1.0f64, 2.0);
        assert!(a == Dual::constant(1.0));
        assert!(a >= Dual::constant(1.0) && a <= Dual::constant(1.0));
        assert!(a < Dual::new(2.0, -5.0));
        assert_eq!(a.partial_cmp(&Dual::new(1.0, -3.0)), Some(Ordering::Equal));
        assert!(!Dual::new(0.0f64, 1.0).is_zero());
        assert!(Dual::new(0.0f64, 0.0).is_zero());
    }

    #[test]
    fn constants_from_primitives_have_no_tangent() {
        let c: Dual<f32> = <Dual<f32> as NumCast>::from(2.5f64).expect("in range");
        assert_eq!((c.value, c.tangent), (2.5, 0.0));
        assert_eq!(Dual::<f64>::from_i64(-3).map(|d| d.tangent), Some(0.0));
        assert_eq!(Dual::new(2.7f64, 1.0).to_i64(), Some(2));
        let total: Dual<f64> = [Dual::new(1.0, 1.0), Dual::new(2.0, -3.0)]
            .into_iter()
            .sum();
        assert_eq!((total.value, total.tangent), (3.0, -2.0));
    }
}
