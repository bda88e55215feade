//! Convolutions (`conv1d`, `conv2d`) on the matrix product.
//!
//! A convolution of one image is a matrix product once the image is
//! unfolded ("im2col"): each column of the unfolded matrix holds the
//! input values one output position sees, one row per (input channel,
//! kernel row, kernel column), so that the output's channels are the
//! weight (`out × in·kh·kw`) times that matrix (`in·kh·kw × positions`),
//! written straight into the image's output in NCHW order. The backward
//! step is two more products per image: the weight gradient is the output
//! gradient times the unfolded input transposed (summed over the batch),
//! and the input gradient is the weight transposed times the output
//! gradient, folded back ("col2im": each column's values added to the
//! input positions they came from). The unfolded matrix of one image at a
//! time is kept in a buffer from the pool (small enough to stay in cache
//! while its product runs) and recomputed in the backward step rather
//! than kept for the whole batch.
//!
//! A 1-D convolution is a 2-D one over images of height 1.

use std::borrow::Cow;

use ndarray::{ArrayD, ArrayView2, ArrayViewMut2, IxDyn, ShapeBuilder};
use smallvec::SmallVec;

use crate::computation::{BackwardStep, Pending};
use crate::element::Element;
use crate::execution::products::gemm;
use crate::flat::slice;
use crate::memory;
use crate::ops::shape_mismatch;
use crate::var::Var;

/// How a 2-D convolution moves over its input: the step between output
/// positions (`stride`), the zeros added on each side (`padding`), the
/// spacing of the kernel's taps (`dilation`) and the number of channel
/// groups (`groups`: input and output channels split into that many
/// groups, each output group seeing only its input group). Each pair is
/// (height, width). The default is PyTorch's: stride 1, no padding, no
/// dilation, one group.
///
/// ```
/// use cps_runtime::ops::conv::Conv2dOptions;
///
/// let same = Conv2dOptions::default().with_padding(1);
/// assert_eq!(same.padding, [1, 1]);
/// assert_eq!(same.stride, [1, 1]);
/// let strided = Conv2dOptions { stride: [2, 1], ..Conv2dOptions::default() };
/// assert_eq!(strided.groups, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// The step between output positions, (height, width); at least 1.
    pub stride: [usize; 2],
    /// The zeros added before and after each spatial axis, (height, width).
    pub padding: [usize; 2],
    /// The spacing of the kernel's taps, (height, width); at least 1.
    pub dilation: [usize; 2],
    /// The number of channel groups; it divides both channel counts.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// The same options with `stride` on both axes.
    pub fn with_stride(self, stride: usize) -> Self {
        Conv2dOptions {
            stride: [stride, stride],
            ..self
        }
    }

    /// The same options with `padding` on both axes.
    pub fn with_padding(self, padding: usize) -> Self {
        Conv2dOptions {
            padding: [padding, padding],
            ..self
        }
    }

    /// The same options with `dilation` on both axes.
    pub fn with_dilation(self, dilation: usize) -> Self {
        Conv2dOptions {
            dilation: [dilation, dilation],
            ..self
        }
    }

    /// The same options with `groups` channel groups.
    pub fn with_groups(self, groups: usize) -> Self {
        Conv2dOptions { groups, ..self }
    }
}

/// How a 1-D convolution moves over its input: as [`Conv2dOptions`], for
/// one spatial axis. The default is stride 1, no padding, no dilation,
/// one group.
///
/// ```
/// use cps_runtime::ops::conv::Conv1dOptions;
///
/// let options = Conv1dOptions { padding: 2, dilation: 2, ..Conv1dOptions::default() };
/// assert_eq!(options.stride, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dOptions {
    /// The step between output positions; at least 1.
    pub stride: usize,
    /// The zeros added at each end.
    pub padding: usize,
    /// The spacing of the kernel's taps; at least 1.
    pub dilation: usize,
    /// The number of channel groups; it divides both channel counts.
    pub groups: usize,
}

impl Default for Conv1dOptions {
    fn default() -> Self {
        Conv1dOptions {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
}

/// The sizes of a 2-D convolution, checked: a batch of `batch` images of
/// `channels × height × width`, `filters` output channels, a kernel of
/// `kernel`, and the output's spatial size `out`.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    channels: usize,
    height: usize,
    width: usize,
    filters: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
    out: [usize; 2],
}

impl Geometry {
    /// The kernel's taps along `axis` (0: height, 1: width), with the
    /// output positions each reads inside the input (see [`taps`]).
    fn taps(&self, axis: usize) -> SmallVec<[Tap; 8]> {
        let (size, count) = match axis {
            0 => (self.height, self.out[0]),
            _ => (self.width, self.out[1]),
        };
        taps(
            self.kernel[axis],
            self.stride[axis],
            self.padding[axis],
            self.dilation[axis],
            size,
            count,
        )
    }

    /// Input channels per group.
    fn group_channels(&self) -> usize {
        self.channels / self.groups
    }

    /// Output channels per group.
    fn group_filters(&self) -> usize {
        self.filters / self.groups
    }

    /// The rows of an unfolded image (of one group): the inner dimension
    /// of the products.
    fn patch(&self) -> usize {
        self.group_channels() * self.kernel[0] * self.kernel[1]
    }

    /// The output positions of one image: the columns of an unfolded one.
    fn positions(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// One input channel's elements.
    fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Whether the unfolded image is the image itself (a 1×1 kernel at
    /// stride 1 without padding): then nothing is copied.
    fn unfolds_to_itself(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Whether the convolution runs on row-unfolded images (see
    /// [`unfold_rows`]): at stride 1 along the height, except where the
    /// image is its own unfolding.
    fn unfolds_by_rows(&self) -> bool {
        self.stride[0] == 1 && !self.unfolds_to_itself()
    }

    /// The rows of a row-unfolded image (of one group): one per (input
    /// channel, kernel column), the inner dimension of its products.
    fn row_patch(&self) -> usize {
        self.group_channels() * self.kernel[1]
    }

    /// The columns of a row-unfolded image: one per (padded input row,
    /// output column).
    fn row_span(&self) -> usize {
        (self.height + 2 * self.padding[0]) * self.out[1]
    }

    /// The range of the input (channels of group `group` of image `n`).
    fn input_range(&self, n: usize, group: usize) -> std::ops::Range<usize> {
        let start = (n * self.channels + group * self.group_channels()) * self.plane();
        start..start + self.group_channels() * self.plane()
    }

    /// The range of the output (channels of group `group` of image `n`).
    fn output_range(&self, n: usize, group: usize) -> std::ops::Range<usize> {
        let start = (n * self.filters + group * self.group_filters()) * self.positions();
        start..start + self.group_filters() * self.positions()
    }

    /// The range of the weight (its rows of group `group`), seen as a
    /// `filters × patch` matrix.
    fn weight_range(&self, group: usize) -> std::ops::Range<usize> {
        let start = group * self.group_filters() * self.patch();
        start..start + self.group_filters() * self.patch()
    }
}

/// The output size along one axis,
/// `(size + 2·padding - dilation·(kernel - 1) - 1) / stride + 1`, or
/// `None` when the dilated kernel is larger than the padded input.
fn output_size(
    size: usize,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Option<usize> {
    let span = dilation * (kernel - 1) + 1;
    (size + 2 * padding)
        .checked_sub(span)
        .map(|room| room / stride + 1)
}

/// The output positions `o` in `0..count` whose input position `o·stride +
/// offset` lies in `0..size`: one contiguous range.
fn valid_outputs(offset: isize, stride: usize, size: usize, count: usize) -> (usize, usize) {
    let stride = stride as isize;
    // First o with o·stride + offset >= 0, and first with it >= size.
    let first_at_least = |bound: isize| -> usize {
        let need = bound - offset;
        if need <= 0 {
            0
        } else {
            ((need + stride - 1) / stride) as usize
        }
    };
    let low = first_at_least(0).min(count);
    let high = first_at_least(size as isize).min(count);
    (low, high.max(low))
}

/// Where one kernel tap reads along one axis: the outputs `low..high`
/// read the input (not the padding), from input position `start` on, one
/// `stride` apart.
#[derive(Clone, Copy, Debug)]
struct Tap {
    low: usize,
    high: usize,
    start: usize,
}

/// The taps of one axis (`kernel` of them), for an input of `size` and
/// `count` outputs.
fn taps(
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    size: usize,
    count: usize,
) -> SmallVec<[Tap; 8]> {
    (0..kernel)
        .map(|i| {
            let offset = (i * dilation) as isize - padding as isize;
            let (low, high) = valid_outputs(offset, stride, size, count);
            let start = if low < high {
                (low as isize * stride as isize + offset) as usize
            } else {
                0
            };
            Tap { low, high, start }
        })
        .collect()
}

/// Copies `src` into `dst` (of the same length): vectors of eight elements
/// moved inline, since a call to `memcpy` per output row (eight elements,
/// say) costs more than the copy.
#[inline(always)]
fn copy_short<A: Copy>(dst: &mut [A], src: &[A]) {
    let mut dst = dst.chunks_exact_mut(8);
    let mut src = src.chunks_exact(8);
    for (d, s) in (&mut dst).zip(&mut src) {
        let s: &[A; 8] = s.try_into().expect("eight elements");
        let d: &mut [A; 8] = d.try_into().expect("eight elements");
        *d = *s;
    }
    for (d, &s) in dst.into_remainder().iter_mut().zip(src.remainder()) {
        *d = s;
    }
}

/// Fills one row of output columns (`out`, one per output position
/// along the width) with what kernel column `column` reads of one input
/// row `src`: the input at `start`, `start + stride`, … for the outputs
/// `low..high`, zeros in the padding.
#[inline(always)]
fn gather_row<A: Element>(column: &Tap, stride: usize, src: &[A], out: &mut [A]) {
    out[..column.low].fill(A::zero());
    out[column.high..].fill(A::zero());
    let out = &mut out[column.low..column.high];
    if stride == 1 {
        copy_short(out, &src[column.start..column.start + out.len()]);
    } else {
        for (o, &v) in out
            .iter_mut()
            .zip(src[column.start..].iter().step_by(stride))
        {
            *o = v;
        }
    }
}

/// The reverse of [`gather_row`]: adds each value of `values` (one per
/// output position along the width) into the input position of `dst` it
/// was read from, dropping the padding's.
#[inline(always)]
fn scatter_row_add<A: Element>(column: &Tap, stride: usize, values: &[A], dst: &mut [A]) {
    let values = &values[column.low..column.high];
    if stride == 1 {
        for (d, &v) in dst[column.start..column.start + values.len()]
            .iter_mut()
            .zip(values)
        {
            *d += v;
        }
    } else {
        for (d, &v) in dst[column.start..].iter_mut().step_by(stride).zip(values) {
            *d += v;
        }
    }
}

/// Unfolds one image's group of channels (`group_channels × height ×
/// width`, row-major) into `cols` (`patch × positions`, row-major): row
/// `(c, i, j)`, column `(oh, ow)` holds the input at channel `c`, row
/// `oh·stride + i·dilation - padding`, column `ow·stride + j·dilation -
/// padding`, or zero where that falls in the padding.
fn im2col<A: Element>(g: &Geometry, image: &[A], cols: &mut [A]) {
    let out_w = g.out[1];
    let rows = g.taps(0);
    let columns = g.taps(1);
    let mut dst_rows = cols.chunks_exact_mut(g.positions());
    for channel in image.chunks_exact(g.plane()) {
        for row in &rows {
            for column in &columns {
                let dst = dst_rows.next().expect("one row per channel and tap");
                let (above, rest) = dst.split_at_mut(row.low * out_w);
                let (inside, below) = rest.split_at_mut((row.high - row.low) * out_w);
                above.fill(A::zero());
                below.fill(A::zero());
                for (k, out) in inside.chunks_exact_mut(out_w).enumerate() {
                    let ih = row.start + k * g.stride[0];
                    gather_row(
                        column,
                        g.stride[1],
                        &channel[ih * g.width..(ih + 1) * g.width],
                        out,
                    );
                }
            }
        }
    }
}

/// The reverse of [`im2col`]: adds each element of `cols` into the input
/// position it was unfolded from (padding positions are dropped), so that
/// the gradient of the unfolded matrix becomes the image's.
fn col2im_add<A: Element>(g: &Geometry, cols: &[A], image: &mut [A]) {
    let out_w = g.out[1];
    let rows = g.taps(0);
    let columns = g.taps(1);
    let mut src_rows = cols.chunks_exact(g.positions());
    for channel in image.chunks_exact_mut(g.plane()) {
        for row in &rows {
            for column in &columns {
                let src = src_rows.next().expect("one row per channel and tap");
                let inside = &src[row.low * out_w..row.high * out_w];
                for (k, values) in inside.chunks_exact(out_w).enumerate() {
                    let ih = row.start + k * g.stride[0];
                    scatter_row_add(
                        column,
                        g.stride[1],
                        values,
                        &mut channel[ih * g.width..(ih + 1) * g.width],
                    );
                }
            }
        }
    }
}

/// Unfolds one image's group of channels along the width only, for a
/// stride of 1 along the height: row `(c, j)`, column `(h, ow)` of `rows`
/// (`row_patch × row_span`, row-major) holds the input at channel `c`,
/// row `h - padding` (of the padded height), column `ow·stride +
/// j·dilation - padding`, or zero in the padding. Kernel row `i` then
/// sees the block of columns starting at `(i·dilation)·out_w`, a
/// `row_patch × positions` matrix with rows `row_span` apart (see
/// [`tap_rows`]): the im2col rows of that kernel row, without copying
/// them once per kernel row.
fn unfold_rows<A: Element>(g: &Geometry, image: &[A], rows: &mut [A]) {
    let out_w = g.out[1];
    let columns = g.taps(1);
    let mut dst_rows = rows.chunks_exact_mut(g.row_span());
    for channel in image.chunks_exact(g.plane()) {
        for column in &columns {
            let dst = dst_rows
                .next()
                .expect("one row per channel and kernel column");
            let (above, rest) = dst.split_at_mut(g.padding[0] * out_w);
            let (inside, below) = rest.split_at_mut(g.height * out_w);
            above.fill(A::zero());
            below.fill(A::zero());
            for (out, src) in inside
                .chunks_exact_mut(out_w)
                .zip(channel.chunks_exact(g.width))
            {
                gather_row(column, g.stride[1], src, out);
            }
        }
    }
}

/// The reverse of [`unfold_rows`]: adds each element of `rows` into the
/// input position it was unfolded from (padding positions are dropped).
fn fold_rows_add<A: Element>(g: &Geometry, rows: &[A], image: &mut [A]) {
    let out_w = g.out[1];
    let columns = g.taps(1);
    let mut src_rows = rows.chunks_exact(g.row_span());
    for channel in image.chunks_exact_mut(g.plane()) {
        for column in &columns {
            let src = src_rows
                .next()
                .expect("one row per channel and kernel column");
            let inside = &src[g.padding[0] * out_w..(g.padding[0] + g.height) * out_w];
            for (values, dst) in inside
                .chunks_exact(out_w)
                .zip(channel.chunks_exact_mut(g.width))
            {
                scatter_row_add(column, g.stride[1], values, dst);
            }
        }
    }
}

/// The columns of row-unfolded `rows` that kernel row `i` sees: a
/// `row_patch × positions` matrix whose rows lie `row_span` apart.
fn tap_rows<'a, A>(g: &Geometry, rows: &'a [A], i: usize) -> ArrayView2<'a, A> {
    let start = i * g.dilation[0] * g.out[1];
    ArrayView2::from_shape(
        (g.row_patch(), g.positions()).strides((g.row_span(), 1)),
        &rows[start..],
    )
    .expect("within the unfolded rows")
}

/// [`tap_rows`], mutable.
fn tap_rows_mut<'a, A>(g: &Geometry, rows: &'a mut [A], i: usize) -> ArrayViewMut2<'a, A> {
    let start = i * g.dilation[0] * g.out[1];
    ArrayViewMut2::from_shape(
        (g.row_patch(), g.positions()).strides((g.row_span(), 1)),
        &mut rows[start..],
    )
    .expect("within the unfolded rows")
}

/// One group's weight (`group_filters × group_channels × kh × kw`) split
/// by kernel row into `taps`: `kh` matrices of `group_filters ×
/// row_patch` (row `o`, column `(c, j)` holding `w[o, c, i, j]`), each
/// transposed when `transposed`.
fn weight_taps<A: Element>(g: &Geometry, weight: &[A], transposed: bool, taps: &mut [A]) {
    let [kh, kw] = g.kernel;
    let (filters, patch) = (g.group_filters(), g.row_patch());
    for (o, filter) in weight.chunks_exact(g.patch()).enumerate() {
        for (c, channel) in filter.chunks_exact(kh * kw).enumerate() {
            for (i, row) in channel.chunks_exact(kw).enumerate() {
                let tap = &mut taps[i * filters * patch..(i + 1) * filters * patch];
                for (j, &v) in row.iter().enumerate() {
                    let column = c * kw + j;
                    if transposed {
                        tap[column * filters + o] = v;
                    } else {
                        tap[o * patch + column] = v;
                    }
                }
            }
        }
    }
}

/// `Σ values`, in eight running sums (one vector's worth), so that each
/// addition need not wait for the one before.
fn sum<A: Element>(values: &[A]) -> A {
    let mut lanes = [A::zero(); 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v;
        }
    }
    let rest = chunks.remainder().iter().fold(A::zero(), |acc, &v| acc + v);
    lanes.iter().fold(rest, |acc, &v| acc + v)
}

/// The elements of `a` in row-major order: borrowed when it is in standard
/// layout, copied otherwise.
pub(crate) fn row_major<A: Element>(a: &ArrayD<A>) -> Cow<'_, [A]> {
    match slice(a) {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(a.iter().copied().collect()),
    }
}

/// `grad` in standard layout (itself when it already is).
pub(crate) fn standard<A: Element>(grad: ArrayD<A>) -> ArrayD<A> {
    if slice(&grad).is_some() {
        grad
    } else {
        let copy = memory::copy_of(grad.view());
        memory::recycle(grad);
        copy
    }
}

/// Adds into `x`'s gradient through `add`, which receives it as a
/// row-major slice (zeros on first use). A gradient buffer that is not in
/// standard layout gets the contribution through a temporary one.
pub(crate) fn accumulate_flat<A: Element>(x: &Var<A>, add: impl FnOnce(&mut [A])) {
    x.accumulate_with(|mut gx| match gx.as_slice_mut() {
        Some(values) => add(values),
        None => {
            let mut temporary = memory::zeros(gx.raw_dim());
            add(temporary.as_slice_mut().expect("a new buffer is standard"));
            gx += &temporary;
            memory::recycle(temporary);
        }
    });
}

/// The 2-D view of `values` as `rows × cols`.
fn matrix<A>(values: &[A], rows: usize, cols: usize) -> ArrayView2<'_, A> {
    ArrayView2::from_shape((rows, cols), values).expect("sized to the matrix")
}

/// The 2-D mutable view of `values` as `rows × cols`.
fn matrix_mut<A>(values: &mut [A], rows: usize, cols: usize) -> ArrayViewMut2<'_, A> {
    ArrayViewMut2::from_shape((rows, cols), values).expect("sized to the matrix")
}

/// Checks a convolution's arguments and returns its sizes. `dims` are the
/// input's (N, C, H, W) and the weight's (O, C/groups, kh, kw), after a
/// 1-D convolution's are given a height of 1; `shapes` are the shapes as
/// the caller passed them, for the messages.
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn geometry(
    op: &str,
    input: [usize; 4],
    weight: [usize; 4],
    bias: Option<&[usize]>,
    options: Conv2dOptions,
    input_shape: &[usize],
    weight_shape: &[usize],
) -> Geometry {
    let [batch, channels, height, width] = input;
    let [filters, per_group, kh, kw] = weight;
    let Conv2dOptions {
        stride,
        padding,
        dilation,
        groups,
    } = options;
    assert!(
        stride.iter().all(|&s| s >= 1),
        "{op}: the stride must be at least 1, got {stride:?}"
    );
    assert!(
        dilation.iter().all(|&d| d >= 1),
        "{op}: the dilation must be at least 1, got {dilation:?}"
    );
    assert!(groups >= 1, "{op}: groups must be at least 1, got 0");
    if channels % groups != 0 || filters % groups != 0 {
        shape_mismatch(
            op,
            input_shape,
            weight_shape,
            &format!(
                "{groups} groups must divide both the {channels} input channels and the \
                 {filters} output channels"
            ),
        );
    }
    if per_group * groups != channels {
        shape_mismatch(
            op,
            input_shape,
            weight_shape,
            &format!(
                "the input has {channels} channels but the weight takes {per_group} per group \
                 × {groups} groups"
            ),
        );
    }
    if kh == 0 || kw == 0 {
        shape_mismatch(op, input_shape, weight_shape, "the kernel is empty");
    }
    if height == 0 || width == 0 {
        shape_mismatch(
            op,
            input_shape,
            weight_shape,
            "the input's images are empty",
        );
    }
    if let Some(bias) = bias
        && bias != [filters]
    {
        shape_mismatch(
            op,
            weight_shape,
            bias,
            &format!("the bias must be a vector of the {filters} output channels"),
        );
    }
    let out_h = output_size(height, kh, stride[0], padding[0], dilation[0]);
    let out_w = output_size(width, kw, stride[1], padding[1], dilation[1]);
    let (Some(out_h), Some(out_w)) = (out_h, out_w) else {
        shape_mismatch(
            op,
            input_shape,
            weight_shape,
            &format!(
                "the kernel (dilation {dilation:?}) is larger than the input padded by {padding:?}"
            ),
        );
    };
    Geometry {
        batch,
        channels,
        height,
        width,
        filters,
        kernel: [kh, kw],
        stride,
        padding,
        dilation,
        groups,
        out: [out_h, out_w],
    }
}

impl<A: Element> Var<A> {
    /// 2-D convolution (cross-correlation, as in every deep-learning
    /// library) of a batch of images `self` (N, C, H, W) with `weight`
    /// (O, C/groups, kh, kw) and an optional `bias` (O): the result is
    /// (N, O, H', W') with `H' = (H + 2·padding - dilation·(kh - 1) - 1) /
    /// stride + 1` (likewise `W'`), and
    /// `out[n, o, y, x] = bias[o] + Σ weight[o, c, i, j] · in[n, c', y·s + i·d - p, x·s + j·d - p]`
    /// over the channels `c'` of `o`'s group and the taps `(i, j)`, the
    /// input being zero in the padding.
    ///
    /// It runs on the matrix product: see the [module documentation](self)
    /// for how.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::conv::Conv2dOptions;
    /// use ndarray::{Array, array};
    ///
    /// // One 1×3×3 image, one 2×2 kernel of ones: each output is a 2×2 sum.
    /// let image = Var::constant(Array::from_shape_vec((1, 1, 3, 3), (1..=9).map(f64::from).collect()).unwrap());
    /// let weight = Var::constant(Array::from_elem((1, 1, 2, 2), 1.0f64));
    /// let bias = Var::constant(array![0.5f64]);
    /// let y = image.conv2d(&weight, Some(&bias), Conv2dOptions::default());
    /// assert_eq!(y.array(), &array![[[[12.5, 16.5], [24.5, 28.5]]]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// When the input is not 4-D or the weight not 4-D, when the channels
    /// do not match (`C` is not `groups` times the weight's second axis,
    /// or `groups` does not divide `O`), when the bias is not a vector of
    /// `O`, when a stride or dilation is 0, or when the dilated kernel is
    /// larger than the padded input. The messages name the operation and
    /// the shapes.
    #[track_caller]
    pub fn conv2d(
        &self,
        weight: &Var<A>,
        bias: Option<&Var<A>>,
        options: Conv2dOptions,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let op = "conv2d";
        let (&[n, c, h, w], &[o, per_group, kh, kw]) = (self.shape(), weight.shape()) else {
            shape_mismatch(
                op,
                self.shape(),
                weight.shape(),
                "expected an input (N, C, H, W) and a weight (O, C/groups, kh, kw)",
            );
        };
        let g = geometry(
            op,
            [n, c, h, w],
            [o, per_group, kh, kw],
            bias.map(Var::shape),
            options,
            self.shape(),
            weight.shape(),
        );
        convolve(op, self, weight, bias, g, &[n, o, g.out[0], g.out[1]])
    }

    /// 1-D convolution (cross-correlation) of a batch of sequences `self`
    /// (N, C, L) with `weight` (O, C/groups, k) and an optional `bias`
    /// (O): the result is (N, O, L') with `L' = (L + 2·padding -
    /// dilation·(k - 1) - 1) / stride + 1`. It is [`conv2d`](Var::conv2d)
    /// over images of height 1.
    ///
    /// ```
    /// use cps_runtime::*;
    /// use cps_runtime::ops::conv::Conv1dOptions;
    /// use ndarray::array;
    ///
    /// // A difference filter [-1, 1] over a sequence, padded by one zero on each side.
    /// let x = Var::constant(array![[[1.0f64, 4.0, 9.0]]]);
    /// let weight = Var::constant(array![[[-1.0f64, 1.0]]]);
    /// let options = Conv1dOptions { padding: 1, ..Conv1dOptions::default() };
    /// let y = x.conv1d(&weight, None, options);
    /// assert_eq!(y.array(), &array![[[1.0, 3.0, 5.0, -9.0]]].into_dyn());
    /// ```
    ///
    /// # Panics
    /// As [`conv2d`](Var::conv2d), for an input (N, C, L) and a weight
    /// (O, C/groups, k).
    #[track_caller]
    pub fn conv1d(
        &self,
        weight: &Var<A>,
        bias: Option<&Var<A>>,
        options: Conv1dOptions,
    ) -> Pending<A, impl BackwardStep<A> + use<A>> {
        let op = "conv1d";
        let (&[n, c, l], &[o, per_group, k]) = (self.shape(), weight.shape()) else {
            shape_mismatch(
                op,
                self.shape(),
                weight.shape(),
                "expected an input (N, C, L) and a weight (O, C/groups, k)",
            );
        };
        let options2 = Conv2dOptions {
            stride: [1, options.stride],
            padding: [0, options.padding],
            dilation: [1, options.dilation],
            groups: options.groups,
        };
        let g = geometry(
            op,
            [n, c, 1, l],
            [o, per_group, 1, k],
            bias.map(Var::shape),
            options2,
            self.shape(),
            weight.shape(),
        );
        convolve(op, self, weight, bias, g, &[n, o, g.out[1]])
    }
}

/// The convolution of checked sizes `g`, forward and backward; the result
/// has `out_shape` (the caller's rank).
fn convolve<A: Element>(
    op: &'static str,
    x: &Var<A>,
    weight: &Var<A>,
    bias: Option<&Var<A>>,
    g: Geometry,
    out_shape: &[usize],
) -> Pending<A, impl BackwardStep<A> + use<A>> {
    let positions = g.positions();
    let input = row_major(x.array());
    let weights = row_major(weight.array());
    let mut value = memory::scratch(IxDyn(out_shape));
    let out = value.as_slice_mut().expect("a new buffer is standard");
    let bias_values = bias.map(|b| row_major(b.array()));
    // The bias is added to each image's output just after its products,
    // while it is still in cache.
    let add_bias = |n: usize, out: &mut [A]| {
        if let Some(bias) = &bias_values {
            let image = &mut out[n * g.filters * positions..(n + 1) * g.filters * positions];
            for (channel, &b) in image.chunks_exact_mut(positions).zip(bias.iter()) {
                channel.iter_mut().for_each(|v| *v += b);
            }
        }
    };
    if g.unfolds_by_rows() {
        forward_by_rows(&g, &input, &weights, out, add_bias);
    } else {
        forward_by_im2col(&g, &input, &weights, out, add_bias);
    }

    let requires_grad =
        x.requires_grad() || weight.requires_grad() || bias.is_some_and(Var::requires_grad);
    let x = x.clone();
    let weight = weight.clone();
    let bias = bias.cloned();
    Pending::new(
        op,
        value,
        requires_grad,
        move |_: &ArrayD<A>, grad: ArrayD<A>| {
            let grad = standard(grad);
            let grads = grad.as_slice().expect("standard layout");
            if let Some(bias) = bias.as_ref().filter(|b| b.requires_grad()) {
                accumulate_flat(bias, |gb| {
                    for (i, channel) in grads.chunks_exact(positions).enumerate() {
                        gb[i % g.filters] += sum(channel);
                    }
                });
            }
            if weight.requires_grad() {
                let input = row_major(x.array());
                accumulate_flat(&weight, |gw| {
                    // By rows, each kernel row's product has only
                    // `row_patch` columns; below 32 (conv1's 5) the
                    // product kernels transpose copies of both operands
                    // for it, and im2col's one product is faster.
                    if g.unfolds_by_rows() && g.row_patch() >= 32 {
                        weight_grad_by_rows(&g, &input, grads, gw);
                    } else {
                        weight_grad_by_im2col(&g, &input, grads, gw);
                    }
                });
            }
            if x.requires_grad() {
                let weights = row_major(weight.array());
                accumulate_flat(&x, |gx| {
                    if g.unfolds_by_rows() {
                        input_grad_by_rows(&g, &weights, grads, gx);
                    } else {
                        input_grad_by_im2col(&g, &weights, grads, gx);
                    }
                });
            }
            memory::recycle(grad);
        },
    )
}

/// `out = W·im2col(x)`, image by image and group by group (without the
/// bias): the rule of the [module documentation](self).
/// `finish(n, out)` runs once image `n`'s output is complete.
fn forward_by_im2col<A: Element>(
    g: &Geometry,
    input: &[A],
    weights: &[A],
    out: &mut [A],
    finish: impl Fn(usize, &mut [A]),
) {
    let (patch, positions, group_filters) = (g.patch(), g.positions(), g.group_filters());
    let mut cols = if g.unfolds_to_itself() {
        Vec::new()
    } else {
        memory::stale(patch * positions)
    };
    for n in 0..g.batch {
        for group in 0..g.groups {
            let image = &input[g.input_range(n, group)];
            let unfolded = if g.unfolds_to_itself() {
                image
            } else {
                im2col(g, image, &mut cols);
                &cols[..]
            };
            gemm(
                A::one(),
                matrix(&weights[g.weight_range(group)], group_filters, patch),
                matrix(unfolded, patch, positions),
                A::zero(),
                matrix_mut(&mut out[g.output_range(n, group)], group_filters, positions),
            );
        }
        finish(n, out);
    }
    memory::give(cols);
}

/// `dW += Σ_n dY[n]·im2col(x[n])ᵀ`, group by group.
fn weight_grad_by_im2col<A: Element>(g: &Geometry, input: &[A], grads: &[A], gw: &mut [A]) {
    let (patch, positions) = (g.patch(), g.positions());
    let mut cols = if g.unfolds_to_itself() {
        Vec::new()
    } else {
        memory::stale(patch * positions)
    };
    for n in 0..g.batch {
        for group in 0..g.groups {
            let image = &input[g.input_range(n, group)];
            let unfolded = if g.unfolds_to_itself() {
                image
            } else {
                im2col(g, image, &mut cols);
                &cols[..]
            };
            // Eight filters at a time: a product of at most eight rows runs
            // on the blocked few-rows kernel, which reads dY and the
            // unfolded image where they lie, whereas conv1's 10 × 25 (a
            // wide inner dimension, few columns) was made on transposed
            // copies of both (bench/conv.sh: conv1's forward+backward from
            // 1.92 to 1.6 ms).
            let dy = &grads[g.output_range(n, group)];
            let gw = &mut gw[g.weight_range(group)];
            for (dy, gw) in dy.chunks(8 * positions).zip(gw.chunks_mut(8 * patch)) {
                gemm(
                    A::one(),
                    matrix(dy, dy.len() / positions, positions),
                    matrix(unfolded, patch, positions).t(),
                    A::one(),
                    matrix_mut(gw, gw.len() / patch, patch),
                );
            }
        }
    }
    memory::give(cols);
}

/// `dx[n] += col2im(Wᵀ·dY[n])`, group by group.
fn input_grad_by_im2col<A: Element>(g: &Geometry, weights: &[A], grads: &[A], gx: &mut [A]) {
    let (patch, positions, group_filters) = (g.patch(), g.positions(), g.group_filters());
    let mut cols = if g.unfolds_to_itself() {
        Vec::new()
    } else {
        memory::stale(patch * positions)
    };
    for n in 0..g.batch {
        for group in 0..g.groups {
            let w = matrix(&weights[g.weight_range(group)], group_filters, patch);
            let dy = matrix(&grads[g.output_range(n, group)], group_filters, positions);
            let image = &mut gx[g.input_range(n, group)];
            if g.unfolds_to_itself() {
                gemm(
                    A::one(),
                    w.t(),
                    dy,
                    A::one(),
                    matrix_mut(image, patch, positions),
                );
            } else {
                gemm(
                    A::one(),
                    w.t(),
                    dy,
                    A::zero(),
                    matrix_mut(&mut cols, patch, positions),
                );
                col2im_add(g, &cols, image);
            }
        }
    }
    memory::give(cols);
}

// The row-unfolded path: the same products, summed over the kernel's rows
// (`out = Σ_i W_i·U_i`, `U_i` the columns of the row-unfolded image that
// kernel row `i` sees, `W_i` the weight's taps of that row). The image is
// unfolded to `kw` times its size instead of `kh·kw` times, which at the
// MNIST network's shapes was most of the time im2col's path spent outside
// the products (bench/conv.sh: conv2's forward from 1.21 to 0.60 ms, both
// directions from 3.80 to 2.9).

/// `out = Σ_i W_i·U_i` per image and group (without the bias);
/// `finish(n, out)` runs once image `n`'s output is complete.
fn forward_by_rows<A: Element>(
    g: &Geometry,
    input: &[A],
    weights: &[A],
    out: &mut [A],
    finish: impl Fn(usize, &mut [A]),
) {
    let (patch, positions, group_filters) = (g.row_patch(), g.positions(), g.group_filters());
    let mut rows = memory::stale(patch * g.row_span());
    let mut taps = memory::stale(g.kernel[0] * g.filters * patch);
    for group in 0..g.groups {
        weight_taps(
            g,
            &weights[g.weight_range(group)],
            true,
            &mut taps[g.weight_range(group)],
        );
    }
    for n in 0..g.batch {
        for group in 0..g.groups {
            let taps = &taps[g.weight_range(group)];
            unfold_rows(g, &input[g.input_range(n, group)], &mut rows);
            let mut out = matrix_mut(&mut out[g.output_range(n, group)], group_filters, positions);
            for (i, tap) in taps.chunks_exact(group_filters * patch).enumerate() {
                // W_i is stored transposed, so that the product reads both
                // operands row by row.
                gemm(
                    A::one(),
                    matrix(tap, patch, group_filters).t(),
                    tap_rows(g, &rows, i),
                    if i == 0 { A::zero() } else { A::one() },
                    out.view_mut(),
                );
            }
        }
        finish(n, out);
    }
    memory::give(rows);
    memory::give(taps);
}

/// `dW_i += Σ_n dY[n]·U_iᵀ`, group by group, scattered into the weight's
/// layout.
fn weight_grad_by_rows<A: Element>(g: &Geometry, input: &[A], grads: &[A], gw: &mut [A]) {
    let [kh, kw] = g.kernel;
    let (patch, positions, group_filters) = (g.row_patch(), g.positions(), g.group_filters());
    let mut rows = memory::stale(patch * g.row_span());
    let mut taps = memory::stale(kh * group_filters * patch);
    for group in 0..g.groups {
        taps.fill(A::zero());
        for n in 0..g.batch {
            unfold_rows(g, &input[g.input_range(n, group)], &mut rows);
            let dy = matrix(&grads[g.output_range(n, group)], group_filters, positions);
            for (i, tap) in taps.chunks_exact_mut(group_filters * patch).enumerate() {
                gemm(
                    A::one(),
                    dy,
                    tap_rows(g, &rows, i).t(),
                    A::one(),
                    matrix_mut(tap, group_filters, patch),
                );
            }
        }
        let gw = &mut gw[g.weight_range(group)];
        for (i, tap) in taps.chunks_exact(group_filters * patch).enumerate() {
            for (o, row) in tap.chunks_exact(patch).enumerate() {
                for (c, values) in row.chunks_exact(kw).enumerate() {
                    let at = ((o * g.group_channels() + c) * kh + i) * kw;
                    for (d, &v) in gw[at..at + kw].iter_mut().zip(values) {
                        *d += v;
                    }
                }
            }
        }
    }
    memory::give(rows);
    memory::give(taps);
}

/// `dx[n] += fold(Σ_i W_iᵀ·dY[n])`, each product added into the columns
/// its kernel row sees.
fn input_grad_by_rows<A: Element>(g: &Geometry, weights: &[A], grads: &[A], gx: &mut [A]) {
    let (patch, positions, group_filters) = (g.row_patch(), g.positions(), g.group_filters());
    let mut rows = memory::stale(patch * g.row_span());
    let mut taps = memory::stale(g.kernel[0] * group_filters * patch);
    for group in 0..g.groups {
        weight_taps(g, &weights[g.weight_range(group)], false, &mut taps);
        for n in 0..g.batch {
            rows.fill(A::zero());
            let dy = matrix(&grads[g.output_range(n, group)], group_filters, positions);
            for (i, tap) in taps.chunks_exact(group_filters * patch).enumerate() {
                gemm(
                    A::one(),
                    matrix(tap, group_filters, patch).t(),
                    dy,
                    A::one(),
                    tap_rows_mut(g, &mut rows, i),
                );
            }
            fold_rows_add(g, &rows, &mut gx[g.input_range(n, group)]);
        }
    }
    memory::give(rows);
    memory::give(taps);
}
