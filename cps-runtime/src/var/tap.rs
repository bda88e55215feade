//! [`Tap`]: the rows of a parameter's matrix products, observed.

use std::cell::RefCell;
use std::rc::Rc;

use ndarray::{Array2, ArrayD, Axis};

use crate::element::Element;

/// What a tapped [`Param`](crate::Param) records of the matrix products it
/// takes part in as a weight (through [`Var::linear`](crate::Var::linear),
/// or as the matrix in a matrix-times-vector
/// [`matmul`](crate::Var::matmul)): for every product, its input rows `A`
/// and its output-gradient rows `Δ`, so that the weight's gradient from it
/// is `Δᵀ·A`. These are the per-sample factors K-FAC-style and
/// consequentialist optimizers work with. A product's rows are recorded
/// when its backward step runs, that is once the backward pass has
/// completed `Δ`; a frozen parameter records nothing.
///
/// Get one with [`Param::tap`](crate::Param::tap); the handle and the
/// parameter share the record.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let w = Param::new(array![[1.0f64, 2.0], [0.0, 1.0], [3.0, -1.0]]);
/// let tap = w.tap();
/// let x = Var::constant(array![[1.0f64, 1.0], [2.0, 0.0]]);
/// lazy(|k: &mut dyn FnMut(Var<f64>)| x.linear(&w).bind(|y| y.sum().bind(k))).backward();
/// let (a, delta) = tap.take().expect("one product recorded");
/// assert_eq!(a, x.array().clone().into_dimensionality().unwrap());
/// assert_eq!(delta, array![[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]);
/// // The weight's gradient is Δᵀ·A.
/// assert_eq!(w.grad(), delta.t().dot(&a).into_dyn());
/// ```
pub struct Tap<A: Element> {
    rows: Rc<RefCell<Vec<Recorded<A>>>>,
}

/// One product's rows: its inputs and its output gradients.
type Recorded<A> = (ArrayD<A>, ArrayD<A>);

impl<A: Element> Clone for Tap<A> {
    fn clone(&self) -> Self {
        Tap {
            rows: Rc::clone(&self.rows),
        }
    }
}

impl<A: Element> Tap<A> {
    pub(crate) fn new() -> Self {
        Tap {
            rows: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// Records one product's rows: `delta` (one output-gradient row or a
    /// block of them) and `input` (as many input rows).
    pub(crate) fn record(&self, delta: &ArrayD<A>, input: &ArrayD<A>) {
        self.rows.borrow_mut().push((input.clone(), delta.clone()));
    }

    /// How many products were recorded since the last [`take`](Tap::take).
    pub fn len(&self) -> usize {
        self.rows.borrow().len()
    }

    /// True when nothing was recorded since the last [`take`](Tap::take).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the recorded rows out, stacked in the order the products'
    /// backward steps ran: `(A, Δ)`, one row per input row of each product
    /// (a product of one vector gives one row), so that the weight's
    /// gradient from them is `Δᵀ·A`. `None` when nothing was recorded.
    pub fn take(&self) -> Option<(Array2<A>, Array2<A>)> {
        let recorded = std::mem::take(&mut *self.rows.borrow_mut());
        if recorded.is_empty() {
            return None;
        }
        let as_rows = |a: &ArrayD<A>| -> Array2<A> {
            let a = if a.ndim() == 1 {
                a.view().insert_axis(Axis(0))
            } else {
                a.view()
            };
            a.into_dimensionality()
                .expect("a vector or a matrix")
                .to_owned()
        };
        let inputs: Vec<Array2<A>> = recorded.iter().map(|(a, _)| as_rows(a)).collect();
        let deltas: Vec<Array2<A>> = recorded.iter().map(|(_, d)| as_rows(d)).collect();
        let stack = |parts: &[Array2<A>]| {
            let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
            ndarray::concatenate(Axis(0), &views).expect("rows of one width")
        };
        Some((stack(&inputs), stack(&deltas)))
    }
}
