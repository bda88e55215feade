//! Adagrad's step fused with the product of a parameter's deferred rows:
//! the weight-gradient tiles of `kernels/transposed_products.rs`, each
//! finished vector of the gradient applied to the parameter and its sum of
//! squares at once instead of being stored. The update's square roots and
//! divisions run beside the next tile's multiply-adds, and the gradient is
//! never written out and read back. `f32` with AVX2 and FMA only; the
//! plain step serves everything else.

use std::any::TypeId;

use ndarray::ArrayView2;

use crate::element::Element;
#[cfg(target_arch = "x86_64")]
use crate::kernels::{
    SHORT_INNER,
    operands::Operands,
    transposed_products::{Finish, all_tiles},
    vector::{Lanes, Vector, Width},
};

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether [`step_from_products`] takes a gradient of `k` deferred rows
/// of `A` on this processor.
pub(super) fn fits<A: Element>(k: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return TypeId::of::<A>() == TypeId::of::<f32>()
        && crate::kernels::simd::avx2_available()
        && (1..=SHORT_INNER).contains(&k);
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = k;
        false
    }
}

/// One Adagrad step (`rule`: learning rate, weight decay, eps) on a
/// parameter whose gradient is `Uᵀ·V` (`us`: `k` rows of `m`, `vs`: `k`
/// rows of `n`), plus `dense` when given, with `value`, `sum` and `dense`
/// row-major `m × n`. The results equal the product (as the small-product
/// kernel computes it) followed by `Adagrad::update`, bit for bit.
/// Returns `false`, touching nothing, unless [`fits`]`::<A>(k)` and the
/// operands are as described.
pub(super) fn step_from_products<A: Element>(
    us: ArrayView2<'_, A>,
    vs: ArrayView2<'_, A>,
    dense: Option<&[A]>,
    value: &mut [A],
    sum: &mut [A],
    rule: [A; 3],
) -> bool {
    if TypeId::of::<A>() != TypeId::of::<f32>() {
        return false;
    }
    // SAFETY: `A` is `f32` (checked above), so these are the same types.
    let (us, vs, dense, value, sum, rule) = unsafe {
        (
            std::mem::transmute::<ArrayView2<'_, A>, ArrayView2<'_, f32>>(us),
            std::mem::transmute::<ArrayView2<'_, A>, ArrayView2<'_, f32>>(vs),
            dense.map(|d| std::slice::from_raw_parts(d.as_ptr().cast::<f32>(), d.len())),
            std::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<f32>(), value.len()),
            std::slice::from_raw_parts_mut(sum.as_mut_ptr().cast::<f32>(), sum.len()),
            rule.map(|r| r.to_f64_lossless() as f32),
        )
    };
    step_f32(us, vs, dense, value, sum, rule)
}

/// [`step_from_products`] for `f32`.
fn step_f32(
    us: ArrayView2<'_, f32>,
    vs: ArrayView2<'_, f32>,
    dense: Option<&[f32]>,
    value: &mut [f32],
    sum: &mut [f32],
    rule: [f32; 3],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let ((k, m), n) = (us.dim(), vs.ncols());
        let size = m * n;
        let fits = fits::<f32>(k)
            && m > 0
            && n > 0
            && vs.nrows() == k
            && us.is_standard_layout()
            && vs.is_standard_layout()
            && value.len() == size
            && sum.len() == size
            && dense.is_none_or(|d| d.len() == size);
        if fits {
            let operands = Operands {
                a: us.as_ptr(),
                lda: m,
                b: vs.as_ptr(),
                ldb: n,
                c: std::ptr::null_mut(),
                ldc: n,
                m,
                n,
                k,
            };
            let [lr, weight_decay, eps] = rule;
            let rule = AdagradRule {
                lr,
                weight_decay,
                eps,
            };
            // SAFETY: the processor supports AVX2 and FMA, and
            // AVX-512F where `widest` says sixteen lanes; `us` and
            // `vs` are standard-layout `k × m` and `k × n`; `value`,
            // `sum` and `dense` hold `m × n` elements each, the first
            // two unique borrows, so that none overlaps another.
            unsafe {
                adagrad_from_products(
                    operands,
                    dense.map(<[f32]>::as_ptr),
                    value.as_mut_ptr(),
                    sum.as_mut_ptr(),
                    rule,
                    Width::widest(),
                )
            };
            return true;
        }
    }
    let _ = (us, vs, dense, value, sum, rule);
    false
}

#[cfg(target_arch = "x86_64")]
/// The hyperparameters of one Adagrad step, as `Adagrad::update` applies
/// them: `g += weight_decay·p`, `sum += g·g`,
/// `p -= lr·g / (sqrt(sum) + eps)`.
#[derive(Clone, Copy)]
struct AdagradRule {
    lr: f32,
    weight_decay: f32,
    eps: f32,
}

#[cfg(target_arch = "x86_64")]
/// One Adagrad step on a row-major `m × n` parameter whose gradient is
/// `Uᵀ·V`, plus `dense` when the parameter also has a gradient buffer:
/// the same tiles as [`transposed_product`], each finished vector of the
/// gradient applied to `value` and `sum` at once. Every element receives
/// the operations of the product, then of `Adagrad::update`, in their
/// order, so the parameter and its sum are the same bits either way.
///
/// # Safety
/// The processor must support what `width` needs, as for
/// [`transposed_product`]; `at` must describe `U` and `V` as there, with
/// `at.ldc == at.n` (its `c` is not used); `value`, `sum` and, if given,
/// `dense` must each point to `m × n` elements, row-major and contiguous,
/// `value` and `sum` writable and no two of them overlapping.
unsafe fn adagrad_from_products(
    at: Operands,
    dense: Option<*const f32>,
    value: *mut f32,
    sum: *mut f32,
    rule: AdagradRule,
    width: Width,
) {
    let target = AdagradTarget { dense, value, sum };
    // SAFETY: as required of the caller.
    unsafe {
        match width {
            Width::Sixteen => adagrad_avx512(at, target, rule),
            Width::Eight => adagrad_avx2(at, target, rule),
        }
    }
}

/// [`adagrad_from_products`] eight lanes wide.
///
/// # Safety
/// As [`adagrad_from_products`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn adagrad_avx2(at: Operands, target: AdagradTarget, rule: AdagradRule) {
    // SAFETY: as required of the caller.
    unsafe { all_tiles::<__m256, _>(at, &AdagradUpdate::<__m256>::new(target, rule)) }
}

/// [`adagrad_from_products`] sixteen lanes wide.
///
/// # Safety
/// As [`adagrad_from_products`], on a processor with AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn adagrad_avx512(at: Operands, target: AdagradTarget, rule: AdagradRule) {
    // SAFETY: as required of the caller.
    unsafe { all_tiles::<__m512, _>(at, &AdagradUpdate::<__m512>::new(target, rule)) }
}

/// Where an Adagrad step writes: the parameter, its sum of squares, and
/// the gradient it already holds, if any (all `m × n`, row-major).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct AdagradTarget {
    dense: Option<*const f32>,
    value: *mut f32,
    sum: *mut f32,
}

/// Into a parameter and its Adagrad sum (see [`adagrad_from_products`]),
/// with the rule's numbers in every lane.
#[cfg(target_arch = "x86_64")]
struct AdagradUpdate<S> {
    target: AdagradTarget,
    lr: S,
    weight_decay: S,
    eps: S,
}

#[cfg(target_arch = "x86_64")]
impl<S: Vector> AdagradUpdate<S> {
    /// # Safety
    /// As [`Vector`].
    #[inline(always)]
    unsafe fn new(target: AdagradTarget, rule: AdagradRule) -> Self {
        // SAFETY: as required of the caller.
        unsafe {
            AdagradUpdate {
                target,
                lr: S::splat(rule.lr),
                weight_decay: S::splat(rule.weight_decay),
                eps: S::splat(rule.eps),
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl<S: Vector> Finish<S> for AdagradUpdate<S> {
    /// A tile's twelve updates at once, each a square root and a division
    /// (long-latency work for the divider, a vector at a time), fill the
    /// processor's window and keep the next tile's multiply-adds from
    /// starting; six at a time leave room. In the Tree-LSTM's training,
    /// a step on `U_int` is faster with six rows by one vector than by
    /// two, or than three, four or eight rows by one (measurements in
    /// `docs/performance.md`).
    const ONE_VECTOR_WIDE: bool = true;

    /// The next tile's parameter and sum lines: together they are
    /// larger than L2, so they come from L3, and requested a tile ahead
    /// they arrive in time (see `docs/performance.md`).
    #[inline(always)]
    fn tiles_ahead(&self) -> usize {
        1
    }

    #[inline(always)]
    fn request(&self, _at: &Operands, at_element: usize) {
        let target = &self.target;
        // SAFETY: a prefetch never faults, wherever it points.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(target.value.wrapping_add(at_element) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(target.sum.wrapping_add(at_element) as *const i8);
        }
    }

    #[inline(always)]
    unsafe fn finish(&self, at: &Operands, row: usize, col: usize, sum: S, lanes: Lanes<S::Mask>) {
        // SAFETY: the caller's lanes lie inside the `m × n` parameter, its
        // sum and its dense gradient (`ldc == n`).
        unsafe {
            let at_element = row * at.ldc + col;
            let target = &self.target;
            let g = match target.dense {
                Some(dense) => sum.add(S::load(dense.add(at_element), lanes)),
                None => sum,
            };
            let (p, s) = (target.value.add(at_element), target.sum.add(at_element));
            let old = S::load(p, lanes);
            let g = g.add(self.weight_decay.mul(old));
            let squares = S::load(s, lanes).add(g.mul(g));
            squares.store(s, lanes);
            let step = self.lr.mul(g).div(squares.sqrt().add(self.eps));
            old.sub(step).store(p, lanes);
        }
    }
}
