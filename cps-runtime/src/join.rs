//! [`join`]: two computations that do not depend on each other, run side
//! by side, so that their matrix products meet and run as one.
//!
//! A recursive model over a tree (a Tree-LSTM) multiplies the same weight
//! matrix by one vector per node. Node by node, the whole matrix is read
//! from memory for every node, forward and backward. When the two subtrees
//! of every node are computed with `join`, each side runs as a coroutine on
//! a stack of its own (see `join/sides.rs`); a product of a matrix by a
//! vector inside a side does not run at once but waits, and when every
//! side is waiting, the products with the same matrix run together, reading
//! it once (see `execution/batch.rs`). Nodes of the same height meet this way,
//! forward and backward: what a level-by-level program does by hand.
//!
//! Each product gives the same bits as one computed alone; what changes
//! is the order in which the two sides' gradients reach what they share
//! (a bias, a parameter's deferred updates), so gradients agree with the
//! sequential program's to rounding.

use crate::computation::Computation;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use crate::execution::batch::{DEFAULT_BATCH_THRESHOLD, set_batch_threshold};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod sides;

/// Runs two computations that do not depend on each other, and hands both
/// results to the continuation: `let (a, b) = join(|| f(x), || g(y));` in a
/// `#[differentiable]` function computes what
/// `let a = f(x); let b = g(y);` computes, with the two sides' products of
/// a matrix by a vector batched (see the module documentation).
///
/// Each side is a closure returning a computation (the closures' bodies
/// are not rewritten by the macro, so `|| f(x)` hands over `f`'s lazy
/// computation without running it). The backward pass runs the second
/// side's backward steps before the first's, as sequential code would,
/// interleaved where they wait for a batch.
///
/// The Tree-LSTM example's `--mode joined` computes sibling subtrees this
/// way; `BENCHMARKS.md` gives its speed beside the plain recursion.
///
/// Values and losses are the sequential program's bit for bit; gradients
/// of what both sides use (a shared bias, a weight's accumulated outer
/// products) are summed in another order, so they agree to rounding. On
/// targets without the stack switching `join` needs (anything but x86-64
/// and AArch64), it is the sequential program.
///
/// ```
/// use cps_runtime::*;
/// use ndarray::array;
///
/// let w = Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]);
/// let (x, y) = (Var::constant(array![1.0, 0.0]), Var::constant(array![0.0, 1.0]));
/// join(|| w.matmul(&x), || w.matmul(&y)).bind(|(wx, wy)| {
///     assert_eq!(wx.array(), &array![1.0, 3.0].into_dyn());
///     assert_eq!(wy.array(), &array![2.0, 4.0].into_dyn());
/// });
/// ```
pub fn join<FA, FB, CA, CB>(a: FA, b: FB) -> Join<FA, FB>
where
    FA: FnOnce() -> CA,
    FB: FnOnce() -> CB,
    CA: Computation,
    CB: Computation,
{
    Join { a, b }
}

/// The computation [`join`] returns.
#[must_use = "a join does nothing until it is bound to a continuation"]
pub struct Join<FA, FB> {
    a: FA,
    b: FB,
}

impl<FA, FB, CA, CB> Computation for Join<FA, FB>
where
    FA: FnOnce() -> CA,
    FB: FnOnce() -> CB,
    CA: Computation,
    CB: Computation,
{
    type Output = (CA::Output, CB::Output);

    fn bind<K: FnOnce(Self::Output)>(self, k: K) {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        sides::run(self.a, self.b, k);
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        (self.a)().bind(|a| (self.b)().bind(|b| k((a, b))));
    }
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use ndarray::array;

    use super::{join, set_batch_threshold};
    use crate::execution::batch;
    use crate::{Computation, Param, Var, lazy};

    /// Runs `f` with this thread's batch threshold at `elements`, then
    /// puts the previous one back (also when `f` panics), and returns what
    /// `f` returned with the batches run meanwhile.
    fn with_threshold<R>(elements: usize, f: impl FnOnce() -> R) -> (R, Vec<(bool, usize)>) {
        struct Restore(usize);
        impl Drop for Restore {
            fn drop(&mut self) {
                set_batch_threshold(self.0);
            }
        }
        let _restore = Restore(set_batch_threshold(elements));
        batch::take_batches();
        let result = f();
        (result, batch::take_batches())
    }

    /// A 2×2 weight and an input for it.
    fn weight_and_input() -> (Param<f64>, Param<f64>) {
        (
            Param::new(array![[1.0f64, 2.0], [3.0, 4.0]]),
            Param::new(array![1.0, 1.0]),
        )
    }

    /// Two sides multiplying one matrix by their vectors: one batch of two
    /// forward, one of two backward, and the gradients of a plain product.
    #[test]
    fn products_with_one_matrix_run_as_one_batch() {
        let w = Param::new(array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]]);
        let (x, y) = (Param::new(array![1.0, -1.0]), Param::new(array![0.5, 2.0]));
        let (loss, batches) = with_threshold(1, || {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                join(|| w.var().matmul(x.var()), || w.var().matmul(y.var())).bind(
                    |(a, b): (Var<f64>, Var<f64>)| {
                        assert_eq!(a.array(), &array![-1.0, -1.0, -1.0].into_dyn());
                        assert_eq!(b.array(), &array![4.5, 9.5, 14.5].into_dyn());
                        (&a + &b).bind(|s| s.sum().bind(k))
                    },
                )
            })
            .backward()
        });
        assert_eq!(loss, -3.0 + 28.5);
        assert_eq!(batches, vec![(false, 2), (true, 2)]);
        // d/dx sum(W x) = Wᵀ·1, the same for y.
        let expected = array![9.0, 12.0].into_dyn();
        assert_eq!(x.grad(), expected);
        assert_eq!(y.grad(), expected);
        assert_eq!(
            w.grad(),
            array![[1.5, 1.0], [1.5, 1.0], [1.5, 1.0]].into_dyn()
        );
    }

    /// Outside a side, a product runs at once: no batch.
    #[test]
    fn products_outside_a_side_are_not_batched() {
        let (w, x) = weight_and_input();
        let (loss, batches) = with_threshold(1, || {
            lazy(|k: &mut dyn FnMut(Var<f64>)| w.var().matmul(x.var()).bind(|h| h.sum().bind(k)))
                .backward()
        });
        assert_eq!(loss, 10.0);
        assert!(batches.is_empty());
    }

    /// A backward step as a plain function pointer (the failing side's
    /// type, which it never produces).
    type PlainStep = fn(&ndarray::ArrayD<f64>, ndarray::ArrayD<f64>);

    /// A side that panics while the other waits for its batch: the panic
    /// reaches the caller, and the waiting product is withdrawn with the
    /// side it belonged to (its slices are gone).
    #[test]
    fn a_panic_withdraws_the_products_of_dropped_sides() {
        let (w, x) = weight_and_input();
        let (caught, _) = with_threshold(1, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                lazy(|k: &mut dyn FnMut(Var<f64>)| {
                    join(
                        || w.var().matmul(x.var()),
                        || -> crate::Pending<f64, PlainStep> {
                            assert_eq!(batch::waiting::<f64>(), 1, "the first side waits");
                            panic!("the second side fails")
                        },
                    )
                    .bind(|(a, _b): (Var<f64>, Var<f64>)| a.sum().bind(k))
                })
                .backward()
            }))
        });
        assert!(caught.is_err());
        assert_eq!(batch::waiting::<f64>(), 0);
    }

    /// In a side, a matrix under the threshold is multiplied at once.
    #[test]
    fn small_matrices_are_not_batched() {
        let (w, x) = weight_and_input();
        let (loss, batches) = with_threshold(5, || {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                join(|| w.var().matmul(x.var()), || w.var().matmul(x.var()))
                    .bind(|(a, b): (Var<f64>, Var<f64>)| (&a + &b).bind(|s| s.sum().bind(k)))
            })
            .backward()
        });
        assert_eq!(loss, 20.0);
        assert!(batches.is_empty());
    }
}
