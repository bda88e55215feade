//! [`Var`]: a differentiable tensor value and its gradient buffer.

use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::rc::Rc;

use ndarray::{ArrayD, ArrayViewMutD};

use crate::element::Element;

/// What a value is in the computation: this decides whether gradients reach
/// it and what happens when they arrive late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Data: no gradient is ever kept for it.
    Constant,
    /// A trainable parameter: gradients accumulate across computations.
    Param,
    /// The result of an operation: its gradient is complete when the
    /// operation's continuation returns, and is consumed right then.
    Computed,
}

pub(crate) struct Node<A: Element> {
    pub(crate) value: ArrayD<A>,
    pub(crate) grad: RefCell<Option<ArrayD<A>>>,
    pub(crate) role: Role,
    pub(crate) requires_grad: Cell<bool>,
    /// Set once the producing operation has run its backward step: a
    /// gradient arriving afterwards would be lost, so it is an error.
    pub(crate) finished: Cell<bool>,
    pub(crate) op: &'static str,
    /// Rank-one updates `grad += outer(u, v)` not yet added to `grad`: a
    /// parameter used as a matrix times a vector at every node of a tree
    /// collects them, and adds them as one matrix product when its gradient
    /// is read (see [`Var::defer_outer`]).
    pub(crate) deferred: RefCell<Vec<(ArrayD<A>, Var<A>)>>,
}

/// A differentiable tensor value backed by an [`ndarray::ArrayD`].
///
/// A `Var` is a cheap handle (one reference count): cloning it shares the
/// value and its gradient. Values are produced by operations in
/// continuation-passing style (see [`Computation`](crate::Computation)),
/// by [`Var::constant`] for data, or are [`Param`](crate::Param)s.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let x = Var::constant(array![1.0f32, 2.0, 3.0]);
/// assert_eq!(x.shape(), &[3]);
/// assert!(!x.requires_grad());
/// ```
pub struct Var<A: Element = f32> {
    pub(crate) node: Rc<Node<A>>,
}

impl<A: Element> Clone for Var<A> {
    fn clone(&self) -> Self {
        Var {
            node: Rc::clone(&self.node),
        }
    }
}

impl<A: Element> Var<A> {
    pub(crate) fn from_parts(
        value: ArrayD<A>,
        role: Role,
        requires_grad: bool,
        op: &'static str,
    ) -> Self {
        Var {
            node: Rc::new(Node {
                value,
                grad: RefCell::new(None),
                role,
                requires_grad: Cell::new(requires_grad),
                finished: Cell::new(false),
                op,
                deferred: RefCell::new(Vec::new()),
            }),
        }
    }

    /// A value no gradient flows into: input data, labels, frozen tables.
    pub fn constant<D: ndarray::Dimension>(value: ndarray::Array<A, D>) -> Self {
        Self::from_parts(value.into_dyn(), Role::Constant, false, "constant")
    }

    /// A constant zero-dimensional (scalar) value.
    pub fn scalar(value: A) -> Self {
        Self::constant(ndarray::arr0(value))
    }

    /// The result of a user-defined operation: `requires_grad` should be
    /// true when any input requires a gradient. Used with
    /// [`Pending::new`](crate::Pending::new) to write custom primitives.
    pub fn computed(value: ArrayD<A>, op: &'static str, requires_grad: bool) -> Self {
        Self::from_parts(value, Role::Computed, requires_grad, op)
    }

    /// The tensor's value, as a handle that does not borrow `self` (so a
    /// condition such as `if h.value().sum() > 0.0` leaves `h` free to be
    /// moved afterwards, which matters in rewritten code). It dereferences
    /// to the [`ArrayD`]; see [`Var::array`] for a plain reference.
    pub fn value(&self) -> Value<A> {
        Value {
            node: Rc::clone(&self.node),
        }
    }

    /// The tensor's value, borrowed.
    pub fn array(&self) -> &ArrayD<A> {
        &self.node.value
    }

    /// The tensor's shape.
    pub fn shape(&self) -> &[usize] {
        self.node.value.shape()
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.node.value.len()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.node.value.is_empty()
    }

    /// The single element of a one-element tensor (any shape).
    ///
    /// # Panics
    /// When the tensor does not have exactly one element.
    pub fn item(&self) -> A {
        assert_eq!(
            self.len(),
            1,
            "item: expected a tensor with one element, got shape {:?}",
            self.shape()
        );
        *self.node.value.iter().next().expect("one element")
    }

    /// Whether gradients flow into this value: false for constants, true
    /// for trainable parameters and for results computed from them.
    pub fn requires_grad(&self) -> bool {
        self.node.requires_grad.get()
    }

    /// The name of the operation that produced this value (`"constant"`
    /// and `"param"` for leaves).
    pub fn op_name(&self) -> &'static str {
        self.node.op
    }

    /// A copy of the gradient accumulated so far, if any.
    pub fn grad(&self) -> Option<ArrayD<A>> {
        self.flush_deferred();
        self.node.grad.borrow().clone()
    }

    /// Borrows the gradient accumulated so far, if any, without copying.
    pub fn grad_ref(&self) -> Ref<'_, Option<ArrayD<A>>> {
        self.flush_deferred();
        self.node.grad.borrow()
    }

    /// Adds `uᵀ·v` into this matrix's gradient, later: `u` is one row
    /// (a vector of the matrix's row count) or a block of rows, `v` as many
    /// rows of the matrix's column count; a single row pair is the outer
    /// product `u ⊗ v`. Updates are collected and added as one matrix
    /// product when the gradient is next read, which turns a memory-bound
    /// update per use into a compute-bound product per computation. Only
    /// parameters defer; other values add at once (their gradient is read
    /// as soon as their continuation returns).
    pub(crate) fn defer_outer(&self, u: ArrayD<A>, v: Var<A>) {
        if !self.requires_grad() {
            return;
        }
        if self.node.role != Role::Param {
            let (u, v_value) = (as_rows(u.view()), v.array().view());
            let v_rows = as_rows(v_value);
            self.accumulate_with(|grad| {
                let grad = grad
                    .into_dimensionality::<ndarray::Ix2>()
                    .expect("a matrix");
                crate::ops::linalg::gemm(A::one(), u.t(), v_rows, A::one(), grad);
            });
            return;
        }
        self.check_open();
        self.node.deferred.borrow_mut().push((u, v));
    }

    /// Adds the deferred updates into the gradient.
    pub(crate) fn flush_deferred(&self) {
        let pending = std::mem::take(&mut *self.node.deferred.borrow_mut());
        let Some((first_u, first_v)) = pending.first() else {
            return;
        };
        let columns = |a: &ArrayD<A>| a.shape().last().copied().unwrap_or(1);
        let (rows, cols) = (columns(first_u), columns(first_v.array()));
        let count: usize = pending.iter().map(|(u, _)| u.len() / rows.max(1)).sum();
        let mut us = ndarray::Array2::<A>::zeros((count, rows));
        let mut vs = ndarray::Array2::<A>::zeros((count, cols));
        let mut at = 0;
        for (u, v) in &pending {
            let (u, v) = (as_rows(u.view()), as_rows(v.array().view()));
            let n = u.nrows();
            us.slice_mut(ndarray::s![at..at + n, ..]).assign(&u);
            vs.slice_mut(ndarray::s![at..at + n, ..]).assign(&v);
            at += n;
        }
        self.accumulate_with(|grad| {
            let grad = grad
                .into_dimensionality::<ndarray::Ix2>()
                .expect("a matrix");
            crate::ops::linalg::gemm(A::one(), us.t(), vs.view(), A::one(), grad);
        });
    }

    /// A new constant holding this value: no gradient flows back through it.
    pub fn detach(&self) -> Var<A> {
        Self::from_parts(self.node.value.clone(), Role::Constant, false, "constant")
    }

    /// True when `self` and `other` are handles to the same value.
    pub fn same_as(&self, other: &Var<A>) -> bool {
        Rc::ptr_eq(&self.node, &other.node)
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
        assert_eq!(
            grad.shape(),
            self.shape(),
            "gradient of `{}`: expected shape {:?}, got {:?}",
            self.node.op,
            self.shape(),
            grad.shape()
        );
        let mut slot = self.node.grad.borrow_mut();
        match slot.as_mut() {
            Some(existing) => *existing += &grad,
            None => *slot = Some(grad),
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
        let buffer = slot.get_or_insert_with(|| ArrayD::zeros(self.node.value.raw_dim()));
        add(buffer.view_mut());
    }

    /// Marks the producing operation's backward step as run and hands out
    /// the gradient that accumulated, if any.
    pub(crate) fn finish(&self) -> Option<ArrayD<A>> {
        self.node.finished.set(true);
        self.node.grad.borrow_mut().take()
    }

    /// Sets this value's gradient to ones: the seed of a backward pass.
    pub(crate) fn seed(&self) {
        if self.requires_grad() {
            *self.node.grad.borrow_mut() = Some(ArrayD::ones(self.node.value.raw_dim()));
        }
    }
}

impl<A: Element> fmt::Debug for Var<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Var")
            .field("op", &self.node.op)
            .field("shape", &self.shape())
            .field("requires_grad", &self.requires_grad())
            .field("value", &self.node.value)
            .finish()
    }
}

/// The value of a [`Var`], held by reference count: it dereferences to the
/// [`ArrayD`] and keeps it alive without borrowing the `Var`.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let x = Var::constant(array![1.0f32, 2.0]);
/// let v = x.value();
/// drop(x);
/// assert_eq!(v.sum(), 3.0);
/// assert_eq!(v, array![1.0f32, 2.0].into_dyn());
/// ```
pub struct Value<A: Element> {
    node: Rc<Node<A>>,
}

impl<A: Element> std::ops::Deref for Value<A> {
    type Target = ArrayD<A>;
    fn deref(&self) -> &ArrayD<A> {
        &self.node.value
    }
}

impl<A: Element> AsRef<ArrayD<A>> for Value<A> {
    fn as_ref(&self) -> &ArrayD<A> {
        &self.node.value
    }
}

impl<A: Element> PartialEq<ArrayD<A>> for Value<A> {
    fn eq(&self, other: &ArrayD<A>) -> bool {
        self.node.value == *other
    }
}

impl<A: Element> fmt::Debug for Value<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.node.value, f)
    }
}

impl<A: Element> fmt::Display for Value<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.node.value, f)
    }
}

/// A vector as a one-row matrix, a matrix as itself.
fn as_rows<A>(a: ndarray::ArrayViewD<'_, A>) -> ndarray::ArrayView2<'_, A> {
    let a = if a.ndim() == 1 {
        a.insert_axis(ndarray::Axis(0))
    } else {
        a
    };
    a.into_dimensionality().expect("a vector or a matrix")
}
