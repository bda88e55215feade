//! Max pooling over 2×2 windows side by side (stride 2, no padding), the
//! pooling of most convolutional networks, written so that the compiler
//! vectorises it: every window is four loads and three selects, with no
//! branch and no read of an output it wrote (the general rule in
//! `ops/pool.rs` keeps a running maximum per window and reads it back).
//! It chooses as the general rule does: the largest of the window's four
//! values, ties to the first in row-major order within the window, and a
//! NaN (the first) over any number.

use crate::element::Element;
use crate::kernels::simd::vectorized;

/// Pools each plane (`height × width`, row-major, one after another in
/// `input`) into `out` (`height / 2 × width / 2` per plane; a last odd row
/// or column is left out, as no window covers it whole), and writes into
/// `argmax` where each maximum lies within its plane.
///
/// # Panics
/// When `input` is not whole planes, or `out` and `argmax` do not have one
/// element per window.
pub(crate) fn max_pool_2x2<A: Element>(
    input: &[A],
    height: usize,
    width: usize,
    out: &mut [A],
    argmax: &mut [u32],
) {
    let plane = height * width;
    let (out_h, out_w) = (height / 2, width / 2);
    let windows = out_h * out_w;
    assert!(
        plane > 0 && input.len().is_multiple_of(plane),
        "max_pool_2x2: {} values are not planes of {height} × {width}",
        input.len()
    );
    let planes = input.len() / plane;
    assert!(
        out.len() == planes * windows && argmax.len() == planes * windows,
        "max_pool_2x2: {} planes need {} outputs, got {} and {} places",
        planes,
        planes * windows,
        out.len(),
        argmax.len()
    );
    if windows == 0 {
        return;
    }
    // Inlined into the function compiled for the wider vectors, or it
    // would be compiled once, for the baseline's.
    vectorized(
        #[inline(always)]
        || {
            for ((source, maxes), places) in input
                .chunks_exact(plane)
                .zip(out.chunks_exact_mut(windows))
                .zip(argmax.chunks_exact_mut(windows))
            {
                for (row, (maxes, places)) in maxes
                    .chunks_exact_mut(out_w)
                    .zip(places.chunks_exact_mut(out_w))
                    .enumerate()
                {
                    let top = 2 * row * width;
                    window_row(
                        &source[top..top + 2 * out_w],
                        &source[top + width..top + width + 2 * out_w],
                        top as u32,
                        width as u32,
                        maxes,
                        places,
                    );
                }
            }
        },
    )
}

/// One row of windows: the upper and lower input rows (`2·maxes.len()`
/// values each), the position of the upper row's first value in its plane
/// (`top`), and the plane's width.
///
/// Windows go in groups of eight (a vector of `f32`s at AVX2's width), or
/// four in a row of fewer than eight (MNIST's second pooling has four), the
/// last group overlapping the one before rather than leaving a few windows
/// to a loop of their own: such a loop runs as scalar code, whose float
/// selects the compiler makes branches, mispredicted about half the time on
/// real data. A window computed twice gets the same result twice.
#[inline(always)]
fn window_row<A: Element>(
    upper: &[A],
    lower: &[A],
    top: u32,
    width: u32,
    maxes: &mut [A],
    places: &mut [u32],
) {
    let count = maxes.len();
    if count >= 8 {
        window_groups::<A, 8>(upper, lower, top, width, maxes, places);
    } else if count >= 4 {
        window_groups::<A, 4>(upper, lower, top, width, maxes, places);
    } else {
        // Too few windows for a group: padded into one.
        let mut group = ([A::zero(); 8], [A::zero(); 8]);
        group.0[..upper.len()].copy_from_slice(upper);
        group.1[..lower.len()].copy_from_slice(lower);
        let mut out = ([A::zero(); 4], [0u32; 4]);
        windows(&group.0, &group.1, top, width, &mut out.0, &mut out.1);
        maxes.copy_from_slice(&out.0[..count]);
        places.copy_from_slice(&out.1[..count]);
    }
}

/// [`window_row`] in groups of `N` windows (of which the row has at least
/// `N`), the last group ending at the row's end.
#[inline(always)]
fn window_groups<A: Element, const N: usize>(
    upper: &[A],
    lower: &[A],
    top: u32,
    width: u32,
    maxes: &mut [A],
    places: &mut [u32],
) {
    let count = maxes.len();
    let mut next = 0;
    while next < count {
        let start = next.min(count - N);
        let windows_at = start..start + N;
        let inputs = 2 * start..2 * (start + N);
        windows::<A, N>(
            &upper[inputs.clone()],
            &lower[inputs],
            top + 2 * start as u32,
            width,
            (&mut maxes[windows_at.clone()])
                .try_into()
                .expect("a group of windows"),
            (&mut places[windows_at])
                .try_into()
                .expect("a group of windows"),
        );
        next += N;
    }
}

/// `N` windows side by side: their upper and lower rows (`2·N` values
/// each; any more are not read), and the position of the first window's
/// first value in its plane.
#[inline(always)]
fn windows<A: Element, const N: usize>(
    upper: &[A],
    lower: &[A],
    first: u32,
    width: u32,
    maxes: &mut [A; N],
    places: &mut [u32; N],
) {
    let (upper, lower) = (&upper[..2 * N], &lower[..2 * N]);
    for o in 0..N {
        let at = first + 2 * o as u32;
        let (mut best, mut place) = (upper[2 * o], at);
        for (v, i) in [
            (upper[2 * o + 1], at + 1),
            (lower[2 * o], at + width),
            (lower[2 * o + 1], at + width + 1),
        ] {
            // `|` and `&`, not `||` and `&&`: selects, not branches.
            let take = (v > best) | (v.is_nan() & !best.is_nan());
            best = if take { v } else { best };
            place = if take { i } else { place };
        }
        maxes[o] = best;
        places[o] = place;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule the kernel follows, window by window.
    fn by_definition(input: &[f64], height: usize, width: usize) -> (Vec<f64>, Vec<u32>) {
        let (mut out, mut argmax) = (Vec::new(), Vec::new());
        for plane in input.chunks_exact(height * width) {
            for row in 0..height / 2 {
                for column in 0..width / 2 {
                    let mut best: Option<(f64, usize)> = None;
                    for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                        let at = (2 * row + i) * width + 2 * column + j;
                        let v = plane[at];
                        let better = match best {
                            None => true,
                            Some((b, _)) => v > b || (v.is_nan() && !b.is_nan()),
                        };
                        if better {
                            best = Some((v, at));
                        }
                    }
                    let (v, at) = best.unwrap();
                    out.push(v);
                    argmax.push(at as u32);
                }
            }
        }
        (out, argmax)
    }

    #[test]
    fn matches_the_rule_with_ties_nans_and_odd_sizes_at_every_width() {
        let special = [0.0, 1.0, 1.0, -0.0, f64::NAN, f64::NEG_INFINITY, 2.0];
        crate::kernels::each_kernel_width(|level| {
            for (planes, height, width) in [
                (3, 4, 6),
                (2, 5, 7),
                (1, 24, 24),
                (4, 8, 34),
                (2, 6, 11),
                (1, 1, 5),
                (2, 3, 1),
            ] {
                let n = planes * height * width;
                let mut state = 12345u64 + n as u64;
                let input: Vec<f64> = (0..n)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        special[(state >> 40) as usize % special.len()]
                    })
                    .collect();
                let windows = planes * (height / 2) * (width / 2);
                let (want, want_at) = by_definition(&input, height, width);
                let mut out = vec![7.0; windows];
                let mut at = vec![u32::MAX; windows];
                max_pool_2x2(&input, height, width, &mut out, &mut at);
                assert_eq!(at, want_at, "{level} {planes}×{height}×{width}");
                for (got, want) in out.iter().zip(&want) {
                    assert!(got.to_bits() == want.to_bits(), "{level}: {got} {want}");
                }
                let input32: Vec<f32> = input.iter().map(|&v| v as f32).collect();
                let mut out32 = vec![7.0f32; windows];
                max_pool_2x2(&input32, height, width, &mut out32, &mut at);
                assert_eq!(at, want_at, "{level} f32 {planes}×{height}×{width}");
            }
        });
    }
}
