//! The element types a tensor can hold: `f32`, `f64`, and [`Dual`]
//! numbers of either (forward-mode derivatives, for Hessian-vector
//! products).

pub mod dual;
pub use dual::Dual;

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::{Float, FromPrimitive};

/// A floating-point element type of a [`Var`](crate::Var): `f32` (the
/// default, for training), `f64` (for gradient checks), or a [`Dual`]
/// number of an element type (for [`jvp`](crate::higher_order::jvp) and
/// [`hvp`](crate::higher_order::hvp)).
///
/// The trait is sealed: it is implemented for exactly those types.
/// Everything an operation needs of an element is here: arithmetic
/// (`Float` and the assignment operators), ndarray's scalar traits,
/// conversions from and to `f64`, and the special functions `Float` lacks
/// (`erf`, `erfc`), which an element type must supply itself.
pub trait Element:
    Float
    + FromPrimitive
    + LinalgScalar
    + ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + sealed::Sealed
    + 'static
{
    /// Converts an `f64` constant into this type (rounding for `f32`).
    fn from_f64_lossy(value: f64) -> Self;
    /// Widens this value to `f64`.
    fn to_f64_lossless(self) -> f64;
    /// The error function `erf(x) = 2/sqrt(pi) * integral from 0 to x of
    /// e^(-t^2) dt`, to within a few units in the last place.
    fn erf(self) -> Self;
    /// The complementary error function `1 - erf(x)`, accurate where
    /// `erf(x)` is close to 1 (large `x`), where `1 - erf(x)` would round
    /// to 0: the normal distribution's lower tail needs it.
    fn erfc(self) -> Self;
}

impl Element for f32 {
    fn from_f64_lossy(value: f64) -> Self {
        value as f32
    }
    fn to_f64_lossless(self) -> f64 {
        f64::from(self)
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    fn erfc(self) -> Self {
        libm::erfcf(self)
    }
}

impl Element for f64 {
    fn from_f64_lossy(value: f64) -> Self {
        value
    }
    fn to_f64_lossless(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
    }
    fn erfc(self) -> Self {
        libm::erfc(self)
    }
}

mod sealed {
    //! The seal also carries the kernels each type dispatches to: the
    //! crate's own business, out of the public bounds.

    use crate::kernels::MatVecKernels;
    use crate::kernels::vector_math::VectorMath;

    pub trait Sealed: MatVecKernels + VectorMath {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
    impl<A: super::Element> Sealed for super::Dual<A> {}
}
