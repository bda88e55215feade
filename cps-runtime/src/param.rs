//! [`Param`]: a trainable tensor that keeps its gradient across uses.

use std::ops::Deref;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::{ArrayD, IxDyn};

use crate::element::Element;
use crate::memory;
use crate::var::{Node, Role, Tap, Var};

static NEXT_PARAM_ID: AtomicU64 = AtomicU64::new(0);

/// A trainable tensor. Gradients from every use add up in it until an
/// optimizer (or [`Param::zero_grad`]) consumes them.
///
/// A `&Param<A>` can be passed wherever a `&Var<A>` is expected (it
/// dereferences to one), so every operation works on it. Cloning a `Param`
/// makes an independent copy (new identity, same value, no gradient), so
/// that `#[derive(Clone)]` on a model copies the model.
///
/// A model is a struct of `Param`s with `#[derive(Parameters)]` (see
/// [`Parameters`](crate::Parameters)); an optimizer's
/// [`step`](crate::optim::Optimizer::step) visits every one, updates its
/// value from its gradient and consumes the gradient.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let w = Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]);
/// assert_eq!(w.shape(), &[2, 2]);
/// assert_eq!(w.grad(), ndarray::ArrayD::<f64>::zeros(ndarray::IxDyn(&[2, 2])));
/// ```
pub struct Param<A: Element = f32> {
    var: Var<A>,
    id: u64,
}

impl<A: Element> Param<A> {
    /// A trainable parameter holding `value`.
    pub fn new<D: ndarray::Dimension>(value: ndarray::Array<A, D>) -> Self {
        Param {
            var: Var::from_parts(value.into_dyn(), Role::Param, true, "param"),
            id: NEXT_PARAM_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// A stable identity for this parameter (optimizers key their state on it).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Takes `id` as this parameter's identity: a replica of a model on
    /// another thread answers to its original's identities, so that an
    /// optimizer's state, keyed on them, carries over with a clone of the
    /// optimizer (see [`Snapshot`](crate::parallel::Snapshot)).
    pub(crate) fn adopt_identity(&mut self, id: u64) {
        self.id = id;
    }

    /// The parameter as a [`Var`] handle.
    pub fn var(&self) -> &Var<A> {
        &self.var
    }

    /// The accumulated gradient, with the parameter's shape: zeros when
    /// nothing has accumulated.
    pub fn grad(&self) -> ArrayD<A> {
        self.var
            .grad()
            .unwrap_or_else(|| ArrayD::zeros(IxDyn(self.var.shape())))
    }

    /// Takes the accumulated gradient out, leaving none.
    pub fn take_grad(&self) -> Option<ArrayD<A>> {
        self.var.flush_deferred();
        self.var.take_grad_buffer()
    }

    /// Discards the accumulated gradient; its buffer serves the next
    /// gradient of its size.
    pub fn zero_grad(&self) {
        self.var.discard_deferred();
        if let Some(buffer) = self.var.take_grad_buffer() {
            memory::recycle(buffer);
        }
    }

    /// Gives back the buffer of a gradient taken with [`Param::take_grad`]
    /// and used up, for the next gradient of its size (what
    /// [`Optimizer::step`](crate::optim::Optimizer::step) does).
    pub(crate) fn give_back_grad(&self, buffer: ArrayD<A>) {
        memory::recycle(buffer);
    }

    /// Starts recording the rows of the matrix products this parameter
    /// takes part in as a weight, and returns the record (see [`Tap`]);
    /// tapping again returns the same record.
    pub fn tap(&self) -> Tap<A> {
        let mut param = self.var.node.param.borrow_mut();
        let param = param
            .as_mut()
            .expect("a parameter keeps its gradient state");
        param.tap.get_or_insert_with(Tap::new).clone()
    }

    /// Stops recording (see [`Param::tap`]); rows not yet taken stay with
    /// the handles.
    pub fn untap(&self) {
        if let Some(param) = self.var.node.param.borrow_mut().as_mut() {
            param.tap = None;
        }
    }

    /// Whether gradients accumulate in this parameter (true by default).
    pub fn is_trainable(&self) -> bool {
        self.var.requires_grad()
    }

    /// Freezes (`false`) or unfreezes (`true`) the parameter. A frozen
    /// parameter behaves as a constant: no gradient is computed for it.
    pub fn set_trainable(&mut self, trainable: bool) {
        self.var.node.requires_grad.set(trainable);
    }

    /// Mutable access to the value, for optimizers and loaders.
    ///
    /// If a `Var` handle to this parameter is still alive somewhere (kept
    /// from an earlier computation), that handle keeps the old value.
    pub fn value_mut(&mut self) -> &mut ArrayD<A> {
        if Rc::get_mut(&mut self.var.node).is_none() {
            let old = &self.var.node;
            let copy = Var {
                node: std::mem::ManuallyDrop::new(Rc::new(Node {
                    value: old.value.clone(),
                    flat_len: crate::var::NOT_FLAT,
                    grad: std::cell::RefCell::new(old.grad.borrow().clone()),
                    role: old.role,
                    requires_grad: old.requires_grad.clone(),
                    finished: std::cell::Cell::new(false),
                    op: old.op,
                    param: std::cell::RefCell::new(old.param.take()),
                })),
            };
            self.var = copy;
        }
        let node = Rc::get_mut(&mut self.var.node).expect("a freshly made node is unique");
        // The caller may replace the value or change its layout.
        node.flat_len = crate::var::NOT_FLAT;
        &mut node.value
    }

    /// Runs `update` on the value (as [`Param::value_mut`] would allow),
    /// then records its layout again, so that operations keep reading it
    /// without checking (see `Node::flat_len`).
    pub(crate) fn update_value(&mut self, update: impl FnOnce(&mut ArrayD<A>)) {
        update(self.value_mut());
        let node = Rc::get_mut(&mut self.var.node).expect("value_mut left the node unique");
        node.flat_len = crate::var::flat_len_of(&node.value);
    }

    /// Replaces the value; the new one must have the same shape.
    ///
    /// # Panics
    /// When the shapes differ.
    pub fn set_value(&mut self, value: ArrayD<A>) {
        assert_eq!(
            value.shape(),
            self.shape(),
            "Param::set_value: expected shape {:?}, got {:?}",
            self.shape(),
            value.shape()
        );
        *self.value_mut() = value;
    }
}

impl<A: Element> Deref for Param<A> {
    type Target = Var<A>;
    fn deref(&self) -> &Var<A> {
        &self.var
    }
}

/// A `Param` is a `Var` wherever a list of tensors is taken, so that
/// parameters go into [`concat`](crate::concat) and
/// [`rows_of`](crate::rows_of) as they are:
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let (a, b) = (Param::new(array![1.0f32]), Param::new(array![2.0f32]));
/// concat(&[&a, &b], 0).bind(|ab| assert_eq!(ab.array(), &array![1.0f32, 2.0].into_dyn()));
/// ```
impl<A: Element> AsRef<Var<A>> for Param<A> {
    fn as_ref(&self) -> &Var<A> {
        &self.var
    }
}

impl<A: Element> Clone for Param<A> {
    fn clone(&self) -> Self {
        let mut copy = Param::new(self.var.array().clone());
        copy.set_trainable(self.is_trainable());
        copy
    }
}

impl<A: Element> std::fmt::Debug for Param<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param")
            .field("id", &self.id)
            .field("shape", &self.shape())
            .field("trainable", &self.is_trainable())
            .field("value", self.array())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::Param;

    /// A gradient consumed by a step leaves its buffer for the next one,
    /// which starts from zeros however stale the buffer's contents.
    #[test]
    fn the_next_gradient_is_added_into_the_buffer_of_the_last() {
        let b = Param::new(array![1.0f32, 2.0, 3.0]);
        b.var().accumulate_with(|mut g| g.fill(7.0));
        let grad = b.take_grad().expect("a gradient");
        let address = grad.as_ptr();
        b.give_back_grad(grad);
        b.var().accumulate_with(|mut g| {
            g += &array![0.5f32, 0.25, 0.0].into_dyn();
        });
        let grad = b.take_grad().expect("a gradient");
        assert_eq!(grad, array![0.5f32, 0.25, 0.0].into_dyn());
        assert_eq!(grad.as_ptr(), address);
    }
}
