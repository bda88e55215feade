//! The sum of the items a computing `map(..).sum()` collected (see
//! `cps-macros/src/lower/iterators.rs`): tensors are added by one
//! differentiable operation, plain numbers as `Iterator::sum` adds them.

use crate::computation::{Computation, lazy};
use crate::element::Element;
use crate::ops::shape::stack;
use crate::var::Var;

/// Adds up collected items.
pub trait SumItems {
    /// The sum: a computation for tensors, a value for plain numbers.
    type Output;
    /// The sum of `self`'s items.
    fn sum_items(self) -> Self::Output;
}

/// Tensors of one shape, summed elementwise (stacked, then summed over
/// the new axis: one operation whatever their number).
///
/// # Panics
/// When there are none (a sum of no tensors has no shape), or when their
/// shapes differ.
impl<A: Element> SumItems for Vec<Var<A>> {
    type Output = crate::computation::BoxedComputation<'static, Var<A>>;
    fn sum_items(self) -> Self::Output {
        assert!(
            !self.is_empty(),
            "sum: no tensors to add (a sum of no `Var`s has no shape); start a `fold` from a \
             zero tensor of the shape you want instead"
        );
        lazy(move |k: &mut dyn FnMut(Var<A>)| {
            let parts: Vec<&Var<A>> = self.iter().collect();
            stack(&parts, 0).bind(|stacked| stacked.sum_axis(0).bind(k))
        })
        .boxed()
    }
}

macro_rules! plain_sums {
    ($($t:ty),*) => {$(
        impl SumItems for Vec<$t> {
            type Output = $t;
            fn sum_items(self) -> $t {
                self.into_iter().sum()
            }
        }
    )*};
}
plain_sums!(f32, f64, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);
