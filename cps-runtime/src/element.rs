//! The element types a tensor can hold.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::{Float, FromPrimitive};

/// A floating-point element type of a [`Var`](crate::Var): `f32` (the
/// default, for training) or `f64` (for gradient checks).
///
/// The trait is sealed: it is implemented for exactly those two types.
/// Everything an operation needs of an element is here: arithmetic
/// (`Float` and the assignment operators), ndarray's scalar traits, and
/// conversions from and to `f64`.
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
}

impl Element for f32 {
    fn from_f64_lossy(value: f64) -> Self {
        value as f32
    }
    fn to_f64_lossless(self) -> f64 {
        f64::from(self)
    }
}

impl Element for f64 {
    fn from_f64_lossy(value: f64) -> Self {
        value
    }
    fn to_f64_lossless(self) -> f64 {
        self
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
}
