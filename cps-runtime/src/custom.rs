//! Beyond "run the forward, then reverse it": custom operations whose
//! backward step runs differentiable code ([`vjp`]), and checkpointed
//! segments that are computed again during the backward pass
//! ([`checkpoint`], [`checkpoint_with_rng`]).
//!
//! # A custom operation
//!
//! An operation is a function returning a [`Pending`](crate::Pending): its
//! value, computed now, and a backward step, a closure that runs when the
//! rest of the computation has returned and adds into the inputs'
//! gradients. The backward step keeps whatever the forward chose to move
//! into it, and it is ordinary code: it may run a whole differentiable
//! computation of its own, nested, and take a vector-Jacobian product with
//! [`vjp`]. Values bound before the operation (and parameters) are still
//! collecting their gradients while it runs, so a computation inside the
//! backward step that uses them sends them gradient like any other use.
//!
//! Here `softsign(x) = x / (1 + |x|)` has a forward written by hand and a
//! backward that differentiates a differentiable definition of it:
//!
//! ```
//! use cps_runtime::*;
//! use cps_runtime::custom::vjp;
//! use ndarray::{array, ArrayD};
//!
//! /// x / (1 + |x|), as a differentiable computation.
//! fn softsign_def(x: Var<f64>) -> impl Computation<Output = Var<f64>> {
//!     lazy(move |k: &mut dyn FnMut(Var<f64>)| {
//!         x.abs().bind(|a| (&a + 1.0).bind(|d| (&x / &d).bind(|y| k(y))))
//!     })
//! }
//!
//! fn softsign(x: &Var<f64>) -> Pending<f64, impl BackwardStep<f64>> {
//!     let input = x.clone();
//!     let value = x.array().mapv(|v| v / (1.0 + v.abs()));
//!     Pending::new("softsign", value, x.requires_grad(), move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
//!         let [dx] = vjp(|[x]| softsign_def(x), [input.array().clone()], grad).grads;
//!         input.accumulate(dx);
//!     })
//! }
//!
//! let x = Param::new(array![-2.0f64, 0.5]);
//! let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| softsign(&x).bind(|y| y.sum().bind(|s| k(s))));
//! loss.backward();
//! // d/dx x / (1 + |x|) = 1 / (1 + |x|)^2
//! assert!((x.grad()[0] - 1.0 / 9.0).abs() < 1e-15);
//! assert!((x.grad()[1] - 1.0 / 2.25).abs() < 1e-15);
//! ```
//!
//! # Reentrancy
//!
//! Nothing of the runtime is borrowed while a backward step runs (the
//! thread's pools of nodes and buffers are borrowed only inside their own
//! calls, and stack segments are taken as a computation needs them), so a
//! backward step may run computations, which may themselves contain
//! custom operations running computations in their backward steps, to any
//! depth. The one rule is the usual one: a value's gradient must arrive
//! before its own operation's backward step has run, which holds for
//! everything bound before the custom operation.

use ndarray::ArrayD;

use crate::computation::{Computation, seed_with};
use crate::element::Element;
use crate::execution::stack;
use crate::memory::unboxed;
use crate::var::{Role, Var};

/// What [`vjp`] returns: the function's output and the gradients of its
/// inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Vjp<A: Element, const N: usize> {
    /// The value of the function's output.
    pub output: ArrayD<A>,
    /// For each input, the cotangent pulled back onto it: `Jᵢᵀ·c`, where
    /// `Jᵢ` is the Jacobian of the output with respect to input `i` and `c`
    /// the cotangent (zeros for an input the output does not depend on).
    pub grads: [ArrayD<A>; N],
}

/// A vector-Jacobian product: runs `f` on the `inputs`, made fresh
/// [`Var`]s that collect gradients, seeds the output's gradient with
/// `cotangent` (of the output's shape), runs the backward pass, and returns
/// the output's value and the inputs' gradients.
///
/// `f` receives the inputs' `Var`s by value and returns the computation of
/// the output (an operation's result, a `#[differentiable]` function's, or
/// a [`lazy`](crate::lazy) one). Parameters and other values `f` captures
/// receive their gradients as usual, added to what they hold: inside a
/// backward step, this is how a custom operation sends gradient to
/// parameters it uses (see the [module documentation](self)).
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::custom::vjp;
/// use ndarray::array;
///
/// let w = Param::new(array![2.0f64, 3.0]);
/// // f(x, y) = w * x * y (elementwise), with cotangent c:
/// // the gradients are c w y for x, c w x for y, and c x y for w.
/// let result = vjp(
///     |[x, y]| {
///         let w = w.var().clone();
///         lazy(move |k: &mut dyn FnMut(Var<f64>)| {
///             (&w * &x).bind(|wx| (&wx * &y).bind(|out| k(out)))
///         })
///     },
///     [array![1.0, 2.0].into_dyn(), array![5.0, 7.0].into_dyn()],
///     array![1.0, -1.0].into_dyn(),
/// );
/// assert_eq!(result.output, array![10.0, 42.0].into_dyn());
/// let [dx, dy] = result.grads;
/// assert_eq!(dx, array![10.0, -21.0].into_dyn());
/// assert_eq!(dy, array![2.0, -6.0].into_dyn());
/// assert_eq!(w.grad(), array![5.0, -14.0].into_dyn());
/// ```
///
/// # Panics
/// When `cotangent`'s shape is not the output's.
pub fn vjp<A, C, const N: usize>(
    f: impl FnOnce([Var<A>; N]) -> C,
    inputs: [ArrayD<A>; N],
    cotangent: ArrayD<A>,
) -> Vjp<A, N>
where
    A: Element,
    C: Computation<Output = Var<A>>,
{
    pull_back(f, inputs, |_| cotangent, "vjp")
}

/// [`vjp`] with the cotangent made from the output's value, once it is
/// known (`op` names the caller in the message of a shape mismatch).
pub(crate) fn pull_back<A, C, const N: usize>(
    f: impl FnOnce([Var<A>; N]) -> C,
    inputs: [ArrayD<A>; N],
    cotangent: impl FnOnce(&ArrayD<A>) -> ArrayD<A>,
    op: &str,
) -> Vjp<A, N>
where
    A: Element,
    C: Computation<Output = Var<A>>,
{
    let _with_gradients = crate::computation::ForwardOnly::set(false);
    // Leaves that keep their gradient, as a parameter does: it is read
    // after the computation has returned.
    let leaves = inputs.map(|value| Var::from_parts(value, Role::Param, true, "vjp input"));
    let mut output = None;
    f(leaves.clone()).bind(|out: Var<A>| {
        seed_with(&out, cotangent(out.array()), op);
        output = Some(out.array().clone());
    });
    let output = output.expect("the computation never called its continuation");
    let grads = leaves.map(|leaf| {
        leaf.flush_deferred();
        leaf.take_grad_buffer()
            .unwrap_or_else(|| ArrayD::zeros(leaf.array().raw_dim()))
    });
    Vjp { output, grads }
}

/// A checkpointed segment (see [`checkpoint`]): its output, computed, and
/// the way to compute it again and back-propagate through it.
#[must_use = "a checkpointed segment's result does nothing until it is bound to a continuation"]
pub struct Checkpoint<A: Element, R> {
    out: Var<A>,
    replay: R,
}

impl<A: Element, R> Checkpoint<A, R> {
    /// The segment's output value, before it is handed on.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![1.0f64, -2.0]);
    /// let segment = checkpoint(|| x.square());
    /// assert_eq!(segment.array(), &array![1.0, 4.0].into_dyn());
    /// ```
    pub fn array(&self) -> &ArrayD<A> {
        self.out.array()
    }
}

/// How a [`Checkpoint`] runs its segment again, given the gradient of its
/// output: a closure the checkpoint functions make.
pub trait Replay<A: Element> {
    /// Runs the segment again and back-propagates `grad` through it.
    fn replay(self, grad: ArrayD<A>);
}

impl<A: Element, F: FnOnce(ArrayD<A>)> Replay<A> for F {
    fn replay(self, grad: ArrayD<A>) {
        self(grad)
    }
}

impl<A: Element, R: Replay<A>> Computation for Checkpoint<A, R> {
    type Output = Var<A>;

    #[inline]
    fn bind<K: FnOnce(Var<A>)>(self, k: K) {
        stack::grow(move || {
            let Checkpoint { out, replay } = self;
            k(out.clone());
            if out.requires_grad()
                && let Some(grad) = out.finish()
            {
                replay.replay(unboxed(grad));
            }
            out.recycle();
        })
    }
}

/// Runs a segment forward and keeps only its output: the segment's own
/// backward steps run right away, with no gradient, so its intermediate
/// values are gone when this returns.
fn run_forward<A: Element, C: Computation<Output = Var<A>>>(segment: C) -> Var<A> {
    let mut kept = None;
    segment.bind(|out: Var<A>| kept = Some((out.array().clone(), out.requires_grad())));
    let (value, requires_grad) = kept.expect("the computation never called its continuation");
    Var::computed(value, "checkpoint", requires_grad)
}

/// Runs a segment again and back-propagates `grad` from its output.
fn run_backward<A: Element, C: Computation<Output = Var<A>>>(segment: C, grad: ArrayD<A>) {
    segment.bind(|out: Var<A>| seed_with(&out, grad, "checkpoint"));
}

/// A checkpointed segment: runs `f` forward now, keeping only its output
/// (none of the segment's intermediate values stay alive while the rest of
/// the computation runs), and when the rest has returned with a gradient
/// on that output, runs `f` again and back-propagates the gradient through
/// it into the values and parameters it uses. Memory for time: the
/// segment is computed twice.
///
/// `f` must compute the same thing both times. Random draws inside it
/// replay the same values only when they come from a generator passed in
/// ([`checkpoint_with_rng`]); state an operation changes in the forward
/// pass (batch normalisation's running statistics, say) changes twice.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::custom::checkpoint;
/// use ndarray::array;
///
/// let w = Param::new(array![[0.5f64, -0.25], [0.125, 1.0]]);
/// let x = Var::constant(array![1.0f64, 2.0]);
/// /// tanh(w x), one block of a deeper network.
/// let block = |h: &Var<f64>| {
///     let (w, h) = (w.var().clone(), h.clone());
///     lazy(move |k: &mut dyn FnMut(Var<f64>)| w.matmul(&h).bind(|z| z.tanh().bind(|t| k(t))))
/// };
/// let loss = |checkpointed: bool| {
///     lazy(|k: &mut dyn FnMut(Var<f64>)| {
///         let next = |h: Var<f64>| block(&h).bind(|h2| h2.sum().bind(|s| k(s)));
///         if checkpointed {
///             checkpoint(|| block(&x)).bind(next)
///         } else {
///             block(&x).bind(next)
///         }
///     })
///     .backward()
/// };
/// let plain = (loss(false), w.grad());
/// w.zero_grad();
/// let recomputed = (loss(true), w.grad());
/// assert_eq!(plain, recomputed);
/// ```
pub fn checkpoint<A, C, F>(mut f: F) -> Checkpoint<A, impl Replay<A> + use<A, C, F>>
where
    A: Element,
    C: Computation<Output = Var<A>>,
    F: FnMut() -> C,
{
    let out = run_forward(f());
    Checkpoint {
        out,
        replay: move |grad| run_backward(f(), grad),
    }
}

/// [`checkpoint`] of a segment that draws random numbers: `f` receives the
/// generator to draw from. The generator's state is copied before the
/// forward run, and the run during the backward pass draws from that copy,
/// so it replays the same values (dropout masks, noise); `rng` itself
/// advances past the draws, as it would without the checkpoint.
///
/// ```
/// use cps_runtime::*;
/// use cps_runtime::custom::checkpoint_with_rng;
/// use ndarray::array;
/// use rand::SeedableRng;
/// use rand::rngs::StdRng;
///
/// let x = Param::new(array![1.0f64, 2.0, 3.0, 4.0]);
/// let loss = |checkpointed: bool| {
///     let mut rng = StdRng::seed_from_u64(3);
///     lazy(|k: &mut dyn FnMut(Var<f64>)| {
///         let next = |h: Var<f64>| h.square().bind(|q| q.sum().bind(|s| k(s)));
///         if checkpointed {
///             checkpoint_with_rng(&mut rng, |rng| x.dropout(0.5, rng)).bind(next)
///         } else {
///             x.dropout(0.5, &mut rng).bind(next)
///         }
///     })
///     .backward()
/// };
/// let plain = (loss(false), x.grad());
/// x.zero_grad();
/// let recomputed = (loss(true), x.grad());
/// assert_eq!(plain, recomputed);
/// ```
pub fn checkpoint_with_rng<A, C, F, R>(
    rng: &mut R,
    mut f: F,
) -> Checkpoint<A, impl Replay<A> + use<A, C, F, R>>
where
    A: Element,
    C: Computation<Output = Var<A>>,
    F: FnMut(&mut R) -> C,
    R: Clone,
{
    let saved = rng.clone();
    let out = run_forward(f(rng));
    Checkpoint {
        out,
        replay: move |grad| {
            let mut rng = saved;
            run_backward(f(&mut rng), grad)
        },
    }
}
