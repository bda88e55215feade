//! Nodes of finished operations, kept per thread for the results of the
//! next ones. In continuation-passing style every result lives until
//! its operation's backward step has run, and is then usually dropped
//! (nothing else holds it). A training loop runs the same computation
//! again and again, so the node and its value buffer (when it has the
//! shape wanted) serve again instead of going back to the allocator,
//! which costs more than the arithmetic on small tensors.
//!
//! Bounded: at most [`MAX_BYTES`] per thread and element type. Only
//! small values keep their buffer: a larger one is freed when its node
//! is pooled, because its allocation is cheap next to the work on it,
//! and the allocator hands back a buffer of the right size where the
//! pool (last in, first out, whatever the shape) would often hold one
//! of another shape (the Tree-LSTM measured no faster with buffers up
//! to 1024 elements kept, and perhaps slower).

use super::*;

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
}

impl<A: Element> Pool<A> {
    const fn new() -> Self {
        Pool {
            nodes: Vec::new(),
            bytes: 0,
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
        inner.value =
            ArrayD::from_shape_vec(ndarray::IxDyn(&[0]), Vec::new()).expect("an empty array");
        inner.flat_len = 0;
        len = 0;
    }
    // A gradient left behind (the operation did not require one) goes
    // now, not when the node is next used.
    if let Some(grad) = inner.grad.get_mut().take() {
        drop(unboxed(grad));
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
