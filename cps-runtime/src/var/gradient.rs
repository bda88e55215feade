//! The gradient of a [`Var`]: how contributions arrive and add up, and a
//! parameter's products collected for one matrix product when read.

use std::cell::Ref;

use ndarray::{Array2, ArrayD, ArrayViewMutD};

use super::{Role, Tap, Var, same_shape};
use crate::element::Element;
use crate::flat::{slice, slice_mut};
use crate::memory::{self, boxed, unboxed};

/// The part of a parameter's gradient that is still a list of products:
/// `grad += Σ uᵀ·v` over pairs not yet added. A parameter used as a matrix
/// times a vector at every node of a tree collects them, and they are
/// added as one matrix product when its gradient is read (see
/// [`Var::push_product`]), which turns a memory-bound update per use into
/// a compute-bound product per computation.
pub(crate) struct ParamGrad<A: Element> {
    /// The pairs `(u, v)`: `u` one row or a block of rows of the matrix's
    /// row count, `v` as many rows of its column count.
    pub(crate) deferred: Vec<(ArrayD<A>, Var<A>)>,
    /// How the operation that deferred them adds them up: `grad = Uᵀ·V +
    /// beta·grad` for the stacked rows. The operations layer supplies it,
    /// so that values know nothing of matrix products.
    pub(crate) resolve: Option<Resolve<A>>,
    /// Where the products' rows are also recorded, when the parameter is
    /// tapped ([`Param::tap`](crate::Param::tap)).
    pub(crate) tap: Option<Tap<A>>,
}

/// `grad = Uᵀ·V + beta·grad`, given `Uᵀ`, `V`, `beta` and `grad`.
pub(crate) type Resolve<A> =
    fn(ndarray::ArrayView2<'_, A>, ndarray::ArrayView2<'_, A>, A, ndarray::ArrayViewMut2<'_, A>);

impl<A: Element> ParamGrad<A> {
    pub(crate) fn new() -> Box<Self> {
        Box::new(ParamGrad {
            deferred: Vec::new(),
            resolve: None,
            tap: None,
        })
    }
}

/// `existing += grad`, for a gradient of the same shape.
#[inline(always)]
fn add_into<A: Element>(existing: &mut ArrayD<A>, grad: &ArrayD<A>) {
    match (slice_mut(existing), slice(grad)) {
        (Some(e), Some(g)) => e.iter_mut().zip(g).for_each(|(e, &g)| *e += g),
        _ => *existing += grad,
    }
}

impl<A: Element> Var<A> {
    /// A copy of the gradient accumulated so far, if any.
    pub fn grad(&self) -> Option<ArrayD<A>> {
        self.flush_deferred();
        self.node.grad.borrow().as_deref().cloned()
    }

    /// Borrows the gradient accumulated so far, if any, without copying.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use ndarray::array;
    ///
    /// let w = Param::new(array![1.0f64, 2.0]);
    /// assert!(w.grad_ref().is_none());
    /// lazy(|k: &mut dyn FnMut(Var<f64>)| w.sum().bind(|s| k(s))).backward();
    /// assert_eq!(*w.grad_ref().expect("a gradient"), array![1.0, 1.0].into_dyn());
    /// ```
    pub fn grad_ref(&self) -> Option<Ref<'_, ArrayD<A>>> {
        self.flush_deferred();
        Ref::filter_map(self.node.grad.borrow(), |grad| grad.as_deref()).ok()
    }

    /// Whether this value collects products for its gradient
    /// ([`Var::push_product`]) rather than adding them at once: only
    /// parameters do; other values' gradients are read as soon as their
    /// continuation returns.
    pub(crate) fn collects_products(&self) -> bool {
        self.node.role == Role::Param
    }

    /// Adds `uᵀ·v` into this parameter's gradient, later: `u` is one row
    /// (a vector of the matrix's row count) or a block of rows, `v` as many
    /// rows of the matrix's column count; `resolve` adds the stacked rows
    /// up when the gradient is next read. Only for a value that
    /// [`collects_products`](Var::collects_products).
    pub(crate) fn push_product(&self, u: ArrayD<A>, v: Var<A>, resolve: Resolve<A>) {
        self.check_open();
        let mut param = self.node.param.borrow_mut();
        let param = param.as_mut().expect("only parameters collect products");
        if let Some(tap) = &param.tap {
            tap.record(&u, v.array());
        }
        param.deferred.push((u, v));
        param.resolve = Some(resolve);
    }

    /// Adds the deferred products into the gradient, as one matrix
    /// product. With no gradient yet, the product is written over a
    /// scratch buffer (`beta = 0` never reads it), so that no step clears
    /// a parameter-sized buffer.
    pub(crate) fn flush_deferred(&self) {
        // Only parameters defer; everything else skips the borrow.
        if self.node.role != Role::Param {
            return;
        }
        let mut param = self.node.param.borrow_mut();
        let Some(param) = param.as_mut().filter(|p| !p.deferred.is_empty()) else {
            return;
        };
        let resolve = param
            .resolve
            .expect("deferred products come with their rule");
        let (us, vs) = stack_deferred(param);
        let mut slot = self.node.grad.borrow_mut();
        let (beta, grad) = match slot.as_deref_mut() {
            Some(grad) => (A::one(), grad),
            None => {
                let buffer = memory::scratch(self.node.value.raw_dim());
                (A::zero(), &mut **slot.insert(boxed(buffer)))
            }
        };
        let grad = grad
            .view_mut()
            .into_dimensionality::<ndarray::Ix2>()
            .expect("a matrix");
        resolve(us.t(), vs.view(), beta, grad);
        memory::recycle(us.into_dyn());
        memory::recycle(vs.into_dyn());
    }

    /// How many rows the deferred updates stack into: the inner dimension
    /// of the product they add up to (0 with none, or for a non-parameter).
    pub(crate) fn deferred_rows(&self) -> usize {
        if self.node.role != Role::Param {
            return 0;
        }
        let param = self.node.param.borrow();
        let Some(param) = param.as_ref() else {
            return 0;
        };
        let width = |u: &ArrayD<A>| u.shape().last().copied().unwrap_or(1).max(1);
        param.deferred.iter().map(|(u, _)| u.len() / width(u)).sum()
    }

    /// Takes the deferred updates out, stacked as `(U, V)`: they add
    /// `Uᵀ·V` to the gradient. `None` when there are none. The caller
    /// hands the matrices back to the pool
    /// ([`memory::recycle`]) once used.
    pub(crate) fn take_deferred_rows(&self) -> Option<(Array2<A>, Array2<A>)> {
        if self.node.role != Role::Param {
            return None;
        }
        let mut param = self.node.param.borrow_mut();
        let param = param.as_mut().filter(|p| !p.deferred.is_empty())?;
        Some(stack_deferred(param))
    }

    /// The gradient buffer as it is: the deferred updates are not added
    /// to it (unlike [`Var::grad_ref`]).
    pub(crate) fn grad_buffer(&self) -> Option<Ref<'_, ArrayD<A>>> {
        Ref::filter_map(self.node.grad.borrow(), |grad| grad.as_deref()).ok()
    }

    /// Takes the gradient buffer out as it is, leaving none: the deferred
    /// updates are not added to it (see [`Var::take_deferred_rows`]).
    pub(crate) fn take_grad_buffer(&self) -> Option<ArrayD<A>> {
        self.node.grad.borrow_mut().take().map(unboxed)
    }

    /// Drops the deferred updates unapplied.
    pub(crate) fn discard_deferred(&self) {
        if let Some(param) = self.node.param.borrow_mut().as_mut() {
            param.deferred.clear();
        }
    }

    fn check_open(&self) {
        if self.node.finished.get() {
            panic!(
                "a gradient arrived at the result of `{}` (shape {:?}) after that operation's \
                 backward step had already run: the value was used outside the continuation \
                 that received it (smuggled out of its scope), so this gradient would be lost",
                self.node.op,
                self.shape()
            );
        }
    }

    /// Adds `grad` into this value's gradient (taking the buffer over when
    /// none has accumulated yet). Does nothing for values that do not
    /// require a gradient.
    ///
    /// # Panics
    /// When the shape differs from the value's, or when the producing
    /// operation has already run its backward step.
    pub fn accumulate(&self, grad: ArrayD<A>) {
        if !self.requires_grad() {
            return;
        }
        self.check_open();
        assert!(
            same_shape(grad.shape(), self.shape()),
            "gradient of `{}`: expected shape {:?}, got {:?}",
            self.node.op,
            self.shape(),
            grad.shape()
        );
        self.add_gradient(grad);
    }

    /// [`Var::accumulate`] of a gradient the caller knows has this value's
    /// shape (an elementwise operation's, whose input and output have the
    /// same shape): the check is left to debug builds, since comparing two
    /// dynamic shapes costs more than the arithmetic on small tensors.
    #[inline(always)]
    pub(crate) fn accumulate_same_shape(&self, grad: ArrayD<A>) {
        if !self.requires_grad() {
            return;
        }
        self.check_open();
        debug_assert!(same_shape(grad.shape(), self.shape()));
        self.add_gradient(grad);
    }

    /// [`Var::accumulate_same_shape`] of a gradient in its box, which
    /// becomes this value's when it has none yet.
    #[inline(always)]
    pub(crate) fn accumulate_boxed(&self, grad: Box<ArrayD<A>>) {
        if !self.requires_grad() {
            memory::recycle(unboxed(grad));
            return;
        }
        self.check_open();
        debug_assert!(same_shape(grad.shape(), self.shape()));
        let mut slot = self.node.grad.borrow_mut();
        match slot.as_deref_mut() {
            Some(existing) => {
                add_into(existing, &grad);
                drop(slot);
                memory::recycle(unboxed(grad));
            }
            None => *slot = Some(grad),
        }
    }

    /// Adds `grad` into the gradient, or makes it the gradient.
    #[inline(always)]
    fn add_gradient(&self, grad: ArrayD<A>) {
        let mut slot = self.node.grad.borrow_mut();
        match slot.as_deref_mut() {
            Some(existing) => {
                add_into(existing, &grad);
                memory::recycle(grad);
            }
            None => *slot = Some(boxed(grad)),
        }
    }

    /// Adds into this value's gradient in place: `add` receives the
    /// gradient buffer (zeros on first use) and must add its contribution.
    /// Does nothing for values that do not require a gradient.
    ///
    /// # Panics
    /// When the producing operation has already run its backward step.
    pub fn accumulate_with(&self, add: impl FnOnce(ArrayViewMutD<'_, A>)) {
        if !self.requires_grad() {
            return;
        }
        self.check_open();
        let mut slot = self.node.grad.borrow_mut();
        let buffer = slot.get_or_insert_with(|| self.zero_grad_buffer());
        add(buffer.view_mut());
    }

    /// Like [`Var::accumulate_with`], with the buffer itself rather than a
    /// view of it (making a view of a dynamic-rank array copies its shape,
    /// which costs more than the arithmetic on a small tensor).
    #[inline(always)]
    pub(crate) fn accumulate_into(&self, add: impl FnOnce(&mut ArrayD<A>)) {
        if !self.requires_grad() {
            return;
        }
        self.check_open();
        let mut slot = self.node.grad.borrow_mut();
        add(slot.get_or_insert_with(|| self.zero_grad_buffer()));
    }

    /// A new gradient buffer of zeros in this value's shape: out of line,
    /// since the inlined ways into a gradient mostly find one.
    #[inline(never)]
    fn zero_grad_buffer(&self) -> Box<ArrayD<A>> {
        boxed(memory::zeros(self.node.value.raw_dim()))
    }

    /// Whether a gradient buffer exists (deferred updates not counted).
    pub(crate) fn has_grad(&self) -> bool {
        self.node.grad.borrow().is_some()
    }

    /// Marks the producing operation's backward step as run and hands out
    /// the gradient that accumulated, if any.
    #[inline(always)]
    pub(crate) fn finish(&self) -> Option<Box<ArrayD<A>>> {
        self.node.finished.set(true);
        self.node.grad.borrow_mut().take()
    }

    /// Sets this value's gradient to ones: the seed of a backward pass.
    pub(crate) fn seed(&self) {
        if self.requires_grad() {
            let mut ones = memory::scratch(self.node.value.raw_dim());
            ones.fill(A::one());
            *self.node.grad.borrow_mut() = Some(boxed(ones));
        }
    }
}

/// A parameter's deferred updates, stacked (see [`stack_rows`]) and
/// drained: their buffers and nodes serve the next values of their
/// length, and the list keeps its room for the next computation's
/// updates.
fn stack_deferred<A: Element>(param: &mut ParamGrad<A>) -> (Array2<A>, Array2<A>) {
    let rows = stack_rows(&param.deferred);
    // Each `v` is usually the last handle on its value (its operation
    // finished long ago, while this list still held it): dropped here, its
    // node and value go back to the pool, not to the allocator.
    for (u, _v) in param.deferred.drain(..) {
        memory::recycle(u);
    }
    rows
}

/// The deferred pairs' `u` rows and `v` rows, each stacked into one matrix
/// (the operands of the weight gradient's product).
fn stack_rows<A: Element>(pending: &[(ArrayD<A>, Var<A>)]) -> (Array2<A>, Array2<A>) {
    let width = |a: &ArrayD<A>| a.shape().last().copied().unwrap_or(1).max(1);
    let (u_width, v_width) = match pending.first() {
        Some((u, v)) => (width(u), width(v.array())),
        None => (1, 1),
    };
    (
        stack(pending.iter().map(|(u, _)| u), u_width),
        stack(pending.iter().map(|(_, v)| v.array()), v_width),
    )
}

/// The parts' elements, one after the other, as rows of `width`. The
/// buffer is reserved whole (grown part by part, it was reallocated and
/// copied about ten times per parameter and step), from the free buffers
/// when one of its length is kept.
fn stack<'a, A: Element>(
    parts: impl Iterator<Item = &'a ArrayD<A>> + Clone,
    width: usize,
) -> Array2<A> {
    let mut data = memory::take(parts.clone().map(|p| p.len()).sum());
    for part in parts {
        match part.as_slice() {
            Some(slice) => data.extend_from_slice(slice),
            None => data.extend(part.iter().copied()),
        }
    }
    let rows = data.len() / width;
    Array2::from_shape_vec((rows, width), data).expect("whole rows")
}
