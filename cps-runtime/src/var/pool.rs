//! Nodes of finished operations, kept per thread for the results of the
//! next ones. In continuation-passing style every result lives until
//! its operation's backward step has run, and is then usually dropped
//! (nothing else holds it). A training loop runs the same computation
//! again and again, so the node and its value buffer serve again instead
//! of going back to the allocator, which costs more than the arithmetic
//! on small tensors.
//!
//! Nodes of small values (a chain of operations on a few elements) are
//! kept together, last in, first out, with their value. Nodes of larger
//! values are kept by the length of their value, with the value: the next
//! result of that length (usually of that shape too) is written straight
//! into it, with no array to build. A Tree-LSTM makes results of a few
//! lengths (the hidden size, the gates' size), so a pool taken last in,
//! first out whatever the length would mostly hand back a value of the
//! wrong length, to be swapped for a buffer of the right one.
//!
//! Bounded: at most [`MAX_BYTES`] per thread and element type, larger
//! values of at most [`MAX_LENGTHS`] lengths and [`MAX_KEPT_ELEMENTS`]
//! elements kept with their node, and of each length no more than its
//! requests missed. Any other value goes to the free buffers kept by
//! length ([`buffer`], [`recycle`]), and its node joins the small ones
//! with an empty value.

use super::*;

mod buffers;
use buffers::Buffers;

/// The most memory (nodes and the value buffers they keep) a thread's
/// pool holds for one element type.
pub(crate) const MAX_BYTES: usize = 64 << 20;

/// Values with more elements than this are not kept with their node.
const MAX_KEPT_ELEMENTS: usize = 1 << 16;

/// Nodes of values with at most this many elements are kept together,
/// whatever their length (the fastest way for chains of tiny operations).
pub(crate) const MAX_SMALL: usize = 16;

/// The most distinct lengths of larger values nodes are kept for.
const MAX_LENGTHS: usize = 32;

pub(crate) struct Pool<A: Element> {
    /// Nodes of small values (at most [`MAX_SMALL`] elements, whatever
    /// their length), each with the memory it accounts for (kept, so that
    /// taking a node does not measure its value again). Taken for any
    /// small result: one of another length costs only a small new buffer.
    small: Vec<(Rc<Node<A>>, usize)>,
    /// Nodes of larger values by the length of the value they keep,
    /// likewise.
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
    /// found none (as for the free buffers), less the nodes the class gave
    /// up (a value lent to a buffer request, a node taken for another
    /// length), so that a computation run again settles on the same
    /// allowance instead of raising it with every run. More would hold
    /// buffers that gradients and other lengths' values could use.
    most: usize,
}

impl<A: Element> Pool<A> {
    const fn new() -> Self {
        Pool {
            small: Vec::new(),
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
        if len <= MAX_SMALL {
            return None;
        }
        let at = self.find(len)?;
        let class = &mut self.classes[at];
        let (mut node, size) = class.nodes.pop()?;
        // The class gives up a value it was allowed to keep: the miss its
        // next request counts gives the allowance back, so that lending
        // values to buffer requests does not grow what the class keeps.
        class.most = class.most.saturating_sub(1);
        let buffer = take_value(unique(&mut node));
        let emptied = bytes::<A>(0);
        self.bytes -= size - emptied;
        self.small.push((node, emptied));
        // An owned array of `len` elements has room for them all.
        debug_assert!(buffer.capacity() >= len);
        Some(buffer)
    }

    /// The index of the class of nodes keeping values of `len` elements.
    #[inline]
    fn find(&self, len: usize) -> Option<usize> {
        self.classes.iter().position(|class| class.len == len)
    }

    /// [`Pool::find`], making the class if there is room for another
    /// length.
    #[inline]
    fn class_index(&mut self, len: usize) -> Option<usize> {
        match self.find(len) {
            Some(at) => Some(at),
            None => self.add_class(len),
        }
    }

    /// A new class for values of `len` elements, if there is room.
    #[cold]
    fn add_class(&mut self, len: usize) -> Option<usize> {
        if self.classes.len() >= MAX_LENGTHS {
            return None;
        }
        self.classes.push(Class {
            len,
            nodes: Vec::new(),
            most: 0,
        });
        Some(self.classes.len() - 1)
    }

    /// A node for a result of `len` elements when it is not small, or
    /// when no small node is kept: one keeping a value of that length,
    /// else a small one, else any. A miss is counted, so that the next
    /// nodes of that length may keep their values.
    fn larger(&mut self, len: usize) -> Option<(Rc<Node<A>>, usize)> {
        if let Some(at) = self.find(len)
            && let Some(node) = self.classes[at].nodes.pop()
        {
            return Some(node);
        }
        self.miss(len)
    }

    /// [`Pool::larger`] when no node keeps a value of `len` elements.
    #[cold]
    fn miss(&mut self, len: usize) -> Option<(Rc<Node<A>>, usize)> {
        if len > MAX_SMALL
            && let Some(at) = self.class_index(len)
        {
            self.classes[at].most += 1;
        }
        self.small.pop().or_else(|| {
            self.classes.iter_mut().find_map(|class| {
                let node = class.nodes.pop()?;
                // As in `value_buffer`: the class gives up one it was
                // allowed to keep, and its next miss gives it back.
                class.most = class.most.saturating_sub(1);
                Some(node)
            })
        })
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

/// A pooled node for a result of `len` elements, if any: a small one for
/// a small result, else one keeping a value of that length when there is
/// one (see [`Pool::larger`]). Its `value` is a finished result's:
/// overwrite or replace it, and [`Node::reset`] the rest.
#[inline]
pub(crate) fn take<A: Element>(len: usize) -> Option<Rc<Node<A>>> {
    with(|pool: &mut Pool<A>| {
        let (node, size) = if len <= MAX_SMALL {
            match pool.small.pop() {
                Some(small) => small,
                None => pool.larger(len)?,
            }
        } else {
            pool.larger(len)?
        };
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
    let mut data = kept(len).unwrap_or_else(|| Vec::with_capacity(buffers::room_for(len)));
    data.clear();
    data
}

/// A kept buffer with room for `len` elements, with the elements it was kept
/// with.
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
    let mut data = kept(len).unwrap_or_else(|| Vec::with_capacity(buffers::room_for(len)));
    // Only what the kept buffer lacks is written: its own elements stay.
    data.resize(len, A::zero());
    // SAFETY: `data` has exactly as many elements as the shape, taken with
    // standard strides.
    unsafe { ndarray::Array::from_shape_vec_unchecked(shape, data) }
}

/// An owned copy of `view` in standard layout, in a kept buffer when
/// there is one.
pub(crate) fn copy_of<A: Element>(view: ndarray::ArrayViewD<'_, A>) -> ArrayD<A> {
    let Some(values) = view.as_slice() else {
        // A strided view (a block of columns, say) is copied by ndarray's
        // assignment, which walks contiguous rows as slices; an element
        // iterator would cost several times more.
        let mut copy = scratch(view.raw_dim());
        copy.assign(&view);
        return copy;
    };
    let mut data = buffer(values.len());
    data.extend_from_slice(values);
    // SAFETY: `data` has as many elements as the view's shape, in
    // standard layout.
    unsafe { ArrayD::from_shape_vec_unchecked(view.raw_dim(), data) }
}

/// Drops `array`, keeping its buffer for the next value or gradient of
/// its length when there is room.
#[inline]
pub(crate) fn recycle<A: Element>(array: ArrayD<A>) {
    keep_buffer(array.into_raw_vec_and_offset().0);
}

/// Keeps `data` for the next value or gradient of its length when there
/// is room; frees it otherwise.
pub(crate) fn keep_buffer<A: Element>(data: Vec<A>) {
    if data.capacity() == 0 {
        return;
    }
    // Freed outside the pool's borrow when not kept.
    let _rejected = with(move |pool: &mut Pool<A>| pool.buffers.keep(data));
}

/// The buffer of `node`'s value; the node is left with an empty one.
fn take_value<A: Element>(node: &mut Node<A>) -> Vec<A> {
    node.flat_len = 0;
    std::mem::replace(&mut node.value, empty())
        .into_raw_vec_and_offset()
        .0
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
    if inner.grad.get_mut().is_some() {
        drop_grad(inner);
    }
    let len = match inner.flat_len {
        NOT_FLAT => inner.value.len(),
        len => len as usize,
    };
    if len <= MAX_SMALL {
        let size = bytes::<A>(len);
        // Dropped outside the pool's borrow when it does not fit.
        let _rejected = with(move |pool: &mut Pool<A>| {
            if pool.bytes + size > MAX_BYTES {
                return Some(node);
            }
            pool.bytes += size;
            pool.small.push((node, size));
            None
        });
        return;
    }
    give_larger(node, len);
}

/// [`give`]'s recycling of a gradient left on the node: out of line, so
/// that the usual way through `give` (no gradient left) stays small.
#[cold]
#[inline(never)]
fn drop_grad<A: Element>(node: &mut Node<A>) {
    if let Some(grad) = node.grad.get_mut().take() {
        recycle(unboxed(grad));
    }
}

/// [`give`] for a node whose value has `len` elements, more than
/// [`MAX_SMALL`]: out of line, for the same reason.
#[inline(never)]
fn give_larger<A: Element>(mut node: Rc<Node<A>>, len: usize) {
    // Dropped outside the pool's borrow when it does not fit.
    let _rejected = with(move |pool: &mut Pool<A>| {
        let inner = Rc::get_mut(&mut node).expect("checked above");
        // A value kept with its node is in standard layout, not too
        // large, of a length that has (or gets) its class, and wanted
        // there; any other leaves its buffer to the free buffers, and the
        // node goes without.
        let keeping = if inner.flat_len != NOT_FLAT && len <= MAX_KEPT_ELEMENTS {
            pool.class_index(len)
                .filter(|&at| pool.classes[at].nodes.len() < pool.classes[at].most)
        } else {
            None
        };
        let (at, len) = match keeping {
            Some(at) => (Some(at), len),
            None => {
                // Freed here when not kept: nothing in a buffer reaches
                // the pool.
                let _ = pool.buffers.keep(take_value(inner));
                (None, 0)
            }
        };
        let size = bytes::<A>(len);
        if pool.bytes + size > MAX_BYTES {
            return Some(node);
        }
        match at {
            Some(at) => pool.classes[at].nodes.push((node, size)),
            None => pool.small.push((node, size)),
        }
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
            Var::computed_like("test", false, &like, like.len(), |out| {
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

    /// A value whose last handle outlives its operation (kept in a list
    /// for a later step, say) goes back to the pool when that handle is
    /// dropped, as it would have when its operation finished.
    #[test]
    fn a_value_dropped_by_its_last_handle_goes_back_to_the_pool() {
        let nodes_of = |len: usize| {
            with(|pool: &mut Pool<f32>| pool.find(len).map_or(0, |at| pool.classes[at].nodes.len()))
                .expect("the pool is free")
        };
        // Asked for once and missed: a node of this length may be kept.
        result(&[5, 9], 1.0).recycle();
        let value = result(&[5, 9], 2.0);
        let kept = value.clone();
        let before = nodes_of(45);
        // The operation finishes while the value is still held elsewhere.
        value.recycle();
        assert_eq!(nodes_of(45), before);
        // Its last handle goes: so does the node, to the pool.
        let address = kept.array().as_ptr();
        drop(kept);
        assert_eq!(nodes_of(45), before + 1);
        let next = result(&[5, 9], 3.0);
        assert_eq!(next.array().as_ptr(), address);
        assert!(next.array().iter().all(|&v| v == 3.0));
    }

    /// However many lengths a program makes, nodes keep larger values of
    /// at most `MAX_LENGTHS` of them, and no more of each length than its
    /// requests missed.
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
                .any(|class| class.nodes.len() > class.most);
            (pool.classes.len(), over)
        })
        .expect("the pool is free");
        assert!(classes <= MAX_LENGTHS, "{classes} classes");
        assert!(!over);
    }

    /// A copy of a contiguous or a strided view has the view's elements
    /// in standard layout.
    #[test]
    fn a_copy_of_a_view_is_in_standard_layout() {
        let whole = ArrayD::from_shape_fn(IxDyn(&[3, 5]), |i| (i[0] * 10 + i[1]) as f32);
        let columns = whole.slice(ndarray::s![.., 1..4]).into_dyn();
        let transposed = whole.t().into_dyn();
        for view in [whole.view(), columns, transposed] {
            let copy = super::copy_of(view.clone());
            assert_eq!(copy, view);
            assert!(copy.is_standard_layout());
        }
    }

    /// What the pool holds, and each class's nodes and allowance.
    fn holdings() -> (usize, usize, Vec<(usize, usize, usize)>) {
        with(|pool: &mut Pool<f32>| {
            let classes = pool.classes.iter();
            let classes = classes.map(|c| (c.len, c.nodes.len(), c.most));
            (pool.bytes, pool.small.len(), classes.collect())
        })
        .expect("the pool is free")
    }

    /// The same computation run again and again leaves the pool holding
    /// the same after every run: values lent to buffer requests and nodes
    /// taken by results of other lengths do not make their classes keep
    /// more each time. The runs mix more lengths than the pool has
    /// classes, several results of a length alive at once, and buffer
    /// requests of lengths that nodes keep.
    #[test]
    fn a_repeated_computation_keeps_the_pool_the_same_size() {
        let lengths = |step: usize| 40 + (step * 7919) % (3 * MAX_LENGTHS);
        let run = || {
            let mut alive = Vec::new();
            for step in 0..400 {
                let len = lengths(step);
                alive.push(result(&[len], 1.0));
                if step % 3 == 0 {
                    let buffer = super::buffer::<f32>(lengths(step + 1));
                    super::keep_buffer(buffer);
                }
                if alive.len() > 4 {
                    // The oldest finish first, as in a backward pass.
                    for r in alive.drain(..3) {
                        r.recycle();
                    }
                }
            }
            for r in alive {
                r.recycle();
            }
        };
        run();
        run();
        let after_two = holdings();
        for _ in 0..4 {
            run();
            assert_eq!(holdings(), after_two);
        }
    }

    /// A result too large to stay with its pooled node leaves its buffer
    /// for the next result of its length, which is written in full.
    #[test]
    fn a_large_result_leaves_its_buffer_to_the_next_of_its_length() {
        let like = ArrayD::from_elem(IxDyn(&[4, 25]), 1.0f32);
        let filled_with = |value: f32| {
            // SAFETY: the closure writes every element.
            unsafe {
                Var::computed_like("test", false, &like, like.len(), |out| {
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
            Var::computed_like("test", false, &other, other.len(), |out| {
                out.iter_mut().for_each(|o| {
                    o.write(5.0);
                })
            })
        };
        assert_ne!(third.array().as_ptr(), address);
    }
}
