//! `sigmoid` and `tanh` over whole slices, vectorised for `f32`.
//!
//! The C library's `expf` and `tanhf` are scalar calls, and a gated
//! recurrent model spends a tenth of its time in them. For `f32` these
//! loops instead evaluate the functions with polynomials the compiler
//! turns into 16-lane AVX-512 or 8-lane AVX2 code, the same bits either
//! way (see [`simd::vectorized`]): Cody–Waite
//! range reduction and a degree-6 polynomial for `exp` (the classic
//! Cephes `expf` scheme), and for `tanh` an odd polynomial near zero
//! (Cephes `tanhf`) and `1 − 2/(e^{2x} + 1)` elsewhere. Both stay within
//! a few units in the last place of the exact values (tested below).
//! `f64`, used for gradient checks, keeps the C library's functions.

use std::mem::MaybeUninit;

use crate::kernels::simd::vectorized;

/// Elementwise `sigmoid` and `tanh` of a slice: implemented for the
/// [`Element`](crate::Element) types and sealed with them.
pub trait VectorMath: Sized {
    /// `x[i] ← 1 / (1 + e^{-x[i]})`.
    fn sigmoid_in_place(x: &mut [Self]);
    /// `x[i] ← tanh(x[i])`.
    fn tanh_in_place(x: &mut [Self]);
    /// `out[i] ← 1 / (1 + e^{-x[i]})`, for `x` and `out` of one length:
    /// the result of an operation written in one pass, with no copy, into
    /// a buffer that need not be initialised (every element is written).
    ///
    /// # Panics
    /// When the lengths differ.
    fn sigmoid_to(x: &[Self], out: &mut [MaybeUninit<Self>]);
    /// `out[i] ← tanh(x[i])`, for `x` and `out` of one length, as
    /// [`sigmoid_to`](VectorMath::sigmoid_to).
    ///
    /// # Panics
    /// When the lengths differ.
    fn tanh_to(x: &[Self], out: &mut [MaybeUninit<Self>]);
}

/// `f` applied elementwise to a copy of `x`, through the slice function
/// `in_place` when the copy is contiguous.
pub(crate) fn map_with<A: Clone>(
    x: &ndarray::ArrayD<A>,
    in_place: fn(&mut [A]),
    f: impl Fn(A) -> A,
) -> ndarray::ArrayD<A> {
    let mut out = x.to_owned();
    match out.as_slice_mut() {
        Some(values) => in_place(values),
        None => out.mapv_inplace(f),
    }
    out
}

/// The logistic function in `f64`, in the form that cannot overflow.
fn sigmoid_f64(v: f64) -> f64 {
    if v >= 0.0 {
        1.0 / (1.0 + (-v).exp())
    } else {
        let e = v.exp();
        e / (1.0 + e)
    }
}

impl VectorMath for f64 {
    fn sigmoid_in_place(x: &mut [f64]) {
        for o in x {
            *o = sigmoid_f64(*o);
        }
    }

    fn tanh_in_place(x: &mut [f64]) {
        for o in x {
            *o = o.tanh();
        }
    }

    fn sigmoid_to(x: &[f64], out: &mut [MaybeUninit<f64>]) {
        assert_eq!(x.len(), out.len(), "sigmoid_to: lengths differ");
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(sigmoid_f64(v));
        }
    }

    fn tanh_to(x: &[f64], out: &mut [MaybeUninit<f64>]) {
        assert_eq!(x.len(), out.len(), "tanh_to: lengths differ");
        for (o, &v) in out.iter_mut().zip(x) {
            o.write(v.tanh());
        }
    }
}

impl VectorMath for f32 {
    fn sigmoid_in_place(x: &mut [f32]) {
        vectorized(|| {
            for o in x {
                *o = sigmoid(*o);
            }
        })
    }

    fn tanh_in_place(x: &mut [f32]) {
        vectorized(|| {
            for o in x {
                *o = tanh(*o);
            }
        })
    }

    fn sigmoid_to(x: &[f32], out: &mut [MaybeUninit<f32>]) {
        assert_eq!(x.len(), out.len(), "sigmoid_to: lengths differ");
        vectorized(|| {
            for (o, &v) in out.iter_mut().zip(x) {
                o.write(sigmoid(v));
            }
        })
    }

    fn tanh_to(x: &[f32], out: &mut [MaybeUninit<f32>]) {
        assert_eq!(x.len(), out.len(), "tanh_to: lengths differ");
        vectorized(|| {
            for (o, &v) in out.iter_mut().zip(x) {
                o.write(tanh(v));
            }
        })
    }
}

/// Beyond this `e^x` overflows `f32` (`ln f32::MAX`).
const EXP_HIGH: f32 = 88.722_84;
/// Below this `e^x` is under half the smallest subnormal `f32`.
const EXP_LOW: f32 = -103.972_08;

/// `e^x` for `f32`, branch-free so that a loop of it vectorises.
/// NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that `n·LN2_HIGH` is exact.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let clamped = x.clamp(EXP_LOW, EXP_HIGH);
    let n = (clamped * LOG2_E + 0.5).floor();
    let r = clamped - n * LN2_HIGH - n * LN2_LOW;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5e-1;
    let mantissa = p * r2 + r + 1.0;
    // 2^n through the exponent bits: n is in [-150, 128], so it is split
    // in two factors that are normal numbers (the product may round to a
    // subnormal, as the exact value does).
    let half = (n * 0.5).floor();
    let scale = |k: f32| f32::from_bits(exponent_bits(k));
    let result = mantissa * scale(half) * scale(n - half);
    if x > EXP_HIGH {
        f32::INFINITY
    } else if x < EXP_LOW {
        0.0
    } else if x.is_nan() {
        x
    } else {
        result
    }
}

/// The bits of `2^k` for an integer-valued `k` in `[-126, 127]`.
///
/// Not `k as i32`: that conversion saturates and maps NaN to zero, which
/// the compiler does lane by lane with scalar compares, making the whole
/// `exp` loop about ten times slower. Adding `1.5·2^23` instead puts `k`
/// in the low bits of the sum's mantissa (its unit in the last place is
/// 1 there), from where integer arithmetic, which vectorises, moves it
/// into the exponent field. For NaN the bits are garbage, and `exp`
/// returns the NaN itself.
#[inline(always)]
fn exponent_bits(k: f32) -> u32 {
    const SHIFTER: f32 = 12_582_912.0; // 1.5·2^23
    let k = (k + SHIFTER).to_bits().wrapping_sub(SHIFTER.to_bits());
    k.wrapping_add(127) << 23
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    // tanh is odd: compute it for |x| and give it the sign of x (which
    // also keeps tanh(-0) = -0).
    let a = x.abs();
    let small = {
        let z = a * a;
        let p = (((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1)
            * z
            - 3.333_328e-1;
        a + a * z * p
    };
    let large = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    (if a < 0.625 { small } else { large }).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values over the whole useful range, dense near zero, plus the
    /// edges of `exp`.
    fn samples() -> Vec<f32> {
        let mut xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 1e-3).collect();
        xs.extend((-300..=300).map(|i| i as f32 * 0.5));
        xs.extend([
            1e-30, -1e-30, 1e-7, -1e-7, 0.624_999, 0.625, 87.0, -87.0, 88.5, -88.5,
        ]);
        xs.extend([88.72, 88.73, -100.0, -103.9, -104.0, 1e3, -1e3]);
        xs.extend([0.0, -0.0, f32::MIN_POSITIVE, f32::MAX, f32::MIN]);
        xs
    }

    /// Worst error in units of the exact value's last place (`f32::EPSILON`
    /// times its magnitude, floored at the smallest normal).
    fn worst_ulps(f: impl Fn(&mut [f32]), exact: impl Fn(f64) -> f64) -> (f64, f32) {
        let xs = samples();
        let mut out = xs.clone();
        f(&mut out);
        let mut worst = (0.0, 0.0);
        for (&x, &y) in xs.iter().zip(&out) {
            let want = exact(f64::from(x));
            let ulp = (want.abs() * f64::from(f32::EPSILON)).max(f64::from(f32::MIN_POSITIVE));
            let error = (f64::from(y) - want).abs() / ulp;
            if error > worst.0 {
                worst = (error, x);
            }
        }
        worst
    }

    #[test]
    fn sigmoid_is_within_a_few_ulps() {
        let (ulps, at) = worst_ulps(f32::sigmoid_in_place, |x| 1.0 / (1.0 + (-x).exp()));
        assert!(ulps < 4.0, "{ulps} ulps at {at}");
    }

    #[test]
    fn tanh_is_within_a_few_ulps() {
        let (ulps, at) = worst_ulps(f32::tanh_in_place, f64::tanh);
        assert!(ulps < 4.0, "{ulps} ulps at {at}");
    }

    #[test]
    fn exp_is_within_a_few_ulps_and_saturates() {
        let (ulps, at) = worst_ulps(
            |xs| {
                for x in xs {
                    *x = exp(*x).min(f32::MAX);
                }
            },
            |x| x.exp().min(f64::from(f32::MAX)),
        );
        assert!(ulps < 4.0, "{ulps} ulps at {at}");
        assert_eq!(exp(-1e3), 0.0);
        assert_eq!(exp(0.0), 1.0);
    }

    /// `*_to` gives the same bits as `*_in_place`, over whole slices and
    /// over short pieces (the vector loop's remainders).
    #[test]
    fn every_path_gives_the_same_bits() {
        let xs = samples();
        for (to, in_place) in [
            (
                f32::sigmoid_to as fn(&[f32], &mut [MaybeUninit<f32>]),
                f32::sigmoid_in_place as fn(&mut [f32]),
            ),
            (f32::tanh_to, f32::tanh_in_place),
        ] {
            let mut whole = xs.clone();
            in_place(&mut whole);
            let mut written = vec![MaybeUninit::new(f32::NAN); xs.len()];
            to(&xs, &mut written);
            let mut short = vec![MaybeUninit::new(f32::NAN); xs.len()];
            for (x, o) in xs.chunks(7).zip(short.chunks_mut(7)) {
                to(x, o);
            }
            for i in 0..xs.len() {
                // SAFETY: initialised with NaN, and overwritten.
                let (written, short) =
                    unsafe { (written[i].assume_init(), short[i].assume_init()) };
                assert_eq!(whole[i].to_bits(), written.to_bits(), "at {}", xs[i]);
                assert_eq!(whole[i].to_bits(), short.to_bits(), "at {}", xs[i]);
            }
        }
    }

    /// Every instruction set the loops are compiled for gives the same
    /// bits (baseline, AVX2, AVX-512, as the processor has them).
    #[test]
    fn every_instruction_set_gives_the_same_bits() {
        let xs = samples();
        for function in [f32::sigmoid_in_place as fn(&mut [f32]), f32::tanh_in_place] {
            let mut baseline = xs.clone();
            crate::kernels::simd::Level::each(|level| {
                let mut out = xs.clone();
                function(&mut out);
                if matches!(level, crate::kernels::simd::Level::Baseline) {
                    baseline = out;
                    return;
                }
                for ((x, a), b) in xs.iter().zip(&baseline).zip(&out) {
                    assert_eq!(a.to_bits(), b.to_bits(), "{level:?} at {x}");
                }
            });
        }
    }

    #[test]
    #[should_panic(expected = "tanh_to: lengths differ")]
    fn an_output_of_another_length_panics() {
        let mut out = vec![MaybeUninit::new(0.0f32); 3];
        f32::tanh_to(&[1.0, 2.0], &mut out);
    }

    #[test]
    fn exponent_bits_are_powers_of_two() {
        for k in -126..=127 {
            assert_eq!(
                f32::from_bits(exponent_bits(k as f32)),
                2f32.powi(k),
                "2^{k}"
            );
        }
    }

    #[test]
    fn special_values() {
        let xs = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0];
        let mut out = xs;
        f32::sigmoid_in_place(&mut out);
        assert_eq!(&out[..2], &[1.0, 0.0]);
        assert!(out[2].is_nan());
        assert_eq!(&out[3..], &[0.5, 0.5]);
        let mut out = xs;
        f32::tanh_in_place(&mut out);
        assert_eq!(&out[..2], &[1.0, -1.0]);
        assert!(out[2].is_nan());
        assert_eq!(out[3].to_bits(), 0.0f32.to_bits());
        assert_eq!(out[4].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn f64_uses_the_c_library() {
        let mut out = [0.5f64, -2.0];
        f64::tanh_in_place(&mut out);
        assert_eq!(out, [0.5f64.tanh(), (-2.0f64).tanh()]);
        let mut out = [-800.0f64, 800.0];
        f64::sigmoid_in_place(&mut out);
        assert_eq!(out, [0.0, 1.0]);
    }
}
