//! Elementwise functions beyond the arithmetic and the common activations
//! of [`elementwise`](crate::ops::elementwise): trigonometry, real powers,
//! `log1p`/`expm1`, smooth and leaky rectifiers, the error function and the
//! normal distribution's CDF, clamping, the sign, and selection by a mask.
//!
//! Each function's derivative is written beside it, as a rule giving the
//! input's gradient from the incoming gradient `g`, the input `x` and the
//! output `y`. Where a function has a kink (`leaky_relu`, `elu`, `clamp`)
//! the doc comment says which side's derivative is taken there.
//!
//! ```
//! use cps_runtime::*;
//! use ndarray::array;
//!
//! let x = Param::new(array![0.0f64, 1.0]);
//! let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
//!     x.sin().bind(|s| s.sum().bind(|l| k(l)))
//! });
//! assert!((loss.backward() - 1.0f64.sin()).abs() < 1e-15);
//! // d sin(x) = cos(x)
//! assert_eq!(x.grad(), array![1.0, 1.0f64.cos()].into_dyn());
//! ```

use ndarray::{ArrayD, Dimension, Zip};

use crate::computation::{BackwardStep, BoxedStep, Pending};
use crate::element::Element;
use crate::flat::{slice, slice_mut};
use crate::memory::{self, unboxed};
use crate::ops::shape_mismatch;
use crate::var::Var;

/// `value` in the element type: the constants of the rules below.
fn constant<A: Element>(value: f64) -> A {
    A::from_f64_lossy(value)
}

/// The logistic function `1 / (1 + e^-x)`, never exponentiating a positive
/// number (so neither branch overflows).
fn logistic<A: Element>(x: A) -> A {
    if x >= A::zero() {
        A::one() / (A::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (A::one() + e)
    }
}

/// The standard normal density `e^(-x^2/2) / sqrt(2 pi)`.
fn normal_density<A: Element>(x: A) -> A {
    let scale = constant::<A>(1.0 / (2.0 * std::f64::consts::PI).sqrt());
    scale * (-(x * x) / constant(2.0)).exp()
}

/// The standard normal CDF `(1 + erf(x / sqrt 2)) / 2`, written as
/// `erfc(-x / sqrt 2) / 2`: equal, but without the cancellation that
/// rounds the lower tail (`x < -8` or so in `f64`) to exactly 0.
fn normal_cdf<A: Element>(x: A) -> A {
    (-x * constant(std::f64::consts::FRAC_1_SQRT_2)).erfc() / constant(2.0)
}

/// The result `f(x)` elementwise, with the backward step that adds
/// `rule(g, x, y)` into `x`'s gradient for every element (`g` the incoming
/// gradient, `y = f(x)`).
fn map<A: Element, F, R>(
    x: &Var<A>,
    op: &'static str,
    f: F,
    rule: R,
) -> Pending<A, impl BackwardStep<A> + use<A, F, R>>
where
    F: Fn(A) -> A,
    R: Fn(A, A, A) -> A,
{
    let out = match x.flat() {
        // SAFETY: `xs` is all of `x`, and the loop writes every element.
        Some(xs) => unsafe {
            Var::computed_like(op, x.requires_grad(), x.array(), xs.len(), |out| {
                for (o, &x) in out.iter_mut().zip(xs) {
                    o.write(f(x));
                }
            })
        },
        None => Var::computed(x.array().mapv(f), op, x.requires_grad()),
    };
    let input = x.clone();
    Pending::from_var(
        out,
        BoxedStep(move |y: &ArrayD<A>, grad: Box<ArrayD<A>>| add_gradient(&input, grad, y, rule)),
    )
}

/// Adds `rule(g, x, y)` elementwise into `input`'s gradient. When the input
/// has no gradient yet, the incoming gradient's buffer is overwritten and
/// handed on, so a chain of these allocates nothing backward.
fn add_gradient<A: Element>(
    input: &Var<A>,
    mut grad: Box<ArrayD<A>>,
    y: &ArrayD<A>,
    rule: impl Fn(A, A, A) -> A,
) {
    if !input.requires_grad() {
        memory::recycle(unboxed(grad));
        return;
    }
    let x = input.array();
    if !input.has_grad() {
        // Standard-layout arrays (the usual case) are walked as slices.
        match (slice_mut(&mut grad), slice(x), slice(y)) {
            (Some(gs), Some(xs), Some(ys)) if gs.len() == xs.len() && xs.len() == ys.len() => {
                for ((g, &x), &y) in gs.iter_mut().zip(xs).zip(ys) {
                    *g = rule(*g, x, y);
                }
            }
            _ => Zip::from(&mut *grad)
                .and(x)
                .and(y)
                .for_each(|g, &x, &y| *g = rule(*g, x, y)),
        }
        input.accumulate_boxed(grad);
    } else {
        input.accumulate_into(|buffer| {
            Zip::from(buffer)
                .and(&*grad)
                .and(x)
                .and(y)
                .for_each(|b, &g, &x, &y| *b += rule(g, x, y))
        });
        memory::recycle(unboxed(grad));
    }
}

impl<A: Element> Var<A> {
    /// The sine, elementwise (radians).
    pub fn sin(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(self, "sin", A::sin, |g, x, _| g * x.cos())
    }

    /// The cosine, elementwise (radians).
    pub fn cos(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(self, "cos", A::cos, |g, x, _| -(g * x.sin()))
    }

    /// The real power `x^p`, elementwise, for a constant exponent `p`.
    ///
    /// The gradient is `p x^(p-1)`, and 0 when `p = 0`. The power is that
    /// of [`f64::powf`]: for `x < 0` it is NaN unless `p` is an integer
    /// (use [`powi`](Var::powi) for those); at `x = 0` the gradient is 0 for
    /// `p > 1`, 1 for `p = 1` and infinite for `0 < p < 1`, and the value
    /// itself is infinite for `p < 0`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![4.0f64]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.pow(1.5).bind(|y| y.sum().bind(|l| k(l))));
    /// assert_eq!(loss.backward(), 8.0);
    /// assert_eq!(x.grad()[0], 1.5 * 2.0); // 1.5 x^0.5
    /// ```
    pub fn pow(&self, p: A) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(
            self,
            "pow",
            move |x| x.powf(p),
            move |g, x, _| {
                if p == A::zero() {
                    A::zero()
                } else {
                    // Not p y / x, which is 0/0 at x = 0.
                    g * p * x.powf(p - A::one())
                }
            },
        )
    }

    /// The power `x^e` elementwise, with an exponent tensor `e` of the same
    /// shape; the gradient flows to both.
    ///
    /// The base's gradient is `e x^(e-1)` (0 where `e = 0`), as in
    /// [`pow`](Var::pow). The exponent's is `x^e ln x`, which is defined for
    /// `x > 0`; at `x = 0` it is taken to be 0 where `e > 0` (the power is 0
    /// for every positive exponent), and for `x < 0` it is NaN.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![2.0f64]);
    /// let e = Param::new(array![3.0f64]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.pow_var(&e).bind(|y| y.sum().bind(|l| k(l))));
    /// assert_eq!(loss.backward(), 8.0);
    /// assert_eq!(x.grad()[0], 12.0); // 3 x^2
    /// assert!((e.grad()[0] - 8.0 * 2.0f64.ln()).abs() < 1e-14); // x^e ln x
    /// ```
    ///
    /// # Panics
    /// When the shapes differ.
    #[track_caller]
    pub fn pow_var(&self, exponent: &Var<A>) -> Pending<A, impl BackwardStep<A> + use<A>> {
        if self.shape() != exponent.shape() {
            shape_mismatch(
                "pow_var",
                self.shape(),
                exponent.shape(),
                "the base and the exponent must have the same shape",
            );
        }
        let value = Zip::from(self.array())
            .and(exponent.array())
            .map_collect(|&x, &e| x.powf(e));
        let (base, exponent) = (self.clone(), exponent.clone());
        Pending::new(
            "pow_var",
            value,
            base.requires_grad() || exponent.requires_grad(),
            move |y: &ArrayD<A>, grad: ArrayD<A>| {
                if base.requires_grad() {
                    let dx = Zip::from(&grad)
                        .and(base.array())
                        .and(exponent.array())
                        .map_collect(|&g, &x, &e| {
                            if e == A::zero() {
                                A::zero()
                            } else {
                                g * e * x.powf(e - A::one())
                            }
                        });
                    base.accumulate(dx);
                }
                if exponent.requires_grad() {
                    let de = Zip::from(&grad)
                        .and(base.array())
                        .and(y)
                        .map_collect(|&g, &x, &y| {
                            if x == A::zero() && y == A::zero() {
                                A::zero()
                            } else {
                                g * y * x.ln()
                            }
                        });
                    exponent.accumulate(de);
                }
                memory::recycle(grad);
            },
        )
    }

    /// `ln(1 + x)`, elementwise, accurate for small `x` (where `1 + x`
    /// would round away its digits).
    pub fn log1p(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(self, "log1p", A::ln_1p, |g, x, _| g / (A::one() + x))
    }

    /// `e^x - 1`, elementwise, accurate for small `x`.
    pub fn expm1(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        // The derivative e^x from x, not as y + 1, which loses the digits
        // of e^x when it is small.
        map(self, "expm1", A::exp_m1, |g, x, _| g * x.exp())
    }

    /// The softplus `ln(1 + e^x)`, elementwise, a smooth rectifier; its
    /// derivative is the logistic function.
    ///
    /// Computed as `ln(1 + e^-|x|) + max(x, 0)`, which neither overflows
    /// for large `x` nor loses the small values for very negative `x`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![0.0f64, 1000.0, -40.0]);
    /// let y = lazy(|k: &mut dyn FnMut(Var<f64>)| x.softplus().bind(|y| k(y))).eval();
    /// assert!((y.array()[0] - 2.0f64.ln()).abs() < 1e-15);
    /// assert_eq!(y.array()[1], 1000.0);
    /// assert!((y.array()[2] / (-40.0f64).exp() - 1.0).abs() < 1e-15);
    /// ```
    pub fn softplus(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(
            self,
            "softplus",
            |x| (-x.abs()).exp().ln_1p() + x.max(A::zero()),
            |g, x, _| g * logistic(x),
        )
    }

    /// The leaky rectifier: `x` for `x > 0`, `slope * x` otherwise,
    /// elementwise. At 0 the derivative is taken to be `slope` (the left
    /// side's), as [`relu`](Var::relu) takes 0 there.
    pub fn leaky_relu(&self, slope: A) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(
            self,
            "leaky_relu",
            move |x| if x > A::zero() { x } else { slope * x },
            move |g, x, _| if x > A::zero() { g } else { g * slope },
        )
    }

    /// The exponential linear unit: `x` for `x > 0`, `alpha (e^x - 1)`
    /// otherwise, elementwise. The derivative is 1 for `x > 0` and
    /// `alpha e^x` otherwise (so `alpha` at 0: the left side's, which
    /// agrees with the right for the usual `alpha = 1`).
    pub fn elu(&self, alpha: A) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(
            self,
            "elu",
            move |x| if x > A::zero() { x } else { alpha * x.exp_m1() },
            move |g, x, _| {
                if x > A::zero() {
                    g
                } else {
                    g * alpha * x.exp()
                }
            },
        )
    }

    /// The error function `erf(x) = 2/sqrt(pi) * integral from 0 to x of
    /// e^(-t^2) dt`, elementwise, with derivative `2/sqrt(pi) e^(-x^2)`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![0.0f64, 1.0]);
    /// let y = lazy(|k: &mut dyn FnMut(Var<f64>)| x.erf().bind(|y| k(y))).eval();
    /// assert_eq!(y.array()[0], 0.0);
    /// assert!((y.array()[1] - 0.8427007929497149).abs() < 1e-15);
    /// ```
    pub fn erf(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let scale = constant::<A>(std::f64::consts::FRAC_2_SQRT_PI);
        map(self, "erf", A::erf, move |g, x, _| {
            g * scale * (-(x * x)).exp()
        })
    }

    /// The standard normal distribution's cumulative distribution function
    /// `Phi(x) = (1 + erf(x / sqrt 2)) / 2`, elementwise; its derivative is
    /// the density `e^(-x^2/2) / sqrt(2 pi)`.
    ///
    /// Computed through the complementary error function, so that the lower
    /// tail keeps its relative precision (`Phi(-10)` is about `7.6e-24`,
    /// not 0).
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![0.0f64, -10.0]);
    /// let y = lazy(|k: &mut dyn FnMut(Var<f64>)| x.normal_cdf().bind(|y| k(y))).eval();
    /// assert_eq!(y.array()[0], 0.5);
    /// assert!((y.array()[1] / 7.619853024160527e-24 - 1.0).abs() < 1e-12);
    /// ```
    pub fn normal_cdf(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(self, "normal_cdf", normal_cdf, |g, x, _| {
            g * normal_density(x)
        })
    }

    /// The Gaussian error linear unit in its exact form, `x Phi(x)` with
    /// `Phi` the standard normal CDF ([`normal_cdf`](Var::normal_cdf)), not
    /// the `tanh` approximation; its derivative is `Phi(x) + x phi(x)`, `phi`
    /// the normal density.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![1.0f64]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.gelu().bind(|y| y.sum().bind(|l| k(l))));
    /// assert!((loss.backward() - 0.8413447460685429).abs() < 1e-15);
    /// // Phi(1) + phi(1)
    /// assert!((x.grad()[0] - (0.8413447460685429 + 0.24197072451914337)).abs() < 1e-15);
    /// ```
    pub fn gelu(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        map(
            self,
            "gelu",
            |x| x * normal_cdf(x),
            |g, x, _| g * (normal_cdf(x) + x * normal_density(x)),
        )
    }

    /// Clamps every element into `[lo, hi]`. The gradient passes (times 1)
    /// where `lo <= x <= hi`, boundaries included, and is 0 outside, where
    /// the output does not depend on `x`. NaN stays NaN, with gradient 0.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![-2.0f64, 0.5, 1.0, 3.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| x.clamp(0.0, 1.0).bind(|y| y.sum().bind(|l| k(l))));
    /// assert_eq!(loss.backward(), 0.0 + 0.5 + 1.0 + 1.0);
    /// assert_eq!(x.grad(), array![0.0, 1.0, 1.0, 0.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When `lo > hi`, or either is NaN.
    #[track_caller]
    pub fn clamp(&self, lo: A, hi: A) -> Pending<A, impl BackwardStep<A> + use<A>> {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            panic!(
                "clamp: expected lo <= hi, got lo = {lo} and hi = {hi} (input shape {:?})",
                self.shape()
            );
        }
        map(
            self,
            "clamp",
            move |x| {
                if x < lo {
                    lo
                } else if x > hi {
                    hi
                } else {
                    x
                }
            },
            move |g, x, _| if lo <= x && x <= hi { g } else { A::zero() },
        )
    }

    /// The sign, elementwise: 1 for positive elements, -1 for negative
    /// ones, 0 for zeros (of either sign), NaN for NaN.
    ///
    /// Piecewise constant, so no gradient flows through it: the result is
    /// a constant, whatever the input.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![-2.0f32, 0.0, 3.0]);
    /// x.sign().bind(|s| {
    ///     assert_eq!(s.array(), &array![-1.0, 0.0, 1.0].into_dyn());
    ///     assert!(!s.requires_grad());
    /// });
    /// ```
    pub fn sign(&self) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let value = self.array().mapv(|x| {
            if x > A::zero() {
                A::one()
            } else if x < A::zero() {
                -A::one()
            } else if x.is_nan() {
                x
            } else {
                A::zero()
            }
        });
        Pending::new("sign", value, false, |_: &ArrayD<A>, _: ArrayD<A>| {})
    }

    /// Selects elementwise by a mask of zeros and ones: `self` where the
    /// mask is 1, `other` where it is 0. Each element's gradient goes to
    /// the side it was taken from (the other side gets 0 there); the mask
    /// gets none, even when it requires one.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let a = Param::new(array![1.0f64, 2.0, 3.0]);
    /// let b = Param::new(array![10.0f64, 20.0, 30.0]);
    /// let mask = Var::constant(array![1.0f64, 0.0, 1.0]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| a.where_(&mask, &b).bind(|y| y.sum().bind(|l| k(l))));
    /// assert_eq!(loss.backward(), 1.0 + 20.0 + 3.0);
    /// assert_eq!(a.grad(), array![1.0, 0.0, 1.0].into_dyn());
    /// assert_eq!(b.grad(), array![0.0, 1.0, 0.0].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the three shapes are not all equal, or the mask holds anything
    /// but 0 and 1.
    #[track_caller]
    pub fn where_(
        &self,
        mask: &Var<A>,
        other: &Var<A>,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        if mask.shape() != self.shape() {
            shape_mismatch(
                "where_",
                mask.shape(),
                self.shape(),
                "the mask must have the shape of the values it selects between",
            );
        }
        if other.shape() != self.shape() {
            shape_mismatch(
                "where_",
                self.shape(),
                other.shape(),
                "both sides must have the same shape",
            );
        }
        if let Some((index, value)) = mask
            .array()
            .indexed_iter()
            .find(|&(_, &m)| m != A::zero() && m != A::one())
        {
            panic!(
                "where_: the mask must hold only 0 and 1, got {value} at {:?} (shape {:?})",
                index.slice(),
                mask.shape()
            );
        }
        let value = Zip::from(mask.array())
            .and(self.array())
            .and(other.array())
            .map_collect(|&m, &a, &b| if m == A::one() { a } else { b });
        let (chosen, other, mask) = (self.clone(), other.clone(), mask.clone());
        Pending::new(
            "where_",
            value,
            chosen.requires_grad() || other.requires_grad(),
            move |_: &ArrayD<A>, mut grad: ArrayD<A>| {
                // Selected, not multiplied by the mask: an infinite gradient
                // on one side leaves the other's zeros alone.
                if other.requires_grad() {
                    other.accumulate_with(|buffer| {
                        Zip::from(buffer)
                            .and(&grad)
                            .and(mask.array())
                            .for_each(|b, &g, &m| {
                                if m == A::zero() {
                                    *b += g;
                                }
                            })
                    });
                }
                if chosen.requires_grad() {
                    Zip::from(&mut grad).and(mask.array()).for_each(|g, &m| {
                        if m == A::zero() {
                            *g = A::zero();
                        }
                    });
                    chosen.accumulate(grad);
                } else {
                    memory::recycle(grad);
                }
            },
        )
    }
}
