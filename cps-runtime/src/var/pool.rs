//! Nodes of finished operations, kept per thread for the results of the
//! next ones. In continuation-passing style every result lives until its
//! operation's backward step has run, and is then usually dropped; a
//! training loop makes the same results again, so a node serves again
//! instead of going back to the allocator.
//!
//! A node keeps its value, and the next result of that length (usually of
//! that shape too) is written straight into it, with no array to build.
//! Nodes of small values (at most [`MAX_SMALL`] elements, a chain of
//! scalar operations, say) are kept together, last in, first out, whatever
//! their length. Larger ones are kept by length on the memory's
//! [`Shelves`], with its policy: no more of a length than its requests
//! missed, and a bound on the memory kept. A value too large for that
//! leaves its buffer to the buffer pool ([`memory`]), and its node joins
//! the small ones, empty.

use super::*;
use crate::memory::{self, Shelves};

/// Nodes of values with at most this many elements are kept together,
/// whatever their length (the fastest way for chains of tiny operations).
pub(crate) const MAX_SMALL: usize = 16;

/// The most memory the small (or empty) nodes a thread keeps hold, per
/// element type, counting a node with a one-element value: the results a
/// chain of several hundred thousand scalar operations keeps alive until
/// its backward pass (`examples/scalar_chain.rs`).
const MAX_SMALL_BYTES: usize = 64 << 20;

/// The most small (or empty) nodes kept, from [`MAX_SMALL_BYTES`]: a node
/// in its reference-counted allocation, and its value's element.
fn max_small_nodes<A: Element>() -> usize {
    MAX_SMALL_BYTES / (size_of::<Node<A>>() + 2 * size_of::<usize>() + size_of::<A>())
}

/// Values with more elements than this are not kept with their node.
const MAX_KEPT_ELEMENTS: usize = 1 << 16;

/// The most memory the nodes kept with larger values hold, per thread and
/// element type.
const MAX_BYTES: usize = 64 << 20;

/// The nodes a thread keeps for one element type.
pub(crate) struct Pool<A: Element> {
    /// Nodes with a small value or none, the one given back last on top.
    small: Vec<Rc<Node<A>>>,
    /// Nodes with a larger value, by its length.
    larger: Shelves<Rc<Node<A>>>,
}

impl<A: Element> Pool<A> {
    const fn new() -> Self {
        Pool {
            small: Vec::new(),
            larger: Shelves::new(MAX_BYTES),
        }
    }
}

thread_local! {
    static F32: RefCell<Pool<f32>> = const { RefCell::new(Pool::new()) };
    static F64: RefCell<Pool<f64>> = const { RefCell::new(Pool::new()) };
}

/// Runs `f` on this thread's pool for `A`; `None` while the pool is in
/// use or already destroyed (at thread exit).
#[inline]
fn with<A: Element, R>(f: impl FnOnce(&mut Pool<A>) -> R) -> Option<R> {
    memory::per_element::<A, _, _, _, R>(&F32, &F64, f)
}

/// A pooled node for a result of `len` elements, if any: for a small
/// result, a small node; for a larger one, one keeping a value of that
/// length, else a small one. Its `value` is a finished result's, or empty:
/// overwrite or replace it, and [`Node::reset`] the rest.
#[inline]
pub(crate) fn take<A: Element>(len: usize) -> Option<Rc<Node<A>>> {
    with(|pool: &mut Pool<A>| {
        if len <= MAX_SMALL {
            return pool.small.pop();
        }
        pool.larger.take(len).or_else(|| pool.small.pop())
    })
    .flatten()
}

/// The node taken from the pool, mutably: nothing else holds it.
#[inline]
pub(crate) fn unique<A: Element>(node: &mut Rc<Node<A>>) -> &mut Node<A> {
    Rc::get_mut(node).expect("pooled nodes are held by the pool alone")
}

/// Pools `node` if this was its last handle, it holds an operation's
/// result and there is room; drops it otherwise.
#[inline]
pub(crate) fn give<A: Element>(mut node: Rc<Node<A>>) {
    let Some(inner) = Rc::get_mut(&mut node) else {
        return;
    };
    if inner.role != Role::Computed {
        return;
    }
    // A gradient left behind (the operation did not require one) goes
    // now, not when the node is next used.
    if inner.grad.get_mut().is_some() {
        drop_grad(inner);
    }
    let len = match inner.flat_len {
        NOT_FLAT => inner.value.len(),
        len => len as usize,
    };
    super::live::released::<A>(len);
    if len <= MAX_SMALL && inner.flat_len != NOT_FLAT {
        // Dropped outside the pool's borrow when there is no room.
        let _rejected = with(move |pool: &mut Pool<A>| {
            if pool.small.len() >= max_small_nodes::<A>() {
                return Some(node);
            }
            pool.small.push(node);
            None
        });
        return;
    }
    give_larger(node);
}

/// [`give`]'s recycling of a gradient left on the node: out of line, so
/// that the usual way through `give` (no gradient left) stays small.
#[cold]
#[inline(never)]
fn drop_grad<A: Element>(node: &mut Node<A>) {
    if let Some(grad) = node.grad.get_mut().take() {
        memory::recycle(memory::unboxed(grad));
    }
}

/// [`give`] for a node whose value is not small (or not in standard
/// layout): kept with its value when the shelves take it; otherwise the
/// value's buffer goes to the buffer pool and the node joins the small
/// ones. Out of line, for the same reason.
#[inline(never)]
fn give_larger<A: Element>(mut node: Rc<Node<A>>) {
    let inner = Rc::get_mut(&mut node).expect("checked by `give`");
    let len = inner.value.len();
    let node = if inner.flat_len != NOT_FLAT && len <= MAX_KEPT_ELEMENTS {
        let bytes = size_of::<Node<A>>() + len * size_of::<A>();
        // Dropped outside the pool's borrow when there is no room.
        match with(move |pool: &mut Pool<A>| pool.larger.keep(len, node, bytes)) {
            Some(Ok(())) => return,
            Some(Err(node)) => node,
            None => return,
        }
    } else {
        node
    };
    give_bare(node);
}

/// Keeps `node` with the small ones, its value's buffer given to the
/// buffer pool.
fn give_bare<A: Element>(mut node: Rc<Node<A>>) {
    let inner = Rc::get_mut(&mut node).expect("checked by `give`");
    memory::recycle(take_value(inner));
    let _rejected = with(move |pool: &mut Pool<A>| {
        if pool.small.len() >= max_small_nodes::<A>() {
            return Some(node);
        }
        pool.small.push(node);
        None
    });
}

/// The value of `node`; the node is left with an empty one.
fn take_value<A: Element>(node: &mut Node<A>) -> ArrayD<A> {
    node.flat_len = 0;
    std::mem::replace(&mut node.value, empty())
}

/// An array of no elements, made without allocating.
fn empty<A: Element>() -> ArrayD<A> {
    // SAFETY: a shape of one axis of length 0 has no elements, as many as
    // the vector.
    unsafe { ArrayD::from_shape_vec_unchecked(ndarray::IxDyn::zeros(1), Vec::new()) }
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use super::{Pool, max_small_nodes, with};
    use crate::var::Var;

    /// A result of `shape` whose elements are all `value`, made through
    /// the pool.
    fn result(shape: &[usize], value: f32) -> Var<f32> {
        let like = ArrayD::from_elem(IxDyn(shape), 0.0f32);
        // SAFETY: the closure writes every element.
        unsafe {
            Var::computed_like("test", false, &like, like.len(), |out| {
                out.iter_mut().for_each(|o| {
                    o.write(value);
                })
            })
        }
    }

    /// How many nodes keep a value of `len` elements.
    fn kept(len: usize) -> usize {
        with(|pool: &mut Pool<f32>| pool.larger.count(len)).expect("the pool is free")
    }

    /// A small result's node keeps its value, and the next small result
    /// of that shape is written into it.
    #[test]
    fn a_small_value_serves_the_next_small_result() {
        let first = result(&[2, 3], 1.0);
        let address = first.array().as_ptr();
        first.recycle();
        let second = result(&[2, 3], 2.0);
        assert_eq!(second.array().as_ptr(), address);
        assert!(second.array().iter().all(|&v| v == 2.0));
    }

    /// A larger result's node keeps its value for the next result of its
    /// length, which is written into it in full.
    #[test]
    fn a_kept_value_serves_the_next_result_of_its_length() {
        // Asked for once and missed: a node of this length may be kept.
        result(&[4, 25], 0.0).recycle();
        let first = result(&[4, 25], 2.0);
        let address = first.array().as_ptr();
        first.recycle();
        let second = result(&[4, 25], 3.0);
        assert_eq!(second.array().as_ptr(), address);
        assert_eq!(second.shape(), &[4, 25]);
        assert!(second.array().iter().all(|&v| v == 3.0));
    }

    /// A value whose last handle outlives its operation (kept in a list
    /// for a later step, say) goes back to the pool when that handle is
    /// dropped, as it would have when its operation finished.
    #[test]
    fn a_value_dropped_by_its_last_handle_goes_back_to_the_pool() {
        result(&[5, 9], 1.0).recycle();
        let value = result(&[5, 9], 2.0);
        let kept_handle = value.clone();
        let before = kept(45);
        // The operation finishes while the value is still held elsewhere.
        value.recycle();
        assert_eq!(kept(45), before);
        // Its last handle goes: so does the node, to the pool.
        drop(kept_handle);
        assert_eq!(kept(45), before + 1);
    }

    /// However many results a program drops at once, the pool keeps a
    /// bounded number of nodes, and of a length no more than its requests
    /// missed.
    #[test]
    fn the_nodes_kept_are_bounded() {
        let results: Vec<_> = (0..max_small_nodes::<f32>() + 10)
            .map(|_| result(&[3], 0.5))
            .collect();
        drop(results);
        let small = with(|pool: &mut Pool<f32>| pool.small.len()).expect("the pool is free");
        assert!(small <= max_small_nodes::<f32>(), "{small} nodes");
        let results: Vec<_> = (0..5).map(|_| result(&[77], 0.5)).collect();
        drop(results);
        let extra: Vec<_> = (0..10)
            .map(|_| Var::<f32>::computed(ArrayD::zeros(IxDyn(&[77])), "test", false))
            .collect();
        drop(extra);
        assert_eq!(kept(77), 5);
    }
}
