//! [`Var`]: a differentiable tensor value and its gradient buffer.

use std::any::{Any, TypeId};
use std::cell::{Cell, Ref, RefCell};
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::rc::Rc;
use std::thread::LocalKey;

use ndarray::{Array2, ArrayD, ArrayViewMutD, IxDyn};

use crate::element::Element;
use crate::flat::{as_uninit, slice, slice_mut};
use crate::memory::{self, boxed, unboxed};

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
    /// Boxed, so that a node (which lives until its operation's backward
    /// step, like the stack frame that holds it) is 104 bytes smaller: the
    /// size of a node decided the speed of long chains of small operations
    /// (see [`boxed`]).
    pub(crate) grad: RefCell<Option<Box<ArrayD<A>>>>,
    pub(crate) role: Role,
    /// The number of elements when `value` is known to be in standard
    /// layout, [`NOT_FLAT`] otherwise: set wherever the value is replaced,
    /// so that the small operations on it need not check its layout again
    /// (see [`Var::flat`]). A parameter's value can be changed in place
    /// ([`Param::value_mut`](crate::Param::value_mut)), after which its
    /// count is `NOT_FLAT`.
    pub(crate) flat_len: u32,
    pub(crate) requires_grad: Cell<bool>,
    /// Set once the producing operation has run its backward step: a
    /// gradient arriving afterwards would be lost, so it is an error.
    pub(crate) finished: Cell<bool>,
    pub(crate) op: &'static str,
    /// What only a parameter keeps (none for other values, so that the
    /// many small results of a computation stay small).
    pub(crate) param: RefCell<Option<Box<ParamGrad<A>>>>,
}

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
}

/// `grad = Uᵀ·V + beta·grad`, given `Uᵀ`, `V`, `beta` and `grad`.
pub(crate) type Resolve<A> =
    fn(ndarray::ArrayView2<'_, A>, ndarray::ArrayView2<'_, A>, A, ndarray::ArrayViewMut2<'_, A>);

impl<A: Element> ParamGrad<A> {
    pub(crate) fn new() -> Box<Self> {
        Box::new(ParamGrad {
            deferred: Vec::new(),
            resolve: None,
        })
    }
}

impl<A: Element> Node<A> {
    /// Makes a pooled node a new one. Its gradient is gone already, and
    /// only results are pooled ([`pool::give`] sees to both).
    fn reset(&mut self, role: Role, requires_grad: bool, op: &'static str) {
        debug_assert!(self.grad.get_mut().is_none() && self.param.get_mut().is_none());
        self.role = role;
        if role == Role::Param {
            *self.param.get_mut() = Some(ParamGrad::new());
        }
        self.requires_grad.set(requires_grad);
        self.finished.set(false);
        self.op = op;
    }
}

/// A new array of `len` elements in the shape `dim` makes, in standard
/// layout, its elements written by `fill` into a buffer that is not
/// zero-filled first.
///
/// # Safety
/// `fill` must write every element of the slice it is given, and the
/// shape must hold `len` elements.
unsafe fn filled<A: Element>(
    len: usize,
    dim: impl FnOnce() -> IxDyn,
    fill: impl FnOnce(&mut [MaybeUninit<A>]),
) -> (ArrayD<A>, u32) {
    let mut data = memory::take(len);
    fill(&mut data.spare_capacity_mut()[..len]);
    // SAFETY: `fill` wrote all `len` elements (the contract), within the
    // capacity reserved. Had it panicked, `data` would be dropped empty.
    unsafe { data.set_len(len) };
    // SAFETY: `data` has as many elements as the shape, taken with
    // standard strides.
    let value = unsafe { ArrayD::from_shape_vec_unchecked(dim(), data) };
    (value, flat_len_for(len))
}

/// `existing += grad`, for a gradient of the same shape.
#[inline(always)]
fn add_into<A: Element>(existing: &mut ArrayD<A>, grad: &ArrayD<A>) {
    match (slice_mut(existing), slice(grad)) {
        (Some(e), Some(g)) => e.iter_mut().zip(g).for_each(|(e, &g)| *e += g),
        _ => *existing += grad,
    }
}

/// [`Node::flat_len`] when the layout is not known to be standard.
pub(crate) const NOT_FLAT: u32 = u32::MAX;

/// [`Node::flat_len`] of a standard-layout value of `len` elements
/// ([`NOT_FLAT`] when the count does not fit).
pub(crate) fn flat_len_for(len: usize) -> u32 {
    u32::try_from(len)
        .ok()
        .filter(|&len| len != NOT_FLAT)
        .unwrap_or(NOT_FLAT)
}

/// [`Node::flat_len`] of `value`, found by checking its layout.
pub(crate) fn flat_len_of<A>(value: &ArrayD<A>) -> u32 {
    slice(value).map_or(NOT_FLAT, |s| flat_len_for(s.len()))
}

/// Shape equality, inlined: the slices' `==` calls `memcmp`, which costs
/// more than the comparison for the usual rank of one or two.
#[inline]
pub(crate) fn same_shape(left: &[usize], right: &[usize]) -> bool {
    left.len() == right.len() && left.iter().zip(right).all(|(l, r)| l == r)
}

pub(crate) mod pool;

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
///
/// When the last handle to an operation's result goes, its node and value
/// buffer go back to the thread's pool, for the next result (usually when
/// the operation's backward step has run; later if a handle was kept, in a
/// list of states, say).
pub struct Var<A: Element = f32> {
    pub(crate) node: ManuallyDrop<Rc<Node<A>>>,
}

impl<A: Element> Drop for Var<A> {
    /// Gives the node to the pool if this is its last handle and it holds
    /// an operation's result (see the pool's `give`).
    #[inline]
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and the field is not used after it.
        let node = unsafe { ManuallyDrop::take(&mut self.node) };
        pool::give(node);
    }
}

/// A `Var` is a reference to itself, so that operations on several
/// tensors ([`concat`](crate::concat), [`rows_of`](crate::rows_of)) take a
/// `Vec<Var>` as they take a list of references.
impl<A: Element> AsRef<Var<A>> for Var<A> {
    fn as_ref(&self) -> &Var<A> {
        self
    }
}

impl<A: Element> Clone for Var<A> {
    fn clone(&self) -> Self {
        Var {
            node: ManuallyDrop::new(Rc::clone(&self.node)),
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
        let flat_len = flat_len_of(&value);
        if let Some(mut node) = pool::take::<A>(0) {
            let fresh = pool::unique(&mut node);
            // A node kept with a larger value leaves its buffer to the
            // next value or gradient of that length.
            memory::recycle(std::mem::replace(&mut fresh.value, value));
            fresh.flat_len = flat_len;
            fresh.reset(role, requires_grad, op);
            return Var {
                node: ManuallyDrop::new(node),
            };
        }
        Var {
            node: ManuallyDrop::new(Rc::new(Node {
                value,
                flat_len,
                grad: RefCell::new(None),
                role,
                requires_grad: Cell::new(requires_grad),
                finished: Cell::new(false),
                op,
                param: RefCell::new((role == Role::Param).then(ParamGrad::new)),
            })),
        }
    }

    /// The result of an operation, of `like`'s shape (`len` elements, which
    /// the caller knows) in standard layout, its elements written by `fill`
    /// (in standard order). The node and its value buffer come from a
    /// finished operation when one is pooled (see [`pool`]), so a chain of
    /// small operations allocates nothing; a new buffer is not zero-filled
    /// first, since `fill` writes all of it.
    ///
    /// # Safety
    /// `fill` must write every element of the slice it is given, and
    /// `like` must have `len` elements.
    pub(crate) unsafe fn computed_like(
        op: &'static str,
        requires_grad: bool,
        like: &ArrayD<A>,
        len: usize,
        fill: impl FnOnce(&mut [MaybeUninit<A>]),
    ) -> Self {
        debug_assert_eq!(len, like.len());
        // SAFETY: passed on from the caller.
        unsafe {
            Self::computed_in(
                op,
                requires_grad,
                like.shape(),
                len,
                || like.raw_dim(),
                fill,
            )
        }
    }

    /// [`Var::computed_like`] for a result of `shape`.
    ///
    /// # Safety
    /// `fill` must write every element of the slice it is given.
    pub(crate) unsafe fn computed_shaped(
        op: &'static str,
        requires_grad: bool,
        shape: &[usize],
        fill: impl FnOnce(&mut [MaybeUninit<A>]),
    ) -> Self {
        // SAFETY: passed on from the caller.
        unsafe {
            Self::computed_in(
                op,
                requires_grad,
                shape,
                shape.iter().product(),
                || IxDyn(shape),
                fill,
            )
        }
    }

    /// [`Var::computed_like`] for a result of `shape` (`len` elements),
    /// which `dim` makes when a new array is needed.
    ///
    /// # Safety
    /// `fill` must write every element of the slice it is given, and
    /// `shape` (and `dim`'s) must hold `len` elements.
    #[inline(always)]
    unsafe fn computed_in(
        op: &'static str,
        requires_grad: bool,
        shape: &[usize],
        len: usize,
        dim: impl FnOnce() -> IxDyn,
        fill: impl FnOnce(&mut [MaybeUninit<A>]),
    ) -> Self {
        let Some(mut node) = pool::take::<A>(len) else {
            // SAFETY: passed on from the caller.
            let (value, _) = unsafe { filled(len, dim, fill) };
            return Self::from_parts(value, Role::Computed, requires_grad, op);
        };
        let fresh = pool::unique(&mut node);
        if !same_shape(fresh.value.shape(), shape) {
            // SAFETY: passed on from the caller.
            let (value, flat_len) = unsafe { filled(len, dim, fill) };
            memory::recycle(std::mem::replace(&mut fresh.value, value));
            fresh.flat_len = flat_len;
        } else if fresh.flat_len != NOT_FLAT {
            // SAFETY: `flat_len` says the pooled value is in standard
            // layout with that many elements (it is kept right wherever a
            // value is replaced, and a pooled node's value is not changed
            // otherwise), so they are its initialised elements from its
            // pointer; the node is unique, so nothing else sees them. They
            // are written over with initialised values only (the contract
            // of `fill`), so viewing them as possibly uninitialised loses
            // nothing.
            let buffer = unsafe {
                std::slice::from_raw_parts_mut(
                    fresh.value.as_mut_ptr().cast::<MaybeUninit<A>>(),
                    fresh.flat_len as usize,
                )
            };
            fill(buffer);
        } else if let Some(buffer) = slice_mut(&mut fresh.value) {
            // As above, with the layout checked here.
            fill(as_uninit(buffer));
            fresh.flat_len = flat_len_of(&fresh.value);
        } else {
            // SAFETY: passed on from the caller.
            (fresh.value, fresh.flat_len) = unsafe { filled(len, dim, fill) };
        }
        fresh.reset(Role::Computed, requires_grad, op);
        Var {
            node: ManuallyDrop::new(node),
        }
    }

    /// Hands the node back to the pool when this is its last handle: the
    /// operation that produced it has finished, and nothing else can see it.
    /// The same as dropping the handle; the name says why it goes.
    pub(crate) fn recycle(self) {
        drop(self);
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

    /// The value's elements as a slice when it is in standard layout:
    /// [`flat::slice`](crate::flat) of the value, from what the node
    /// recorded when the value was set instead of from its shape and
    /// strides when it can.
    #[inline]
    pub(crate) fn flat(&self) -> Option<&[A]> {
        match self.node.flat_len {
            NOT_FLAT => slice(&self.node.value),
            // SAFETY: `flat_len` says the value is in standard layout with
            // that many elements (it is kept right wherever a value is
            // replaced), so they are its initialised elements from its
            // pointer, borrowed as long as `self`.
            len => {
                Some(unsafe { std::slice::from_raw_parts(self.node.value.as_ptr(), len as usize) })
            }
        }
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
