//! Nodes of finished operations, kept per thread for the results of the
//! next ones. In continuation-passing style every result lives until
//! its operation's backward step has run, and is then usually dropped
//! (nothing else holds it). A training loop runs the same computation
//! again and again, so the node and its value buffer serve again instead
//! of going back to the allocator, which costs more than the arithmetic
//! on small tensors.
//!
//! Nodes are kept by the length of their value, with the value: the next
//! result of that length (usually of that shape too) is written straight
//! into it, with no array to build. A Tree-LSTM makes results of a few
//! lengths (the hidden size, the gates' size, one for a loss), so a pool
//! taken last in, first out whatever the length would mostly hand back a
//! value of the wrong length, to be swapped for a buffer of the right one.
//!
//! Bounded: at most [`MAX_BYTES`] per thread and element type, nodes of
//! at most [`MAX_LENGTHS`] lengths, values of at most [`MAX_KEPT_ELEMENTS`]
//! elements kept with their node. A larger value, or one of a length not
//! kept, goes to the free buffers kept by length ([`buffer`], [`recycle`]),
//! and its node to the nodes kept without a value.

use super::*;

mod buffers;
use buffers::Buffers;

/// The most memory (nodes and the value buffers they keep) a thread's
/// pool holds for one element type.
pub(crate) const MAX_BYTES: usize = 64 << 20;

/// Values with more elements than this are not kept with their node.
const MAX_KEPT_ELEMENTS: usize = 1 << 16;

/// The most distinct value lengths nodes are kept for (besides nodes kept
/// without a value).
const MAX_LENGTHS: usize = 32;

pub(crate) struct Pool<A: Element> {
    /// The nodes by the length of the value they keep (length 0: nodes
    /// whose value was taken away), each with the memory it accounts for
    /// (kept, so that taking a node does not measure its value again).
    classes: Vec<Class<A>>,
    bytes: usize,
    /// Free buffers of larger values and of gradients.
    buffers: Buffers<A>,
}

/// The pooled nodes whose values have one length.
struct Class<A: Element> {
    len: usize,
    /// The node given back last on top.
    nodes: Vec<(Rc<Node<A>>, usize)>,
    /// How many keep their value at most: the number of requests that
    /// found none (as for the free buffers). More would hold buffers that
    /// gradients and other lengths' values could use.
    most: usize,
}

impl<A: Element> Pool<A> {
    const fn new() -> Self {
        Pool {
            classes: Vec::new(),
            bytes: 0,
            buffers: Buffers::new(),
        }
    }

    /// The buffer of a pooled node's value of `len` elements, for a value
    /// made outside the pool (the node goes on without one): a node keeps
    /// its value for a result of its length, but a free buffer serves
    /// anything of that length, and results made elsewhere ask for one.
    fn value_buffer(&mut self, len: usize) -> Option<Vec<A>> {
        if len == 0 {
            return None;
        }
        let class = self.classes.iter_mut().find(|class| class.len == len)?;
        let (mut node, size) = class.nodes.pop()?;
        let inner = unique(&mut node);
        let value = std::mem::replace(&mut inner.value, empty());
        inner.flat_len = 0;
        let emptied = bytes::<A>(0);
        self.bytes -= size - emptied;
        self.class(0)
            .expect("nodes without a value always have a class")
            .nodes
            .push((node, emptied));
        let buffer = value.into_raw_vec_and_offset().0;
        // A value in a larger allocation is not what a request of `len`
        // elements expects; it goes where requests of its size find it.
        if buffer.capacity() != len {
            let _ = self.buffers.keep(buffer);
            return None;
        }
        Some(buffer)
    }

    /// The class of nodes keeping values of `len` elements, made if there
    /// is room for another length.
    fn class(&mut self, len: usize) -> Option<&mut Class<A>> {
        let at = match self.classes.iter().position(|class| class.len == len) {
            Some(at) => at,
            // Nodes without a value always have a class.
            None if len == 0 || self.classes.len() < MAX_LENGTHS => {
                self.classes.push(Class {
                    len,
                    nodes: Vec::new(),
                    most: 0,
                });
                self.classes.len() - 1
            }
            None => return None,
        };
        Some(&mut self.classes[at])
    }
}

thread_local! {
    static F32: RefCell<Pool<f32>> = const { RefCell::new(Pool::new()) };
    static F64: RefCell<Pool<f64>> = const { RefCell::new(Pool::new()) };
}

/// The memory a pooled node accounts for, its value having `len`
/// elements.
fn bytes<A: Element>(len: usize) -> usize {
    size_of::<Node<A>>() + 2 * size_of::<usize>() + len * size_of::<A>()
}

/// Runs `f` on this thread's pool for `A`; `None` while the pool is in
/// use or already destroyed (at thread exit).
#[inline]
fn with<A: Element, R>(f: impl FnOnce(&mut Pool<A>) -> R) -> Option<R> {
    #[inline]
    fn on<T: Element, A: Element, R>(
        key: &'static LocalKey<RefCell<Pool<T>>>,
        f: impl FnOnce(&mut Pool<A>) -> R,
    ) -> Option<R> {
        key.try_with(|cell| {
            let mut pool = cell.try_borrow_mut().ok()?;
            // `Element` is sealed to f32 and f64, so this is the pool
            // of `A` itself; the check folds away at compile time.
            let pool = (&mut *pool as &mut dyn Any).downcast_mut::<Pool<A>>()?;
            Some(f(pool))
        })
        .ok()
        .flatten()
    }
    if TypeId::of::<A>() == TypeId::of::<f32>() {
        on(&F32, f)
    } else {
        on(&F64, f)
    }
}

/// A pooled node, if any: one keeping a value of `len` elements when
/// there is one, else one without a value, else any. Its `value` is a
/// finished result's: overwrite or replace it, and [`Node::reset`] the
/// rest.
#[inline]
pub(crate) fn take<A: Element>(len: usize) -> Option<Rc<Node<A>>> {
    with(|pool: &mut Pool<A>| {
        let exact = pool.classes.iter().position(|class| class.len == len);
        let at = match exact {
            Some(at) if !pool.classes[at].nodes.is_empty() => at,
            _ => {
                if len != 0
                    && let Some(class) = pool.class(len)
                {
                    class.most += 1;
                }
                let classes = &pool.classes;
                classes
                    .iter()
                    .position(|class| class.len == 0 && !class.nodes.is_empty())
                    .or_else(|| classes.iter().position(|class| !class.nodes.is_empty()))?
            }
        };
        let (node, size) = pool.classes[at].nodes.pop()?;
        pool.bytes -= size;
        Some(node)
    })
    .flatten()
}

/// The node taken from the pool, mutably: nothing else holds it.
#[inline]
pub(crate) fn unique<A: Element>(node: &mut Rc<Node<A>>) -> &mut Node<A> {
    Rc::get_mut(node).expect("pooled nodes are held by the pool alone")
}

/// An empty buffer with room for `len` elements: one a finished value or
/// gradient of that length left behind, or a new allocation.
#[inline]
pub(crate) fn buffer<A: Element>(len: usize) -> Vec<A> {
    let mut data = kept(len).unwrap_or_else(|| Vec::with_capacity(len));
    data.clear();
    data
}

/// A kept buffer of capacity `len`, with the elements it was kept with.
#[inline]
fn kept<A: Element>(len: usize) -> Option<Vec<A>> {
    with(|pool: &mut Pool<A>| pool.buffers.take(len).or_else(|| pool.value_buffer(len))).flatten()
}

/// A new array of zeros of `shape`, in a kept buffer when there is one.
pub(crate) fn zeros<A: Element, D: ndarray::Dimension>(shape: D) -> ndarray::Array<A, D> {
    let len = shape.size();
    let mut data = buffer(len);
    data.resize(len, A::zero());
    // SAFETY: `data` has exactly as many elements as the shape, taken with
    // standard strides.
    unsafe { ndarray::Array::from_shape_vec_unchecked(shape, data) }
}

/// A new array of `shape` whose elements are unspecified: a kept buffer's
/// old values when one is free, zeros otherwise. For results written in
/// full before they are read, such as a matrix product with `beta = 0`,
/// which then costs no pass to clear its output first.
pub(crate) fn scratch<A: Element, D: ndarray::Dimension>(shape: D) -> ndarray::Array<A, D> {
    let len = shape.size();
    let mut data = kept(len).unwrap_or_else(|| Vec::with_capacity(len));
    // Only what the kept buffer lacks is written: its own elements stay.
    data.resize(len, A::zero());
    // SAFETY: `data` has exactly as many elements as the shape, taken with
    // standard strides.
    unsafe { ndarray::Array::from_shape_vec_unchecked(shape, data) }
}

/// Drops `array`, keeping its buffer for the next value or gradient of
/// its length when there is room.
#[inline]
pub(crate) fn recycle<A: Element>(array: ArrayD<A>) {
    keep_buffer(array.into_raw_vec_and_offset().0);
}

/// Keeps `data` for the next value or gradient of its length when there
/// is room; frees it otherwise.
fn keep_buffer<A: Element>(data: Vec<A>) {
    if data.capacity() == 0 {
        return;
    }
    // Freed outside the pool's borrow when not kept.
    let _rejected = with(move |pool: &mut Pool<A>| pool.buffers.keep(data));
}

/// An array of no elements, made without allocating.
fn empty<A: Element>() -> ArrayD<A> {
    // SAFETY: a shape of one axis of length 0 has no elements, as many as
    // the vector.
    unsafe { ArrayD::from_shape_vec_unchecked(ndarray::IxDyn::zeros(1), Vec::new()) }
}

/// Pools `node` if this was its last handle and there is room; drops
/// it otherwise.
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
    if let Some(grad) = inner.grad.get_mut().take() {
        recycle(unboxed(grad));
    }
    let len = inner.flat_len as usize;
    // Dropped outside the pool's borrow when it does not fit.
    let _rejected = with(move |pool: &mut Pool<A>| {
        let inner = Rc::get_mut(&mut node).expect("checked above");
        // A value kept with its node is in standard layout, not too
        // large, and of a length that has (or gets) its class; any other
        // leaves its buffer to the free buffers, and the node goes without.
        let keeps_value = inner.flat_len != NOT_FLAT
            && len <= MAX_KEPT_ELEMENTS
            && pool
                .class(len)
                .is_some_and(|class| len == 0 || class.nodes.len() < class.most);
        let len = if keeps_value {
            len
        } else {
            let value = std::mem::replace(&mut inner.value, empty());
            inner.flat_len = 0;
            // Freed here when not kept: nothing in a buffer reaches the pool.
            let _ = pool.buffers.keep(value.into_raw_vec_and_offset().0);
            0
        };
        let size = bytes::<A>(len);
        if pool.bytes + size > MAX_BYTES {
            return Some(node);
        }
        let Some(class) = pool.class(len) else {
            return Some(node);
        };
        class.nodes.push((node, size));
        pool.bytes += size;
        None
    });
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use super::{MAX_LENGTHS, Pool, with};
    use crate::var::Var;

    /// A result of `shape` whose elements are all `value`, made through
    /// the pool.
    fn result(shape: &[usize], value: f32) -> Var<f32> {
        let like = ArrayD::from_elem(IxDyn(shape), 0.0f32);
        // SAFETY: the closure writes every element.
        unsafe {
            Var::computed_like("test", false, &like, |out| {
                out.iter_mut().for_each(|o| {
                    o.write(value);
                })
            })
        }
    }

    /// A node keeps its value's buffer for the next result of its length,
    /// and gives it up to a value made elsewhere that asks for a buffer of
    /// that length (the node then goes on without one).
    #[test]
    fn a_kept_value_serves_the_next_result_or_buffer_of_its_length() {
        // Asked for once and missed: nodes of this length may now keep
        // their value.
        let first = result(&[3, 7], 1.0);
        let address = first.array().as_ptr();
        first.recycle();
        let second = result(&[3, 7], 2.0);
        assert_eq!(second.array().as_ptr(), address);
        assert!(second.array().iter().all(|&v| v == 2.0));
        second.recycle();
        let buffer = super::buffer::<f32>(21);
        assert_eq!(buffer.as_ptr(), address);
        assert!(buffer.is_empty() && buffer.capacity() == 21);
    }

    /// However many lengths a program makes, nodes are kept for at most
    /// `MAX_LENGTHS` of them (and for nodes without a value), and each
    /// length keeps no more values than its requests missed.
    #[test]
    fn lengths_and_kept_values_are_bounded() {
        let results: Vec<_> = (1..=2 * MAX_LENGTHS)
            .map(|len| result(&[len + 1000], 0.5))
            .collect();
        for r in results {
            r.recycle();
        }
        let (classes, over) = with(|pool: &mut Pool<f32>| {
            let over = pool
                .classes
                .iter()
                .any(|class| class.len != 0 && class.nodes.len() > class.most);
            (pool.classes.len(), over)
        })
        .expect("the pool is free");
        assert!(classes <= MAX_LENGTHS + 1, "{classes} classes");
        assert!(!over);
    }

    /// A result too large to stay with its pooled node leaves its buffer
    /// for the next result of its length, which is written in full.
    #[test]
    fn a_large_result_leaves_its_buffer_to_the_next_of_its_length() {
        let like = ArrayD::from_elem(IxDyn(&[4, 25]), 1.0f32);
        let filled_with = |value: f32| {
            // SAFETY: the closure writes every element.
            unsafe {
                Var::computed_like("test", false, &like, |out| {
                    out.iter_mut().for_each(|o| {
                        o.write(value);
                    })
                })
            }
        };
        let first = filled_with(2.0);
        let address = first.array().as_ptr();
        first.recycle();
        // Were the buffer freed, the allocator would likely hand it to
        // this allocation of the same size.
        let interloper = vec![0.0f32; 100];
        let second = filled_with(3.0);
        assert_ne!(interloper.as_ptr(), address);
        assert_eq!(second.array().as_ptr(), address);
        assert_eq!(second.shape(), &[4, 25]);
        assert!(second.array().iter().all(|&v| v == 3.0));
        // Another length does not take it.
        second.recycle();
        let other = ArrayD::from_elem(IxDyn(&[99]), 0.0f32);
        // SAFETY: the closure writes every element.
        let third = unsafe {
            Var::computed_like("test", false, &other, |out| {
                out.iter_mut().for_each(|o| {
                    o.write(5.0);
                })
            })
        };
        assert_ne!(third.array().as_ptr(), address);
    }
}
