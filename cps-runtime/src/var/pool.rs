//! Nodes of finished operations, kept per thread for the results of the
//! next ones. In continuation-passing style every result lives until
//! its operation's backward step has run, and is then usually dropped
//! (nothing else holds it). A training loop runs the same computation
//! again and again, so the node and its value buffer (when it has the
//! shape wanted) serve again instead of going back to the allocator,
//! which costs more than the arithmetic on small tensors.
//!
//! Bounded: at most [`MAX_BYTES`] per thread and element type. Only
//! small values keep their buffer with their node: a larger one goes to
//! the free buffers kept by length ([`buffer`], [`recycle`]), since the
//! pool (last in, first out, whatever the shape) would often hand back a
//! node whose value has another shape.

use super::*;

mod buffers;
use buffers::Buffers;

/// The most memory (nodes and the value buffers they keep) a thread's
/// pool holds for one element type.
pub(crate) const MAX_BYTES: usize = 64 << 20;

/// Values with more elements than this are not kept with their node.
const MAX_KEPT_ELEMENTS: usize = 16;

pub(crate) struct Pool<A: Element> {
    /// The nodes, each with the memory it accounts for (kept, so that
    /// taking a node does not measure its value again).
    nodes: Vec<(Rc<Node<A>>, usize)>,
    bytes: usize,
    /// Free buffers of larger values and of gradients.
    buffers: Buffers<A>,
}

impl<A: Element> Pool<A> {
    const fn new() -> Self {
        Pool {
            nodes: Vec::new(),
            bytes: 0,
            buffers: Buffers::new(),
        }
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

/// A pooled node, if any. Its `value` is a finished result's: overwrite
/// or replace it, and [`Node::reset`] the rest.
#[inline]
pub(crate) fn take<A: Element>() -> Option<Rc<Node<A>>> {
    with(|pool: &mut Pool<A>| {
        let (node, size) = pool.nodes.pop()?;
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
    with(|pool: &mut Pool<A>| pool.buffers.take(len)).flatten()
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
    let mut len = match inner.flat_len {
        NOT_FLAT => inner.value.len(),
        len => len as usize,
    };
    if len > MAX_KEPT_ELEMENTS {
        keep_buffer(
            std::mem::replace(&mut inner.value, empty())
                .into_raw_vec_and_offset()
                .0,
        );
        inner.flat_len = 0;
        len = 0;
    }
    // A gradient left behind (the operation did not require one) goes
    // now, not when the node is next used.
    if let Some(grad) = inner.grad.get_mut().take() {
        recycle(unboxed(grad));
    }
    let size = bytes::<A>(len);
    // Dropped outside the pool's borrow when it does not fit.
    let _rejected = with(move |pool: &mut Pool<A>| {
        if pool.bytes + size > MAX_BYTES {
            return Some(node);
        }
        pool.bytes += size;
        pool.nodes.push((node, size));
        None
    });
}

#[cfg(test)]
mod tests {
    use ndarray::{ArrayD, IxDyn};

    use crate::var::Var;

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
