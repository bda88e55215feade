//! The elementary functions of dual numbers: each function's value and
//! its derivative times the tangent (`f(x + tε) = f(x) + f'(x)·t·ε`).
//!
//! Functions that are piecewise constant (`floor`, `round`, `signum`)
//! have no tangent; those that choose an argument (`max`, `min`, `abs`)
//! choose by value and carry the chosen argument's tangent.

use std::num::FpCategory;

use num_traits::{Float, One, Zero};

use super::Dual;
use crate::element::Element;

/// A constant of `A` from an `f64` literal.
fn c<A: Element>(value: f64) -> A {
    A::from_f64_lossy(value)
}

impl<A: Element> Float for Dual<A> {
    fn nan() -> Self {
        Dual::constant(A::nan())
    }
    fn infinity() -> Self {
        Dual::constant(A::infinity())
    }
    fn neg_infinity() -> Self {
        Dual::constant(A::neg_infinity())
    }
    fn neg_zero() -> Self {
        Dual::constant(A::neg_zero())
    }
    fn min_value() -> Self {
        Dual::constant(A::min_value())
    }
    fn min_positive_value() -> Self {
        Dual::constant(A::min_positive_value())
    }
    fn max_value() -> Self {
        Dual::constant(A::max_value())
    }
    fn epsilon() -> Self {
        Dual::constant(A::epsilon())
    }

    fn is_nan(self) -> bool {
        self.value.is_nan() || self.tangent.is_nan()
    }
    fn is_infinite(self) -> bool {
        self.value.is_infinite()
    }
    fn is_finite(self) -> bool {
        self.value.is_finite()
    }
    fn is_normal(self) -> bool {
        self.value.is_normal()
    }
    fn classify(self) -> FpCategory {
        self.value.classify()
    }
    fn is_sign_positive(self) -> bool {
        self.value.is_sign_positive()
    }
    fn is_sign_negative(self) -> bool {
        self.value.is_sign_negative()
    }
    fn integer_decode(self) -> (u64, i16, i8) {
        self.value.integer_decode()
    }

    fn floor(self) -> Self {
        Dual::constant(self.value.floor())
    }
    fn ceil(self) -> Self {
        Dual::constant(self.value.ceil())
    }
    fn round(self) -> Self {
        Dual::constant(self.value.round())
    }
    fn trunc(self) -> Self {
        Dual::constant(self.value.trunc())
    }
    fn fract(self) -> Self {
        Dual::new(self.value.fract(), self.tangent)
    }
    fn signum(self) -> Self {
        Dual::constant(self.value.signum())
    }

    fn abs(self) -> Self {
        if self.value.is_sign_negative() {
            -self
        } else {
            self
        }
    }
    fn max(self, other: Self) -> Self {
        if self.value.is_nan() || other.value > self.value {
            other
        } else {
            self
        }
    }
    fn min(self, other: Self) -> Self {
        if self.value.is_nan() || other.value < self.value {
            other
        } else {
            self
        }
    }
    fn abs_sub(self, other: Self) -> Self {
        (self - other).max(Self::zero())
    }

    fn mul_add(self, a: Self, b: Self) -> Self {
        self * a + b
    }
    fn recip(self) -> Self {
        let r = self.value.recip();
        self.chain(r, -r * r)
    }
    fn powi(self, n: i32) -> Self {
        if n == 0 {
            return Self::one();
        }
        let derivative = A::from_i32(n).expect("an i32 fits a float") * self.value.powi(n - 1);
        self.chain(self.value.powi(n), derivative)
    }
    fn powf(self, n: Self) -> Self {
        let value = self.value.powf(n.value);
        if n.tangent.is_zero() {
            // Only the base varies: n·x^(n−1), finite at x = 0 for n ≥ 1.
            if n.value.is_zero() {
                return Dual::constant(value);
            }
            return self.chain(value, n.value * self.value.powf(n.value - A::one()));
        }
        // d(x^n) = x^n·(n'·ln x + n·x'/x).
        Dual::new(
            value,
            value * (n.tangent * self.value.ln() + n.value * self.tangent / self.value),
        )
    }
    fn sqrt(self) -> Self {
        let root = self.value.sqrt();
        self.chain(root, (c::<A>(2.0) * root).recip())
    }
    fn cbrt(self) -> Self {
        let root = self.value.cbrt();
        self.chain(root, (c::<A>(3.0) * root * root).recip())
    }
    fn hypot(self, other: Self) -> Self {
        let h = self.value.hypot(other.value);
        let tangent = if h.is_zero() {
            A::zero()
        } else {
            (self.value * self.tangent + other.value * other.tangent) / h
        };
        Dual::new(h, tangent)
    }

    fn exp(self) -> Self {
        let e = self.value.exp();
        self.chain(e, e)
    }
    fn exp2(self) -> Self {
        let e = self.value.exp2();
        self.chain(e, e * c::<A>(std::f64::consts::LN_2))
    }
    fn exp_m1(self) -> Self {
        self.chain(self.value.exp_m1(), self.value.exp())
    }
    fn ln(self) -> Self {
        self.chain(self.value.ln(), self.value.recip())
    }
    fn log(self, base: Self) -> Self {
        self.ln() / base.ln()
    }
    fn log2(self) -> Self {
        let scale = c::<A>(std::f64::consts::LN_2);
        self.chain(self.value.log2(), (self.value * scale).recip())
    }
    fn log10(self) -> Self {
        let scale = c::<A>(std::f64::consts::LN_10);
        self.chain(self.value.log10(), (self.value * scale).recip())
    }
    fn ln_1p(self) -> Self {
        self.chain(self.value.ln_1p(), (A::one() + self.value).recip())
    }

    fn sin(self) -> Self {
        self.chain(self.value.sin(), self.value.cos())
    }
    fn cos(self) -> Self {
        self.chain(self.value.cos(), -self.value.sin())
    }
    fn sin_cos(self) -> (Self, Self) {
        let (s, co) = self.value.sin_cos();
        (self.chain(s, co), self.chain(co, -s))
    }
    fn tan(self) -> Self {
        let t = self.value.tan();
        self.chain(t, A::one() + t * t)
    }
    fn asin(self) -> Self {
        let v = self.value;
        self.chain(v.asin(), (A::one() - v * v).sqrt().recip())
    }
    fn acos(self) -> Self {
        let v = self.value;
        self.chain(v.acos(), -(A::one() - v * v).sqrt().recip())
    }
    fn atan(self) -> Self {
        let v = self.value;
        self.chain(v.atan(), (A::one() + v * v).recip())
    }
    /// `atan2(y, x)` with `self` as `y`: its derivative is
    /// `(x·dy − y·dx) / (x² + y²)`.
    fn atan2(self, other: Self) -> Self {
        let (y, x) = (self.value, other.value);
        let r2 = x * x + y * y;
        let tangent = if r2.is_zero() {
            A::zero()
        } else {
            (x * self.tangent - y * other.tangent) / r2
        };
        Dual::new(y.atan2(x), tangent)
    }

    fn sinh(self) -> Self {
        self.chain(self.value.sinh(), self.value.cosh())
    }
    fn cosh(self) -> Self {
        self.chain(self.value.cosh(), self.value.sinh())
    }
    fn tanh(self) -> Self {
        let t = self.value.tanh();
        self.chain(t, A::one() - t * t)
    }
    fn asinh(self) -> Self {
        let v = self.value;
        self.chain(v.asinh(), (v * v + A::one()).sqrt().recip())
    }
    fn acosh(self) -> Self {
        let v = self.value;
        self.chain(v.acosh(), (v * v - A::one()).sqrt().recip())
    }
    fn atanh(self) -> Self {
        let v = self.value;
        self.chain(v.atanh(), (A::one() - v * v).recip())
    }

    fn to_degrees(self) -> Self {
        let scale = c::<A>(180.0 / std::f64::consts::PI);
        Dual::new(self.value * scale, self.tangent * scale)
    }
    fn to_radians(self) -> Self {
        let scale = c::<A>(std::f64::consts::PI / 180.0);
        Dual::new(self.value * scale, self.tangent * scale)
    }
}

impl<A: Element> Element for Dual<A> {
    /// A constant.
    fn from_f64_lossy(value: f64) -> Self {
        Dual::constant(A::from_f64_lossy(value))
    }
    /// The value; the tangent is dropped.
    fn to_f64_lossless(self) -> f64 {
        self.value.to_f64_lossless()
    }
    fn erf(self) -> Self {
        let v = self.value;
        self.chain(
            v.erf(),
            c::<A>(std::f64::consts::FRAC_2_SQRT_PI) * (-v * v).exp(),
        )
    }
    fn erfc(self) -> Self {
        let v = self.value;
        self.chain(
            v.erfc(),
            -c::<A>(std::f64::consts::FRAC_2_SQRT_PI) * (-v * v).exp(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function's tangent against a central difference of its value
    /// at several points of its domain.
    #[test]
    fn every_derivative_agrees_with_central_differences() {
        type F = fn(Dual<f64>) -> Dual<f64>;
        let functions: [(&str, F, &[f64]); 30] = [
            ("recip", Float::recip, &[-2.0, 0.3, 4.0]),
            ("powi3", |x| x.powi(3), &[-1.5, 0.7, 2.0]),
            ("powi-2", |x| x.powi(-2), &[-1.5, 0.7, 2.0]),
            ("powf", |x| x.powf(Dual::constant(2.5)), &[0.3, 1.7]),
            ("pow_var", |x| x.powf(x), &[0.4, 1.3, 2.1]),
            ("sqrt", Float::sqrt, &[0.2, 3.0]),
            ("cbrt", Float::cbrt, &[-2.0, 0.5, 8.0]),
            ("hypot", |x| x.hypot(x * x), &[-1.0, 0.5]),
            ("exp", Float::exp, &[-3.0, 0.0, 1.2]),
            ("exp2", Float::exp2, &[-1.0, 2.5]),
            ("exp_m1", Float::exp_m1, &[-0.2, 1e-3, 2.0]),
            ("ln", Float::ln, &[0.1, 3.0]),
            ("log", |x| x.log(x + Dual::constant(3.0)), &[0.5, 2.0]),
            ("log2", Float::log2, &[0.3, 5.0]),
            ("log10", Float::log10, &[0.3, 5.0]),
            ("ln_1p", Float::ln_1p, &[-0.5, 0.2, 4.0]),
            ("sin", Float::sin, &[-1.0, 2.0]),
            ("cos", Float::cos, &[-1.0, 2.0]),
            ("sin_cos", |x| x.sin_cos().0 * x.sin_cos().1, &[-1.0, 0.4]),
            ("tan", Float::tan, &[-1.0, 0.4]),
            ("asin", Float::asin, &[-0.6, 0.3]),
            ("acos", Float::acos, &[-0.6, 0.3]),
            ("atan", Float::atan, &[-2.0, 0.3]),
            (
                "atan2",
                |x| x.atan2(x * x - Dual::constant(1.0)),
                &[-0.5, 0.3, 2.0],
            ),
            ("sinh", Float::sinh, &[-1.0, 0.7]),
            ("cosh", Float::cosh, &[-1.0, 0.7]),
            ("tanh", Float::tanh, &[-1.0, 0.7]),
            ("asinh", Float::asinh, &[-1.0, 0.7]),
            ("acosh", Float::acosh, &[1.5, 3.0]),
            ("atanh", Float::atanh, &[-0.5, 0.7]),
        ];
        let extra: [(&str, F, &[f64]); 6] = [
            ("erf", Element::erf, &[-1.2, 0.1, 2.0]),
            ("erfc", Element::erfc, &[-1.2, 0.1, 2.0]),
            ("abs", Float::abs, &[-1.2, 0.8]),
            ("max", |x| x.max(Dual::constant(0.5)), &[-1.2, 0.8]),
            ("to_degrees", Float::to_degrees, &[0.3]),
            ("mul_add", |x| x.mul_add(x, x), &[0.3, -2.0]),
        ];
        let h = 1e-6;
        for (name, f, points) in functions.iter().chain(&extra) {
            for &x in *points {
                let exact = f(Dual::new(x, 1.0)).tangent;
                let numeric =
                    (f(Dual::constant(x + h)).value - f(Dual::constant(x - h)).value) / (2.0 * h);
                let error = (exact - numeric).abs() / numeric.abs().max(1.0);
                assert!(error < 1e-7, "{name} at {x}: {exact} vs {numeric}");
            }
        }
    }

    /// A wrong rule is caught: the negative control of the check above.
    #[test]
    fn a_wrong_derivative_is_caught() {
        let wrong = |x: Dual<f64>| Dual::new(x.value.sin(), x.value.sin() * x.tangent);
        let (x, h) = (0.7f64, 1e-6);
        let numeric = ((x + h).sin() - (x - h).sin()) / (2.0 * h);
        assert!((wrong(Dual::new(x, 1.0)).tangent - numeric).abs() > 1e-3);
    }

    #[test]
    fn piecewise_constant_functions_have_no_tangent() {
        let x = Dual::new(2.6f64, 1.0);
        for f in [
            Float::floor,
            Float::ceil,
            Float::round,
            Float::trunc,
            Float::signum,
        ] {
            assert_eq!(f(x).tangent, 0.0);
        }
        assert_eq!(x.fract().tangent, 1.0);
        assert_eq!(Dual::new(0.0f64, 1.0).powf(Dual::constant(0.0)).value, 1.0);
        assert_eq!(
            Dual::new(0.0f64, 1.0).powf(Dual::constant(2.0)).tangent,
            0.0
        );
    }
}
