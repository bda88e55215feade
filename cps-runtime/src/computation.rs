//! The continuation-passing machinery: [`Computation`], the lazy results of
//! operations ([`Pending`]) and of differentiable functions ([`Lazy`]), and
//! running a computation forward and backward.

use std::marker::PhantomData;

use ndarray::ArrayD;

use crate::element::Element;
use crate::stack;
use crate::var::{Var, boxed, unboxed};

/// A computation in continuation-passing style: it produces an
/// [`Output`](Computation::Output), hands it to the rest of the program
/// (the continuation `k`), and when `k` returns, propagates the gradients
/// that reached its output back into its inputs.
///
/// Every operation on [`Var`] returns a `Computation` (a [`Pending`]), and
/// so does every `#[differentiable]` function (a [`Lazy`]). Binding them by
/// hand is what the macro generates:
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let w = Param::new(array![0.5f64, -1.0]);
/// let x = Var::constant(array![2.0f64, 3.0]);
///
/// // loss = sum(tanh(w * x)), written in continuation-passing style.
/// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
///     (&*w * &x).bind(|wx| {
///         wx.tanh().bind(|t| {
///             t.sum().bind(|s| k(s));
///         });
///     });
/// });
/// let value = loss.backward();
/// assert!((value - (1.0f64.tanh() + (-3.0f64).tanh())).abs() < 1e-12);
/// // d/dw tanh(w x) = x (1 - tanh^2(w x))
/// let expected = 2.0 * (1.0 - 1.0f64.tanh().powi(2));
/// assert!((w.grad()[0] - expected).abs() < 1e-12);
/// ```
pub trait Computation: Sized {
    /// What the computation hands to its continuation.
    type Output;

    /// Runs the computation: produce the output, call `k` with it (the
    /// whole rest of the program, forward and backward), then run this
    /// computation's backward step.
    fn bind<K: FnOnce(Self::Output)>(self, k: K);

    /// Runs forward, seeds the gradient of the (one-element) result with 1,
    /// runs the backward pass, and returns the result's value. Gradients
    /// are then on the [`Param`](crate::Param)s.
    ///
    /// # Panics
    /// When the result does not have exactly one element.
    fn backward<A: Element>(self) -> A
    where
        Self: Computation<Output = Var<A>>,
    {
        let mut result = None;
        self.bind(|out: Var<A>| {
            assert_eq!(
                out.len(),
                1,
                "backward: the result must have exactly one element (a loss), got shape {:?}",
                out.shape()
            );
            out.seed();
            result = Some(out.item());
        });
        result.expect("the computation never called its continuation")
    }

    /// Runs forward only and returns the output, with every [`Var`] in it
    /// detached (a constant). No gradient work is done.
    fn eval(self) -> Self::Output
    where
        Self::Output: Detach,
    {
        let mut result = None;
        self.bind(|out| result = Some(out.detached()));
        result.expect("the computation never called its continuation")
    }
}

/// The backward step of an operation: receives the operation's output
/// value and the gradient that accumulated on it, and adds the resulting
/// gradients into the operation's inputs.
///
/// Implemented for every `FnOnce(&ArrayD<A>, ArrayD<A>)`, so a custom
/// operation's backward step is usually a closure.
pub trait BackwardStep<A: Element> {
    /// Adds the gradients of the inputs, given the output and its gradient.
    fn backward(self, output: &ArrayD<A>, grad: ArrayD<A>);

    /// [`BackwardStep::backward`] with the gradient still in the box it is
    /// kept in on a node: what the runtime calls. The default takes the
    /// array out and calls `backward`. The library's own elementwise steps
    /// hand the box on to an input that has no gradient yet, so that a
    /// gradient travelling down a chain of operations is not moved out of
    /// one box and into another at every step. The gradient's type cannot
    /// be named outside the library, so this can be neither called nor
    /// overridden there.
    #[doc(hidden)]
    #[inline(always)]
    fn backward_boxed(self, output: &ArrayD<A>, grad: sealed::BoxedGrad<A>)
    where
        Self: Sized,
    {
        self.backward(output, unboxed(grad.0))
    }
}

mod sealed {
    use super::*;

    /// A gradient in its box (see [`BackwardStep::backward_boxed`]).
    pub struct BoxedGrad<A: Element>(pub(crate) Box<ArrayD<A>>);
}
pub(crate) use sealed::BoxedGrad;

impl<A: Element, F: FnOnce(&ArrayD<A>, ArrayD<A>)> BackwardStep<A> for F {
    fn backward(self, output: &ArrayD<A>, grad: ArrayD<A>) {
        self(output, grad)
    }
}

/// A backward step written over the boxed gradient (see
/// [`BackwardStep::backward_boxed`]): the library's elementwise functions
/// return their closures in it.
pub(crate) struct BoxedStep<F>(pub(crate) F);

impl<A: Element, F: FnOnce(&ArrayD<A>, Box<ArrayD<A>>)> BackwardStep<A> for BoxedStep<F> {
    fn backward(self, output: &ArrayD<A>, grad: ArrayD<A>) {
        (self.0)(output, boxed(grad))
    }

    #[inline(always)]
    fn backward_boxed(self, output: &ArrayD<A>, grad: BoxedGrad<A>) {
        (self.0)(output, grad.0)
    }
}

/// The result of an operation on [`Var`]s, computed but not yet handed on:
/// binding it ([`Computation::bind`]) passes the value to the continuation
/// and runs the operation's backward step when the continuation returns.
///
/// A custom differentiable primitive is a function returning a `Pending`:
///
/// ```
/// use cps_runtime::*;
/// use ndarray::{array, ArrayD, Zip};
///
/// /// cube(x) = x^3, with its derivative 3x^2.
/// fn cube(x: &Var<f64>) -> Pending<f64, impl BackwardStep<f64>> {
///     let input = x.clone();
///     Pending::new("cube", x.array().mapv(|v| v * v * v), x.requires_grad(),
///         move |_out: &ArrayD<f64>, grad: ArrayD<f64>| {
///             input.accumulate(Zip::from(&grad).and(input.array())
///                 .map_collect(|&g, &v| 3.0 * v * v * g));
///         })
/// }
///
/// let x = Param::new(array![2.0f64]);
/// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| cube(&x).bind(|y| y.sum().bind(|s| k(s))));
/// assert_eq!(loss.backward(), 8.0);
/// assert_eq!(x.grad()[0], 12.0);
/// ```
#[must_use = "an operation's result does nothing until it is bound to a continuation"]
pub struct Pending<A: Element, B> {
    // The result is boxed into its `Var` right away: a `Pending` is then a
    // pointer and a (usually small) backward step, so the copies made while
    // it travels to its bind point, and the frame that keeps it until the
    // backward pass, stay small. The stack is the tape, so every byte of an
    // operation's frame is paid per operation.
    out: Var<A>,
    backward: B,
}

impl<A: Element, B: BackwardStep<A>> Pending<A, B> {
    /// An operation's result: its name (for error messages), its value,
    /// whether it requires a gradient (true when any input does), and its
    /// backward step.
    pub fn new(op: &'static str, value: ArrayD<A>, requires_grad: bool, backward: B) -> Self {
        Pending {
            out: Var::computed(value, op, requires_grad),
            backward,
        }
    }

    /// An operation's result whose `Var` is already made (see
    /// [`Var::computed_like`]).
    pub(crate) fn from_var(out: Var<A>, backward: B) -> Self {
        Pending { out, backward }
    }

    /// The computed value, before it is handed on.
    pub fn array(&self) -> &ArrayD<A> {
        self.out.array()
    }
}

impl<A: Element, B: BackwardStep<A>> Computation for Pending<A, B> {
    type Output = Var<A>;

    #[inline]
    fn bind<K: FnOnce(Var<A>)>(self, k: K) {
        let Pending { out, backward } = self;
        stack::grow(move || {
            k(out.clone());
            finish(out, backward);
        })
    }
}

/// An operation's backward step, once its continuation has returned. Out of
/// line: inlined, the gradient it moves around would take room in the
/// operation's frame, which is live during the whole rest of the forward
/// pass (the stack is the tape); here it takes room only while it runs.
#[inline(never)]
fn finish<A: Element, B: BackwardStep<A>>(out: Var<A>, backward: B) {
    if out.requires_grad()
        && let Some(grad) = out.finish()
    {
        backward.backward_boxed(out.array(), BoxedGrad(grad));
    }
    out.recycle();
}

/// The result of calling a `#[differentiable]` function: nothing runs
/// until it is bound, run with [`Computation::backward`], or evaluated with
/// [`Computation::eval`]. Made with [`lazy`].
#[must_use = "a differentiable function's result does nothing until it is run (e.g. `.backward()`)"]
pub struct Lazy<T, F> {
    run: F,
    output: PhantomData<fn(T)>,
}

/// Wraps a computation written in continuation-passing style, `run(k)`,
/// which must call `k` exactly once with its result.
pub fn lazy<T, F: FnOnce(&mut dyn FnMut(T))>(run: F) -> Lazy<T, F> {
    Lazy {
        run,
        output: PhantomData,
    }
}

impl<T, F: FnOnce(&mut dyn FnMut(T))> Computation for Lazy<T, F> {
    type Output = T;

    #[inline]
    fn bind<K: FnOnce(T)>(self, k: K) {
        let mut k = Some(k);
        let run = self.run;
        stack::grow(move || {
            run(&mut |value| match k.take() {
                Some(k) => k(value),
                None => panic!("a differentiable computation called its continuation twice"),
            })
        })
    }
}

/// Values that can leave a computation: every [`Var`] in them is replaced
/// by a detached constant copy (see [`Computation::eval`]).
pub trait Detach {
    /// The value with its `Var`s detached.
    fn detached(self) -> Self;
}

impl<A: Element> Detach for Var<A> {
    fn detached(self) -> Self {
        Var::detach(&self)
    }
}

impl<T: Detach> Detach for Vec<T> {
    fn detached(self) -> Self {
        self.into_iter().map(Detach::detached).collect()
    }
}

impl<T: Detach> Detach for Option<T> {
    fn detached(self) -> Self {
        self.map(Detach::detached)
    }
}

impl<T: Detach, const N: usize> Detach for [T; N] {
    fn detached(self) -> Self {
        self.map(Detach::detached)
    }
}

macro_rules! detach_plain {
    ($($t:ty),*) => {$(
        impl Detach for $t {
            fn detached(self) -> Self { self }
        }
    )*};
}
detach_plain!(
    (),
    bool,
    f32,
    f64,
    i8,
    i16,
    i32,
    i64,
    isize,
    u8,
    u16,
    u32,
    u64,
    usize,
    String
);

impl<A: Element> Detach for ArrayD<A> {
    fn detached(self) -> Self {
        self
    }
}

macro_rules! detach_tuple {
    ($($name:ident),+) => {
        impl<$($name: Detach),+> Detach for ($($name,)+) {
            #[allow(non_snake_case)]
            fn detached(self) -> Self {
                let ($($name,)+) = self;
                ($($name.detached(),)+)
            }
        }
    };
}
detach_tuple!(T1);
detach_tuple!(T1, T2);
detach_tuple!(T1, T2, T3);
detach_tuple!(T1, T2, T3, T4);
detach_tuple!(T1, T2, T3, T4, T5);
detach_tuple!(T1, T2, T3, T4, T5, T6);
