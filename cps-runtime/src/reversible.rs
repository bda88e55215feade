//! Reversible sequences of additive coupling blocks (Gomez et al., 2017):
//! the backward pass rebuilds each block's input from its output, so that
//! no block's activations are kept during the forward pass.
//!
//! A block maps `(x1, x2)` to `y1 = x1 + F(x2)`, `y2 = x2 + G(y1)`; its
//! inverse is `x2 = y2 − G(y1)`, `x1 = y1 − F(x2)`. [`reversible`] runs a
//! whole sequence as one operation: forward, every `F` and `G` is evaluated
//! and its intermediates dropped at once; backward, block by block from the
//! last, `G` is run again at `y1` under a vector-Jacobian product (which
//! also gives `G(y1)`, so `x2` is rebuilt), then `F` at `x2` (which rebuilds
//! `x1`). The parameters `F` and `G` capture receive their gradients there.

use ndarray::ArrayD;

use crate::computation::Computation;
use crate::custom::vjp;
use crate::element::Element;
use crate::memory::unboxed;
use crate::var::Var;

/// A sequence of additive coupling blocks over `blocks`, with `f(block, x)`
/// and `g(block, x)` the block's two functions (each a computation: an
/// operation, or a `#[differentiable]` function's result). Its output is
/// `(y1, y2)` after the last block. See the module documentation.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// // Two blocks: F scales by the block's number, G is tanh.
/// let scales = [0.5f64, -0.25];
/// let (x1, x2) = (Param::new(array![1.0f64, 2.0]), Param::new(array![0.5f64, -1.0]));
/// let sequence = || reversible(&x1, &x2, &scales, |s, x| &x * *s, |_, x| x.tanh());
/// assert!(sequence().reconstruction_error() < 1e-15);
/// lazy(|k: &mut dyn FnMut(Var<f64>)| {
///     sequence().bind(|(y1, y2)| (&y1 + &y2).bind(|y| y.sum().bind(k)))
/// })
/// .backward();
/// // y1 of the first block is x1 + x2/2: x1's gradient is at least 1.
/// assert!(x1.grad().iter().all(|&g| g >= 1.0));
/// ```
pub fn reversible<'a, A, B, F, G, CF, CG>(
    x1: &Var<A>,
    x2: &Var<A>,
    blocks: &'a [B],
    f: F,
    g: G,
) -> Reversible<'a, A, B, F, G>
where
    A: Element,
    F: Fn(&'a B, Var<A>) -> CF,
    G: Fn(&'a B, Var<A>) -> CG,
    CF: Computation<Output = Var<A>>,
    CG: Computation<Output = Var<A>>,
{
    Reversible {
        x1: x1.clone(),
        x2: x2.clone(),
        blocks,
        f,
        g,
    }
}

/// The computation [`reversible`] returns.
#[must_use = "a reversible sequence does nothing until it is bound to a continuation"]
pub struct Reversible<'a, A: Element, B, F, G> {
    x1: Var<A>,
    x2: Var<A>,
    blocks: &'a [B],
    f: F,
    g: G,
}

/// `function(block, x)` evaluated, its intermediates dropped at once.
fn value_of<A: Element, C: Computation<Output = Var<A>>>(computation: C) -> ArrayD<A> {
    let mut value = None;
    computation.bind(|out: Var<A>| value = Some(out.array().clone()));
    value.expect("the computation called its continuation")
}

impl<'a, A, B, F, G, CF, CG> Reversible<'a, A, B, F, G>
where
    A: Element,
    F: Fn(&'a B, Var<A>) -> CF,
    G: Fn(&'a B, Var<A>) -> CG,
    CF: Computation<Output = Var<A>>,
    CG: Computation<Output = Var<A>>,
{
    /// The sequence's output `(y1, y2)` from `(x1, x2)`, keeping nothing.
    fn forward(&self, mut a: ArrayD<A>, mut b: ArrayD<A>) -> (ArrayD<A>, ArrayD<A>) {
        for block in self.blocks {
            a = a + value_of((self.f)(block, Var::constant(b.clone())));
            b = b + value_of((self.g)(block, Var::constant(a.clone())));
        }
        (a, b)
    }

    /// The sequence's input rebuilt from its output, block by block.
    fn inverse(&self, mut a: ArrayD<A>, mut b: ArrayD<A>) -> (ArrayD<A>, ArrayD<A>) {
        for block in self.blocks.iter().rev() {
            b = b - value_of((self.g)(block, Var::constant(a.clone())));
            a = a - value_of((self.f)(block, Var::constant(b.clone())));
        }
        (a, b)
    }

    /// How far the inverse of the forward pass lands from the input: the
    /// largest absolute difference, relative to the input's largest
    /// magnitude (at least 1). Rounding makes it grow with depth; it
    /// bounds how far the rebuilt activations, and so the gradients,
    /// depart from plain backpropagation's.
    pub fn reconstruction_error(&self) -> f64 {
        let (x1, x2) = (self.x1.array().clone(), self.x2.array().clone());
        let (y1, y2) = self.forward(x1.clone(), x2.clone());
        let (r1, r2) = self.inverse(y1, y2);
        let worst = |x: &ArrayD<A>, r: &ArrayD<A>| {
            x.iter()
                .zip(r)
                .fold(0.0f64, |m, (&x, &r)| m.max((x - r).abs().to_f64_lossless()))
        };
        let scale = x1
            .iter()
            .chain(x2.iter())
            .fold(1.0f64, |m, &v| m.max(v.abs().to_f64_lossless()));
        worst(&x1, &r1).max(worst(&x2, &r2)) / scale
    }
}

impl<'a, A, B, F, G, CF, CG> Computation for Reversible<'a, A, B, F, G>
where
    A: Element,
    F: Fn(&'a B, Var<A>) -> CF,
    G: Fn(&'a B, Var<A>) -> CG,
    CF: Computation<Output = Var<A>>,
    CG: Computation<Output = Var<A>>,
{
    type Output = (Var<A>, Var<A>);

    fn bind<K: FnOnce(Self::Output)>(self, k: K) {
        let (y1, y2) = self.forward(self.x1.array().clone(), self.x2.array().clone());
        // The blocks' functions may hold parameters: the outputs need a
        // gradient whatever the inputs do.
        let (out1, out2) = (
            Var::computed(y1, "reversible", true),
            Var::computed(y2, "reversible", true),
        );
        k((out1.clone(), out2.clone()));
        let grad = |out: &Var<A>| match out.finish() {
            Some(grad) => unboxed(grad),
            None => ArrayD::zeros(out.array().raw_dim()),
        };
        let (mut bar1, mut bar2) = (grad(&out1), grad(&out2));
        let (mut a, mut b) = (out1.array().clone(), out2.array().clone());
        drop((out1, out2));
        for block in self.blocks.iter().rev() {
            // y2 = x2 + G(y1): x̄2 = ȳ2, ȳ1 += Gᵀ ȳ2; and x2 = y2 − G(y1).
            let through_g = vjp(|[y1]| (self.g)(block, y1), [a.clone()], bar2.clone());
            b -= &through_g.output;
            let [g_bar] = through_g.grads;
            bar1 += &g_bar;
            // y1 = x1 + F(x2): x̄1 = ȳ1, x̄2 += Fᵀ ȳ1; and x1 = y1 − F(x2).
            let through_f = vjp(|[x2]| (self.f)(block, x2), [b.clone()], bar1.clone());
            a -= &through_f.output;
            let [f_bar] = through_f.grads;
            bar2 += &f_bar;
        }
        self.x1.accumulate(bar1);
        self.x2.accumulate(bar2);
    }
}
