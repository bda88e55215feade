//! Pooling over the two spatial axes of a batch of images: the maximum
//! (`max_pool2d`) or the mean (`avg_pool2d`) of each window.
//!
//! Each plane (one channel of one image) is pooled on its own. The
//! maximum keeps, for every output, the position in its plane of the
//! input it came from, so that its backward step is one scatter.

use ndarray::{ArrayD, IxDyn};

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::kernels::pool::max_pool_2x2;
use crate::memory;
use crate::ops::conv::{accumulate_flat, row_major, standard};
use crate::var::Var;

/// The windows of a 2-D pooling: their size (`kernel`), the step between
/// them (`stride`) and the implicit padding on each side (`padding`), each
/// as (height, width). [`Pool2dOptions::new`] makes the usual
/// non-overlapping windows (stride equal to the kernel, no padding).
///
/// ```
/// use cps_runtime::ops::pool::Pool2dOptions;
///
/// let pool = Pool2dOptions::new(2);
/// assert_eq!((pool.kernel, pool.stride, pool.padding), ([2, 2], [2, 2], [0, 0]));
/// let overlapping = Pool2dOptions::new(3).with_stride(2).with_padding(1);
/// assert_eq!(overlapping.stride, [2, 2]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2dOptions {
    /// The window's size, (height, width); at least 1.
    pub kernel: [usize; 2],
    /// The step between windows, (height, width); at least 1.
    pub stride: [usize; 2],
    /// The padding before and after each spatial axis, (height, width):
    /// at most half the kernel. Max pooling never picks it; average
    /// pooling counts it as zeros.
    pub padding: [usize; 2],
}

impl Pool2dOptions {
    /// Square windows of `kernel`, side by side: stride `kernel`, no
    /// padding.
    pub fn new(kernel: usize) -> Self {
        Pool2dOptions {
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
        }
    }

    /// The same windows with `stride` on both axes.
    pub fn with_stride(self, stride: usize) -> Self {
        Pool2dOptions {
            stride: [stride, stride],
            ..self
        }
    }

    /// The same windows with `padding` on both axes.
    pub fn with_padding(self, padding: usize) -> Self {
        Pool2dOptions {
            padding: [padding, padding],
            ..self
        }
    }
}

/// The argmax of a window not yet given any input.
const UNSET: u32 = u32::MAX;

/// Which windows along the width one kernel column reaches in the input
/// (`low..high`), and the input column it reads for window `low`.
#[derive(Clone, Copy, Debug)]
struct Tap {
    low: usize,
    high: usize,
    start: usize,
}

/// The sizes of a pooling, checked: `planes` planes of `height × width`,
/// pooled into `out`.
#[derive(Clone, Copy, Debug)]
struct Windows {
    planes: usize,
    height: usize,
    width: usize,
    options: Pool2dOptions,
    out: [usize; 2],
}

impl Windows {
    /// Checks `shape` ((N, C, H, W) or (C, H, W)) against `options`.
    #[track_caller]
    fn of(op: &str, shape: &[usize], options: Pool2dOptions) -> (Self, Vec<usize>) {
        let Pool2dOptions {
            kernel,
            stride,
            padding,
        } = options;
        let rank = shape.len();
        if !(3..=4).contains(&rank) {
            panic!("{op}: expected an input (N, C, H, W) or (C, H, W), got shape {shape:?}");
        }
        let (height, width) = (shape[rank - 2], shape[rank - 1]);
        assert!(
            height >= 1 && width >= 1,
            "{op}: the images are empty (shape {shape:?})"
        );
        assert!(
            kernel.iter().all(|&k| k >= 1) && stride.iter().all(|&s| s >= 1),
            "{op}: the kernel and the stride must be at least 1, got kernel {kernel:?} and stride \
             {stride:?}"
        );
        assert!(
            padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2,
            "{op}: the padding must be at most half the kernel, got padding {padding:?} for \
             kernel {kernel:?}"
        );
        let size = |axis: usize, len: usize| {
            (len + 2 * padding[axis])
                .checked_sub(kernel[axis])
                .map(|room| room / stride[axis] + 1)
                .unwrap_or_else(|| {
                    panic!(
                        "{op}: the kernel {kernel:?} is larger than the input (shape {shape:?}) \
                         padded by {padding:?}"
                    )
                })
        };
        let out = [size(0, height), size(1, width)];
        let planes = shape[..rank - 2].iter().product();
        let mut out_shape = shape[..rank - 2].to_vec();
        out_shape.extend(out);
        (
            Windows {
                planes,
                height,
                width,
                options,
                out,
            },
            out_shape,
        )
    }

    /// Whether the windows are 2×2 and side by side (stride 2, no
    /// padding): the pooling of most convolutional networks, which
    /// [`max_pool_2x2`] computes with the same choices as the general
    /// rule, vectorised (`bench/conv.sh`, the pooling layers of the MNIST
    /// network).
    fn side_by_side_2x2(&self) -> bool {
        self.options
            == Pool2dOptions {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0, 0],
            }
    }

    /// For each kernel column `j`, the windows `low..high` (along the
    /// width) whose column `j` is in the input, and the input column of
    /// window `low`'s.
    fn taps(&self) -> Vec<Tap> {
        let (kernel, stride, padding) = (
            self.options.kernel[1],
            self.options.stride[1],
            self.options.padding[1],
        );
        (0..kernel)
            .map(|j| {
                // Window o's column j is o·stride + j - padding.
                let inside = |o: usize| {
                    let at = (o * stride + j) as isize - padding as isize;
                    at >= 0 && (at as usize) < self.width
                };
                let low = (0..self.out[1]).find(|&o| inside(o)).unwrap_or(self.out[1]);
                let high = (low..self.out[1])
                    .find(|&o| !inside(o))
                    .unwrap_or(self.out[1]);
                let start = if low < high {
                    low * stride + j - padding
                } else {
                    0
                };
                Tap { low, high, start }
            })
            .collect()
    }

    /// The input rows (or columns, `axis` 1) of every window along `axis`.
    fn spans(&self, axis: usize) -> Vec<(usize, usize)> {
        (0..self.out[axis]).map(|o| self.span(axis, o)).collect()
    }

    /// The input rows (and columns, `axis` 1) window `o` covers, clipped
    /// to the input: `o·stride - padding` up to `kernel` further.
    fn span(&self, axis: usize, o: usize) -> (usize, usize) {
        let len = [self.height, self.width][axis];
        let start = (o * self.options.stride[axis]) as isize - self.options.padding[axis] as isize;
        let end = start + self.options.kernel[axis] as isize;
        (start.max(0) as usize, (end.max(0) as usize).min(len))
    }
}

impl<A: Element> Var<A> {
    /// Max pooling over the last two axes of (N, C, H, W) or (C, H, W):
    /// each output is the largest input in its window, and its gradient
    /// goes to that input alone. The result is (N, C, H', W') with `H' =
    /// (H + 2·padding - kernel) / stride + 1` (likewise `W'`).
    ///
    /// Ties: when several inputs of a window share the maximum, the first
    /// in row-major order within the window (the topmost, then the
    /// leftmost) is the maximum and takes the whole gradient. A NaN in a
    /// window is its maximum (the first NaN, likewise). Padding is never
    /// picked.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::pool::Pool2dOptions;
    /// use ndarray::array;
    ///
    /// let x = Param::new(array![[[[1.0f64, 3.0], [3.0, 2.0]]]]);
    /// let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
    ///     x.max_pool2d(Pool2dOptions::new(2)).bind(|m| m.sum().bind(|s| k(s)))
    /// });
    /// assert_eq!(loss.backward(), 3.0);
    /// // The tie goes to the first 3 in row-major order.
    /// assert_eq!(x.grad(), array![[[[0.0, 1.0], [0.0, 0.0]]]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the input is not 3-D or 4-D, when a kernel size or stride is
    /// 0, when the padding exceeds half the kernel, or when the kernel is
    /// larger than the padded input.
    #[track_caller]
    pub fn max_pool2d(&self, options: Pool2dOptions) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let (w, out_shape) = Windows::of("max_pool2d", self.shape(), options);
        let plane = w.height * w.width;
        assert!(
            u32::try_from(plane).is_ok_and(|p| p < UNSET),
            "max_pool2d: a plane of {} × {} is too large (shape {:?})",
            w.height,
            w.width,
            self.shape()
        );
        let input = row_major(self.array());
        let outputs = w.out[0] * w.out[1];
        let mut value = memory::scratch(IxDyn(&out_shape));
        let out = value.as_slice_mut().expect("a new buffer is standard");
        // Where each output came from, within its plane.
        let mut argmax = vec![0u32; w.planes * outputs];
        if w.side_by_side_2x2() {
            max_pool_2x2(&input, w.height, w.width, out, &mut argmax);
        } else {
            max_by_rows(&w, &input, out, &mut argmax);
        }
        let x = self.clone();
        Pending::new(
            "max_pool2d",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let grad = standard(grad);
                let grads = grad.as_slice().expect("standard layout");
                accumulate_flat(&x, |gx| {
                    for ((gx, grads), argmax) in gx
                        .chunks_exact_mut(plane)
                        .zip(grads.chunks_exact(outputs))
                        .zip(argmax.chunks_exact(outputs))
                    {
                        for (&g, &at) in grads.iter().zip(argmax) {
                            gx[at as usize] += g;
                        }
                    }
                });
                memory::recycle(grad);
            },
        )
    }

    /// Average pooling over the last two axes of (N, C, H, W) or (C, H,
    /// W): each output is the sum of its window divided by the window's
    /// size `kh·kw`, padding counted as zeros (PyTorch's default,
    /// `count_include_pad`). The result's shape is as for
    /// [`max_pool2d`](Var::max_pool2d); each input's gradient is the sum
    /// of its windows' gradients over `kh·kw`.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::pool::Pool2dOptions;
    /// use ndarray::array;
    ///
    /// let x = Var::constant(array![[[[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]]]]);
    /// let y = x.avg_pool2d(Pool2dOptions::new(2).with_stride(1));
    /// assert_eq!(y.array(), &array![[[[3.0, 4.0]]]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// As [`max_pool2d`](Var::max_pool2d).
    #[track_caller]
    pub fn avg_pool2d(&self, options: Pool2dOptions) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let (w, out_shape) = Windows::of("avg_pool2d", self.shape(), options);
        let plane = w.height * w.width;
        let outputs = w.out[0] * w.out[1];
        let scale = A::from_usize(options.kernel[0] * options.kernel[1])
            .expect("a window's size fits a float")
            .recip();
        let input = row_major(self.array());
        let mut value = memory::scratch(IxDyn(&out_shape));
        let out = value.as_slice_mut().expect("a new buffer is standard");
        let (rows, columns) = (w.spans(0), w.spans(1));
        for (source, out) in input.chunks_exact(plane).zip(out.chunks_exact_mut(outputs)) {
            let mut o = 0;
            for &(top, bottom) in &rows {
                for &(left, right) in &columns {
                    let mut total = A::zero();
                    for row in top..bottom {
                        for &v in &source[row * w.width + left..row * w.width + right] {
                            total += v;
                        }
                    }
                    out[o] = total * scale;
                    o += 1;
                }
            }
        }
        let x = self.clone();
        Pending::new(
            "avg_pool2d",
            value,
            self.requires_grad(),
            move |_: &ArrayD<A>, grad: ArrayD<A>| {
                let grad = standard(grad);
                let grads = grad.as_slice().expect("standard layout");
                accumulate_flat(&x, |gx| {
                    for (gx, grads) in gx.chunks_exact_mut(plane).zip(grads.chunks_exact(outputs)) {
                        let mut o = 0;
                        for &(top, bottom) in &rows {
                            for &(left, right) in &columns {
                                let g = grads[o] * scale;
                                for row in top..bottom {
                                    for v in &mut gx[row * w.width + left..row * w.width + right] {
                                        *v += g;
                                    }
                                }
                                o += 1;
                            }
                        }
                    }
                });
                memory::recycle(grad);
            },
        )
    }
}

/// Max pooling by the rule of [`Var::max_pool2d`], for any windows: into
/// `out` the maximum of each window of each plane of `input`, into
/// `argmax` where it lies within its plane.
fn max_by_rows<A: Element>(w: &Windows, input: &[A], out: &mut [A], argmax: &mut [u32]) {
    let plane = w.height * w.width;
    let outputs = w.out[0] * w.out[1];
    let rows = w.spans(0);
    let taps = w.taps();
    let out_w = w.out[1];
    for ((source, out), argmax) in input
        .chunks_exact(plane)
        .zip(out.chunks_exact_mut(outputs))
        .zip(argmax.chunks_exact_mut(outputs))
    {
        for ((&(top, bottom), maxes), bests) in rows
            .iter()
            .zip(out.chunks_exact_mut(out_w))
            .zip(argmax.chunks_exact_mut(out_w))
        {
            // A row of windows at once, tap by tap in row-major order
            // within the window: the outputs are independent lanes,
            // so each comparison is a select, not a branch (on real
            // data the winner is unpredictable, and a mispredicted
            // branch per element cost more than all the rest).
            maxes.fill(A::neg_infinity());
            bests.fill(UNSET);
            let plane_values = source;
            for row in top..bottom {
                for tap in &taps {
                    let start = row * w.width + tap.start;
                    let source = source[start..].iter().step_by(w.options.stride[1]);
                    let lanes = maxes[tap.low..tap.high]
                        .iter_mut()
                        .zip(&mut bests[tap.low..tap.high]);
                    for ((max, best), (at, &v)) in
                        lanes.zip((start as u32..).step_by(w.options.stride[1]).zip(source))
                    {
                        // `|` and `&`, not `||` and `&&`: no branches.
                        let take = (*best == UNSET) | (v > *max) | (v.is_nan() & !max.is_nan());
                        let mask = 0u32.wrapping_sub(u32::from(take));
                        *best = (at & mask) | (*best & !mask);
                        // Read back by index: a select of floats
                        // is compiled to a branch.
                        *max = plane_values[*best as usize];
                    }
                }
            }
        }
    }
}
