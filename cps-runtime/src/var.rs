//! [`Var`]: a differentiable tensor value and its gradient buffer.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::rc::Rc;

use ndarray::{ArrayD, IxDyn};

use crate::element::Element;
use crate::flat::{as_uninit, slice, slice_mut};
use crate::memory;

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

mod gradient;
mod live;
pub(crate) mod pool;
mod tap;

pub(crate) use gradient::ParamGrad;
pub use live::live_result_bytes;
pub use tap::Tap;

/// A tensor in a differentiable computation: its value, an
/// [`ndarray::ArrayD`] of `f32` (the default) or `f64`, and the gradient
/// that flows back into it when it needs one.
///
/// A `Var` is one of three things:
/// - **data**, made with [`Var::constant`] (or [`Var::scalar`]): no
///   gradient is kept for it;
/// - a **trainable parameter**: a [`Param`](crate::Param) dereferences to
///   its `Var`, so `&param` goes wherever a `&Var` does, and its gradient
///   accumulates across uses until an optimizer consumes it;
/// - the **result of an operation** (`x.tanh()`, `&a * &b`,
///   `w.matmul(&x)`, ...). An operation returns a pending computation; in a
///   `#[differentiable]` function, `let y = x.tanh();` binds its result as
///   a `Var`, and the backward pass runs when the rest of the function has
///   returned. A result's gradient is passed on to the operation's inputs
///   and is gone once its backward step has run.
///
/// Cloning a `Var` is cheap (a reference count) and shares the value and
/// the gradient; [`Var::value`] and [`Var::array`] read the value, and
/// [`Var::grad`] the gradient accumulated so far.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let w = Param::new(array![2.0f64, -1.0]);
/// let x = Var::constant(array![3.0f64, 4.0]);
/// assert!(!x.requires_grad() && w.requires_grad());
/// // sum(w * x), written by hand in continuation-passing style (a
/// // `#[differentiable]` function is rewritten into this).
/// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
///     (&w * &x).bind(|y| y.sum().bind(|s| k(s)))
/// })
/// .backward();
/// assert_eq!(loss, 2.0);
/// assert_eq!(w.grad(), array![3.0, 4.0].into_dyn());
/// ```
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
        if role == Role::Computed {
            live::made::<A>(value.len());
        }
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
        live::made::<A>(len);
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
            node: ManuallyDrop::new(Rc::clone(&self.node)),
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

    /// A new constant holding this value: no gradient flows back through it.
    pub fn detach(&self) -> Var<A> {
        Self::from_parts(self.node.value.clone(), Role::Constant, false, "constant")
    }

    /// True when `self` and `other` are handles to the same value.
    pub fn same_as(&self, other: &Var<A>) -> bool {
        Rc::ptr_eq(&self.node, &other.node)
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
    node: ManuallyDrop<Rc<Node<A>>>,
}

impl<A: Element> Drop for Value<A> {
    /// As a [`Var`]'s last handle does: the node goes to the pool.
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and the field is not used after it.
        let node = unsafe { ManuallyDrop::take(&mut self.node) };
        pool::give(node);
    }
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
