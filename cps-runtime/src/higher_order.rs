//! Second order and forward mode: Hessian-vector products ([`hvp`]) and
//! directional derivatives ([`jvp`]).
//!
//! Both run the function on [`Dual`] numbers: each input `x` becomes
//! `x + v·ε` for its direction `v`, and every operation carries the
//! derivative along `v` beside its value (forward mode). [`jvp`] reads the
//! output's tangent. [`hvp`] also runs the backward pass, on the same dual
//! numbers: every backward step is ordinary arithmetic, so the gradients
//! it makes carry their own derivatives along `v`, and the derivative of
//! the gradient along `v` is the Hessian times `v` (forward over reverse).
//! Every operation of the runtime is written once, generic over its
//! element type, so every one supports this; none needs a rule of its own.
//!
//! The function must be generic over the element type (or written for
//! `Dual<f64>`): it receives its inputs as `Var<Dual<A>>`. Parameters it
//! captures are `Param<Dual<A>>`; a parameter built with a tangent
//! (`Param::new(dual::lift(&value, &direction))`) makes the products with
//! respect to parameters, read from its gradient with [`dual::split`]
//! (see [`hvp`]'s second example).
//!
//! A product costs a few gradients: every dual multiplication is three
//! real ones, and a product of matrices three real products (the
//! benchmark `bench/hvp.sh` measures the ratio to one gradient).

use ndarray::ArrayD;

use crate::computation::Computation;
use crate::custom::pull_back;
use crate::element::Element;
use crate::element::dual::{self, Dual};
use crate::var::Var;

/// What [`jvp`] returns: the output and its derivative along the inputs'
/// directions.
#[derive(Clone, Debug, PartialEq)]
pub struct Jvp<A: Element> {
    /// The value of the function's output.
    pub output: ArrayD<A>,
    /// `J·v`: the derivative of the output along the directions, where
    /// `J` is the Jacobian with respect to all the inputs together and `v`
    /// the directions, stacked.
    pub tangent: ArrayD<A>,
}

/// What [`hvp`] returns: the value, the gradient and the Hessian-vector
/// product of a scalar function.
#[derive(Clone, Debug, PartialEq)]
pub struct Hvp<A: Element, const N: usize> {
    /// The function's value.
    pub value: A,
    /// Its gradient with respect to each input.
    pub gradient: [ArrayD<A>; N],
    /// For each input `i`, `Σⱼ Hᵢⱼ·vⱼ`: the Hessian's block rows of input
    /// `i` times the directions `v` (the derivative of input `i`'s gradient
    /// along `v`).
    pub product: [ArrayD<A>; N],
}

/// The inputs as dual numbers along their directions.
fn along<A: Element, const N: usize>(
    inputs: [ArrayD<A>; N],
    directions: [ArrayD<A>; N],
    op: &str,
) -> [ArrayD<Dual<A>>; N] {
    let mut directions = directions.into_iter();
    inputs.map(|x| {
        let v = directions.next().expect("as many directions as inputs");
        assert_eq!(
            x.shape(),
            v.shape(),
            "{op}: an input of shape {:?} has a direction of shape {:?}",
            x.shape(),
            v.shape()
        );
        dual::lift(&x, &v)
    })
}

/// A Jacobian-vector product: the output of `f` at `inputs` and its
/// derivative along `directions` (one per input, of its shape), in one
/// forward run. No backward pass runs (the inputs collect no gradient).
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::element::Dual;
/// use cps_runtime::higher_order::jvp;
/// use ndarray::array;
///
/// // f(x, y) = x·sin(y): along (1, 0) its derivative is sin(y), along
/// // (0, 1) it is x·cos(y); along (a, b), a·sin(y) + b·x·cos(y).
/// let result = jvp(
///     |[x, y]: [Var<Dual<f64>>; 2]| {
///         lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| {
///             y.sin().bind(|s| (&x * &s).bind(|out| k(out)))
///         })
///     },
///     [array![2.0].into_dyn(), array![0.5].into_dyn()],
///     [array![1.0].into_dyn(), array![3.0].into_dyn()],
/// );
/// assert_eq!(result.output[0], 2.0 * 0.5f64.sin());
/// assert!((result.tangent[0] - (0.5f64.sin() + 3.0 * 2.0 * 0.5f64.cos())).abs() < 1e-15);
/// ```
///
/// # Panics
/// When a direction's shape is not its input's.
pub fn jvp<A, C, const N: usize>(
    f: impl FnOnce([Var<Dual<A>>; N]) -> C,
    inputs: [ArrayD<A>; N],
    directions: [ArrayD<A>; N],
) -> Jvp<A>
where
    A: Element,
    C: Computation<Output = Var<Dual<A>>>,
{
    let leaves = along(inputs, directions, "jvp").map(Var::constant);
    let mut output = None;
    f(leaves).bind(|out: Var<Dual<A>>| output = Some(out.array().clone()));
    let output = output.expect("the computation never called its continuation");
    let (output, tangent) = dual::split(&output);
    Jvp { output, tangent }
}

/// A Hessian-vector product of a scalar function: its value, gradient and
/// Hessian times `directions` (one per input, of its shape) at `inputs`,
/// from one forward and one backward run on dual numbers.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::element::Dual;
/// use cps_runtime::higher_order::hvp;
/// use ndarray::array;
///
/// // f(x) = Σ x³: the gradient is 3x², the Hessian diag(6x).
/// let result = hvp(
///     |[x]: [Var<Dual<f64>>; 1]| {
///         lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| {
///             x.pow(Dual::constant(3.0)).bind(|c| c.sum().bind(|s| k(s)))
///         })
///     },
///     [array![1.0, 2.0].into_dyn()],
///     [array![1.0, -1.0].into_dyn()],
/// );
/// assert_eq!(result.value, 9.0);
/// assert_eq!(result.gradient[0], array![3.0, 12.0].into_dyn());
/// assert_eq!(result.product[0], array![6.0, -12.0].into_dyn());
/// ```
///
/// With respect to parameters: give each parameter its direction as its
/// tangent, and read the product from its gradient.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::element::{dual, Dual};
/// use cps_runtime::higher_order::hvp;
/// use ndarray::array;
///
/// // f(w) = (w·x)² for a fixed x: the Hessian is 2·x xᵀ.
/// let (w, x) = (array![1.0f64, 2.0].into_dyn(), array![3.0, -1.0].into_dyn());
/// let v = array![0.5, 1.0].into_dyn();
/// let w_dual = Param::new(dual::lift(&w, &v));
/// let x = x.mapv(Dual::constant);
/// hvp(
///     |[]: [Var<Dual<f64>>; 0]| {
///         let (w, x) = (w_dual.var().clone(), Var::constant(x.clone()));
///         lazy(move |k: &mut dyn FnMut(Var<Dual<f64>>)| {
///             w.dot(&x).bind(|d| d.square().bind(|s| k(s)))
///         })
///     },
///     [],
///     [],
/// );
/// let (gradient, product) = dual::split(&w_dual.grad());
/// // gradient 2(w·x)x = 2·1·x; product 2x(x·v) = 2x·0.5.
/// assert_eq!(gradient, array![6.0, -2.0].into_dyn());
/// assert_eq!(product, array![3.0, -1.0].into_dyn());
/// ```
///
/// # Panics
/// When a direction's shape is not its input's, or when the output has
/// more than one element (sum it, or take the Hessian-vector product of
/// each element in turn).
pub fn hvp<A, C, const N: usize>(
    f: impl FnOnce([Var<Dual<A>>; N]) -> C,
    inputs: [ArrayD<A>; N],
    directions: [ArrayD<A>; N],
) -> Hvp<A, N>
where
    A: Element,
    C: Computation<Output = Var<Dual<A>>>,
{
    let mut value = A::zero();
    let seed = |out: &ArrayD<Dual<A>>| {
        assert!(
            out.len() == 1,
            "hvp: the function's output has shape {:?}; a Hessian-vector product needs a \
             one-element (scalar) output",
            out.shape()
        );
        value = out.iter().next().map_or(A::zero(), |d| d.value);
        ArrayD::from_elem(out.raw_dim(), Dual::constant(A::one()))
    };
    let pulled = pull_back(f, along(inputs, directions, "hvp"), seed, "hvp");
    let mut gradient = pulled.grads.map(|g| dual::split(&g));
    let product = std::array::from_fn(|i| std::mem::take(&mut gradient[i].1));
    Hvp {
        value,
        gradient: gradient.map(|(g, _)| g),
        product,
    }
}
