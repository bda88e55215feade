//! Convolutions and pooling: forward values against a direct
//! (six-nested-loop) reference written here and against hand computations,
//! gradients against finite differences (`gradcheck`) on random shapes,
//! strides, paddings, dilations and groups, negative controls with
//! deliberately wrong backward rules, and the panics on misuse.

use cps_runtime::ops::conv::{Conv1dOptions, Conv2dOptions};
use cps_runtime::ops::pool::Pool2dOptions;
use cps_runtime::*;
use ndarray::{Array4, ArrayD, IxDyn, array};
use proptest::prelude::*;

use crate::support::{forward_value, seeded_values, weighted_sum};

const TOLERANCE: f64 = 1e-6;

/// The 2-D convolution by its definition.
fn reference_conv2d(
    x: &Array4<f64>,
    w: &Array4<f64>,
    bias: Option<&[f64]>,
    o: Conv2dOptions,
) -> Array4<f64> {
    let (n, c, h, wd) = x.dim();
    let (f, per_group, kh, kw) = w.dim();
    let out_h = (h + 2 * o.padding[0] - o.dilation[0] * (kh - 1) - 1) / o.stride[0] + 1;
    let out_w = (wd + 2 * o.padding[1] - o.dilation[1] * (kw - 1) - 1) / o.stride[1] + 1;
    let group_filters = f / o.groups;
    assert_eq!(per_group * o.groups, c);
    Array4::from_shape_fn((n, f, out_h, out_w), |(b, filter, y, xx)| {
        let group = filter / group_filters;
        let mut total = bias.map_or(0.0, |b| b[filter]);
        for ci in 0..per_group {
            for i in 0..kh {
                for j in 0..kw {
                    let iy = (y * o.stride[0] + i * o.dilation[0]) as isize - o.padding[0] as isize;
                    let ix =
                        (xx * o.stride[1] + j * o.dilation[1]) as isize - o.padding[1] as isize;
                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                        total += w[[filter, ci, i, j]]
                            * x[[b, group * per_group + ci, iy as usize, ix as usize]];
                    }
                }
            }
        }
        total
    })
}

/// A convolution's sizes: batch, groups, channels and filters per group,
/// kernel, options, and an input size for which the output is not empty.
#[derive(Clone, Debug)]
struct Case {
    input: Vec<usize>,
    weight: Vec<usize>,
    options: Conv2dOptions,
}

fn conv_case() -> impl Strategy<Value = Case> {
    (
        1usize..=2,
        1usize..=2,
        1usize..=2,
        1usize..=2,
        (1usize..=3, 1usize..=3),
        (1usize..=2, 1usize..=2),
        (0usize..=2, 0usize..=1),
        (1usize..=2, 1usize..=2),
        (0usize..=3, 0usize..=3),
    )
        .prop_map(
            |(batch, groups, per_group, filters, (kh, kw), stride, padding, dilation, extra)| {
                let side = |k: usize, p: usize, d: usize, e: usize| {
                    (d * (k - 1) + 1).saturating_sub(2 * p).max(1) + e
                };
                let h = side(kh, padding.0, dilation.0, extra.0);
                let w = side(kw, padding.1, dilation.1, extra.1);
                Case {
                    input: vec![batch, groups * per_group, h, w],
                    weight: vec![groups * filters, per_group, kh, kw],
                    options: Conv2dOptions {
                        stride: [stride.0, stride.1],
                        padding: [padding.0, padding.1],
                        dilation: [dilation.0, dilation.1],
                        groups,
                    },
                }
            },
        )
}

fn as4(a: &ArrayD<f64>) -> Array4<f64> {
    a.clone().into_dimensionality().expect("4-D")
}

/// Pooling sizes: planes, kernel, stride, padding (at most half the
/// kernel), and an input at least as large as the kernel.
fn pool_case() -> impl Strategy<Value = (Vec<usize>, Pool2dOptions)> {
    (
        1usize..=2,
        1usize..=2,
        (1usize..=3, 1usize..=3),
        (1usize..=3, 1usize..=3),
        (0usize..=1, 0usize..=1),
        (0usize..=3, 0usize..=3),
    )
        .prop_map(|(n, c, (kh, kw), (sh, sw), (ph, pw), (eh, ew))| {
            let options = Pool2dOptions {
                kernel: [kh, kw],
                stride: [sh, sw],
                padding: [ph.min(kh / 2), pw.min(kw / 2)],
            };
            (vec![n, c, kh + eh, kw + ew], options)
        })
}

/// Max pooling by its definition (first maximum wins), with the argmax.
fn reference_max_pool(x: &Array4<f64>, o: Pool2dOptions) -> (Array4<f64>, Vec<[usize; 4]>) {
    let (n, c, h, w) = x.dim();
    let out_h = (h + 2 * o.padding[0] - o.kernel[0]) / o.stride[0] + 1;
    let out_w = (w + 2 * o.padding[1] - o.kernel[1]) / o.stride[1] + 1;
    let mut argmax = Vec::new();
    let out = Array4::from_shape_fn((n, c, out_h, out_w), |(b, ch, y, xx)| {
        let mut best = (f64::NEG_INFINITY, [0; 4]);
        for i in 0..o.kernel[0] {
            for j in 0..o.kernel[1] {
                let iy = (y * o.stride[0] + i) as isize - o.padding[0] as isize;
                let ix = (xx * o.stride[1] + j) as isize - o.padding[1] as isize;
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    let at = [b, ch, iy as usize, ix as usize];
                    if x[at] > best.0 {
                        best = (x[at], at);
                    }
                }
            }
        }
        argmax.push(best.1);
        best.0
    });
    (out, argmax)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_matches_its_definition(case in conv_case(), seed in any::<u64>(), with_bias in any::<bool>()) {
        let x = seeded_values(&case.input, seed);
        let w = seeded_values(&case.weight, seed ^ 1);
        let b = seeded_values(&[case.weight[0]], seed ^ 2);
        let bias = with_bias.then(|| Var::constant(b.clone()));
        let got = forward_value(Var::constant(x.clone()).conv2d(&Var::constant(w.clone()), bias.as_ref(), case.options));
        let want = reference_conv2d(&as4(&x), &as4(&w), with_bias.then(|| b.as_slice().unwrap()), case.options);
        prop_assert_eq!(got.shape(), want.shape());
        let worst = (&got - &want.into_dyn()).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        prop_assert!(worst < 1e-12, "worst difference {}", worst);
    }

    #[test]
    fn conv2d_gradient(case in conv_case(), seed in any::<u64>()) {
        let x = seeded_values(&case.input, seed);
        let w = seeded_values(&case.weight, seed ^ 1);
        let b = seeded_values(&[case.weight[0]], seed ^ 2);
        let out_shape = forward_value(Var::constant(x.clone()).conv2d(&Var::constant(w.clone()), None, case.options)).shape().to_vec();
        let weights = seeded_values(&out_shape, seed ^ 3);
        let mut model = (Param::new(x), Param::new(w), Param::new(b));
        let options = case.options;
        let report = gradcheck(&mut model, |(x, w, b)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.conv2d(w, Some(b), options).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn conv2d_gradient_to_the_weight_alone(case in conv_case(), seed in any::<u64>()) {
        // The input is data (as a network's first layer sees it): only the
        // weight's product runs in the backward step.
        let x = Var::constant(seeded_values(&case.input, seed));
        let w = seeded_values(&case.weight, seed ^ 1);
        let options = case.options;
        let mut w = Param::new(w);
        let report = gradcheck(&mut w, |w| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.conv2d(w, None, options).bind(|y| y.square().bind(|s| s.sum().bind(k)))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn conv1d_is_conv2d_of_height_one(case in conv_case(), seed in any::<u64>()) {
        let [n, c, _, l] = case.input[..] else { unreachable!() };
        let [f, per_group, _, k] = case.weight[..] else { unreachable!() };
        let options = Conv1dOptions {
            stride: case.options.stride[1],
            padding: case.options.padding[1],
            dilation: case.options.dilation[1],
            groups: case.options.groups,
        };
        let x = seeded_values(&[n, c, l], seed);
        let w = seeded_values(&[f, per_group, k], seed ^ 1);
        let b = seeded_values(&[f], seed ^ 2);
        let out = forward_value(Var::constant(x.clone()).conv1d(&Var::constant(w.clone()), None, options));
        let as2d = Conv2dOptions {
            stride: [1, options.stride],
            padding: [0, options.padding],
            dilation: [1, options.dilation],
            groups: options.groups,
        };
        let x4 = x.clone().into_shape_with_order(IxDyn(&[n, c, 1, l])).unwrap();
        let w4 = w.clone().into_shape_with_order(IxDyn(&[f, per_group, 1, k])).unwrap();
        let want = reference_conv2d(&as4(&x4), &as4(&w4), None, as2d);
        let want = want.into_shape_with_order(IxDyn(out.shape())).unwrap();
        let worst = (&out - &want).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        prop_assert!(worst < 1e-12, "worst difference {}", worst);

        let weights = seeded_values(out.shape(), seed ^ 3);
        let mut model = (Param::new(x), Param::new(w), Param::new(b));
        let report = gradcheck(&mut model, |(x, w, b)| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.conv1d(w, Some(b), options).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn max_pool2d_matches_its_definition_and_gradient((shape, options) in pool_case(), seed in any::<u64>()) {
        let x = seeded_values(&shape, seed);
        let (want, _) = reference_max_pool(&as4(&x), options);
        let got = forward_value(Var::constant(x.clone()).max_pool2d(options));
        prop_assert_eq!(&got, &want.into_dyn());

        let weights = seeded_values(got.shape(), seed ^ 3);
        let mut x = Param::new(x);
        let report = gradcheck(&mut x, |x| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.max_pool2d(options).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn max_pool2d_gives_each_tie_to_the_first_maximum((shape, options) in pool_case(), seed in any::<u64>()) {
        // Values from {0, 1, 2}: windows are full of ties.
        let x = seeded_values(&shape, seed).mapv(|v| ((v + 1.0) * 1.5).floor());
        let (_, argmax) = reference_max_pool(&as4(&x), options);
        let x = Param::new(x);
        lazy(|k: &mut dyn FnMut(Var<f64>)| x.max_pool2d(options).bind(|y| y.sum().bind(k))).backward();
        let mut want = ArrayD::<f64>::zeros(IxDyn(&shape));
        for at in argmax {
            want[&at[..]] += 1.0;
        }
        prop_assert_eq!(x.grad(), want);
    }

    #[test]
    fn avg_pool2d_gradient((shape, options) in pool_case(), seed in any::<u64>()) {
        let x = seeded_values(&shape, seed);
        let weights_shape = forward_value(Var::constant(x.clone()).avg_pool2d(options)).shape().to_vec();
        let weights = seeded_values(&weights_shape, seed ^ 3);
        let mut x = Param::new(x);
        let report = gradcheck(&mut x, |x| {
            lazy(|k: &mut dyn FnMut(Var<f64>)| {
                x.avg_pool2d(options).bind(|y| weighted_sum(&y, &weights).bind(k))
            })
            .backward()
        });
        prop_assert!(report.passes(TOLERANCE), "{report}");
    }

    #[test]
    fn avg_pool2d_is_a_convolution_with_a_constant_kernel((shape, options) in pool_case(), seed in any::<u64>()) {
        // Average pooling with padding counted is the convolution of each
        // plane with a kernel of 1/(kh·kw): one group per channel.
        let channels = shape[1];
        let x = seeded_values(&shape, seed);
        let scale = 1.0 / (options.kernel[0] * options.kernel[1]) as f64;
        let kernel = ArrayD::from_elem(IxDyn(&[channels, 1, options.kernel[0], options.kernel[1]]), scale);
        let conv = Conv2dOptions { stride: options.stride, padding: options.padding, dilation: [1, 1], groups: channels };
        let want = reference_conv2d(&as4(&x), &as4(&kernel), None, conv).into_dyn();
        let got = forward_value(Var::constant(x).avg_pool2d(options));
        let worst = (&got - &want).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        prop_assert!(worst < 1e-12, "worst difference {}", worst);
    }
}

#[test]
fn conv2d_by_hand_with_padding_and_stride() {
    // x = 1..=9 as 3×3, kernel [[1, 0], [0, -1]], padding 1, stride 2:
    // outputs at padded positions (0,0), (0,2), (2,0), (2,2) of the 5×5
    // padded image: -x[0,0], x[0,1]-x[1,2]... worked out below.
    let x = Var::constant(
        Array4::from_shape_vec((1, 1, 3, 3), (1..=9).map(f64::from).collect()).unwrap(),
    );
    let w = Var::constant(array![[[[1.0f64, 0.0], [0.0, -1.0]]]]);
    let options = Conv2dOptions::default().with_padding(1).with_stride(2);
    let y = forward_value(x.conv2d(&w, None, options));
    // (0,0): 0·1 - x[0][0] = -1;  (0,1): x_pad[0][2]=0, - x[0][2] = -3
    // (1,0): x_pad[2][0]=0 - x[2][0] = -7; (1,1): x[1][1] - x[2][2] = 5 - 9
    assert_eq!(y, array![[[[-1.0, -3.0], [-7.0, -4.0]]]].into_dyn());
}

#[test]
fn conv2d_backward_by_hand() {
    // One 2×2 image, one 1×1 kernel of weight 3, bias 1: y = 3x + 1.
    // loss = sum(y): dx = 3 everywhere, dw = sum(x) = 10, db = 4.
    let x = Param::new(array![[[[1.0f64, 2.0], [3.0, 4.0]]]]);
    let w = Param::new(array![[[[3.0f64]]]]);
    let b = Param::new(array![1.0f64]);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.conv2d(&w, Some(&b), Conv2dOptions::default())
            .bind(|y| y.sum().bind(k))
    })
    .backward();
    assert_eq!(loss, 34.0);
    assert_eq!(x.grad(), ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 3.0));
    assert_eq!(w.grad(), array![[[[10.0]]]].into_dyn());
    assert_eq!(b.grad(), array![4.0].into_dyn());
}

#[test]
fn conv2d_in_f32_agrees_with_f64() {
    let x64 = seeded_values(&[3, 4, 9, 7], 11);
    let w64 = seeded_values(&[6, 2, 3, 2], 12);
    let options = Conv2dOptions {
        stride: [2, 1],
        padding: [1, 0],
        dilation: [1, 2],
        groups: 2,
    };
    // loss = sum(conv(x, w)^2), in both element types.
    let (x, w) = (Param::new(x64.clone()), Param::new(w64.clone()));
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.conv2d(&w, None, options)
            .bind(|y| y.square().bind(|s| s.sum().bind(k)))
    })
    .backward();
    let (x32, w32) = (
        Param::new(x64.mapv(|v| v as f32)),
        Param::new(w64.mapv(|v| v as f32)),
    );
    let loss32 = lazy(|k: &mut dyn FnMut(Var<f32>)| {
        x32.conv2d(&w32, None, options)
            .bind(|y| y.square().bind(|s| s.sum().bind(k)))
    })
    .backward();
    assert!(
        ((loss32 as f64) - loss).abs() < 1e-4 * loss,
        "{loss32} against {loss}"
    );
    for (g32, g64) in [(x32.grad(), x.grad()), (w32.grad(), w.grad())] {
        let worst = (&g32.mapv(f64::from) - &g64)
            .iter()
            .fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(worst < 1e-4, "f32 gradient off by {worst}");
    }
}

/// The gradients of `sum(conv2d(x, w) * gy)` by their definition: `dx` and
/// `dw` each add `gy[n, o, y, x]` times the weight or the input at every
/// tap a forward output reads.
fn reference_conv2d_grads(
    x: &Array4<f64>,
    w: &Array4<f64>,
    gy: &Array4<f64>,
    o: Conv2dOptions,
) -> (Array4<f64>, Array4<f64>) {
    let (n, _, h, wd) = x.dim();
    let (f, per_group, kh, kw) = w.dim();
    let (_, _, out_h, out_w) = gy.dim();
    let group_filters = f / o.groups;
    let (mut gx, mut gw) = (Array4::zeros(x.dim()), Array4::zeros(w.dim()));
    for b in 0..n {
        for filter in 0..f {
            let group = filter / group_filters;
            for y in 0..out_h {
                for xx in 0..out_w {
                    let g = gy[[b, filter, y, xx]];
                    for ci in 0..per_group {
                        for i in 0..kh {
                            for j in 0..kw {
                                let iy = (y * o.stride[0] + i * o.dilation[0]) as isize
                                    - o.padding[0] as isize;
                                let ix = (xx * o.stride[1] + j * o.dilation[1]) as isize
                                    - o.padding[1] as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    let at = [b, group * per_group + ci, iy as usize, ix as usize];
                                    gw[[filter, ci, i, j]] += g * x[at];
                                    gx[at] += g * w[[filter, ci, i, j]];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    (gx, gw)
}

/// The largest difference between `got` (of either element type) and `want`.
fn worst_difference<A: Into<f64> + Copy>(got: &ArrayD<A>, want: &Array4<f64>) -> f64 {
    assert_eq!(got.shape(), want.shape());
    got.iter()
        .zip(want.iter())
        .fold(0.0f64, |m, (&g, &w)| m.max((g.into() - w).abs()))
}

#[test]
fn conv2d_paths_match_the_definition_at_network_shapes() {
    // The MNIST network's layers (conv1: one channel to ten, conv2: ten to
    // twenty, 5×5) and variants of them, in both element types, so that
    // every path runs on the f32 kernels: unfolded by rows (height stride
    // 1, with height padding and dilation too), by im2col (height stride
    // 2), and the weight gradient of ten filters from few columns (eight
    // filters at a time) as well as of twenty from many.
    let cases = [
        ([2, 1, 28, 28], [10, 1, 5, 5], Conv2dOptions::default()),
        ([2, 10, 12, 12], [20, 10, 5, 5], Conv2dOptions::default()),
        (
            [2, 4, 11, 9],
            [20, 2, 3, 5],
            Conv2dOptions {
                padding: [2, 1],
                dilation: [2, 1],
                groups: 2,
                ..Conv2dOptions::default()
            },
        ),
        (
            [2, 3, 13, 10],
            [10, 3, 5, 3],
            Conv2dOptions {
                stride: [2, 1],
                padding: [1, 2],
                ..Conv2dOptions::default()
            },
        ),
        ([2, 2, 1, 30], [12, 2, 1, 4], Conv2dOptions::default()),
    ];
    for (seed, (input, weight, options)) in cases.into_iter().enumerate() {
        let seed = seed as u64 * 10;
        let (x64, w64, b64) = (
            seeded_values(&input, seed),
            seeded_values(&weight, seed + 1),
            seeded_values(&[weight[0]], seed + 2),
        );
        let want = reference_conv2d(&as4(&x64), &as4(&w64), b64.as_slice(), options);
        let gy = seeded_values(want.shape(), seed + 3);
        let (want_gx, want_gw) = reference_conv2d_grads(&as4(&x64), &as4(&w64), &as4(&gy), options);
        let want_gb: Vec<f64> = (0..weight[0])
            .map(|o| gy.index_axis(ndarray::Axis(1), o).sum())
            .collect();

        let (x, w, b) = (
            Param::new(x64.clone()),
            Param::new(w64.clone()),
            Param::new(b64.clone()),
        );
        let got = forward_value(x.conv2d(&w, Some(&b), options));
        assert!(
            worst_difference(&got, &want) < 1e-12,
            "{input:?} {weight:?} f64 forward"
        );
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            x.conv2d(&w, Some(&b), options)
                .bind(|y| weighted_sum(&y, &gy).bind(k))
        })
        .backward();
        assert!(
            worst_difference(&x.grad(), &want_gx) < 1e-12,
            "{input:?} {weight:?} f64 dx"
        );
        assert!(
            worst_difference(&w.grad(), &want_gw) < 1e-12,
            "{input:?} {weight:?} f64 dw"
        );

        let f32_of = |a: &ArrayD<f64>| a.mapv(|v| v as f32);
        let (x, w, b) = (
            Param::new(f32_of(&x64)),
            Param::new(f32_of(&w64)),
            Param::new(f32_of(&b64)),
        );
        let gy32 = f32_of(&gy);
        let got =
            lazy(|k: &mut dyn FnMut(Var<f32>)| x.conv2d(&w, Some(&b), options).bind(k)).eval();
        assert!(
            worst_difference(got.array(), &want) < 1e-4,
            "{input:?} {weight:?} f32 forward"
        );
        lazy(|k: &mut dyn FnMut(Var<f32>)| {
            x.conv2d(&w, Some(&b), options).bind(|y| {
                let (y, gy32) = (y.clone(), gy32.clone());
                Pending::new(
                    "seed",
                    ndarray::arr0(0.0f32).into_dyn(),
                    true,
                    move |_: &ArrayD<f32>, _: ArrayD<f32>| y.accumulate(gy32),
                )
                .bind(k)
            })
        })
        .backward();
        // Sums of up to a few hundred products of values in [-1, 1).
        assert!(
            worst_difference(&x.grad(), &want_gx) < 1e-3,
            "{input:?} {weight:?} f32 dx"
        );
        assert!(
            worst_difference(&w.grad(), &want_gw) < 1e-3,
            "{input:?} {weight:?} f32 dw"
        );
        let worst_gb = b
            .grad()
            .iter()
            .zip(&want_gb)
            .fold(0.0f64, |m, (&g, &w)| m.max((f64::from(g) - w).abs()));
        assert!(
            worst_gb < 1e-3,
            "{input:?} {weight:?} f32 db off by {worst_gb}"
        );
    }
}

/// The 2-D convolution with a backward step that flips the kernel for the
/// input's gradient (the convolution-versus-correlation slip): the forward
/// value is right, the input's gradient wrong.
fn conv_with_flipped_backward(
    x: &Var<f64>,
    w: &Array4<f64>,
) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let input = x.clone();
    let w = w.clone();
    let value = reference_conv2d(&as4(x.array()), &w, None, Conv2dOptions::default()).into_dyn();
    Pending::new(
        "flipped_conv",
        value,
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let (n, c, h, wd) = as4(input.array()).dim();
            let (f, _, kh, kw) = w.dim();
            let g = as4(&grad);
            let mut dx = Array4::<f64>::zeros((n, c, h, wd));
            for ((b, o, y, xx), &gv) in g.indexed_iter() {
                for ci in 0..c {
                    for i in 0..kh {
                        for j in 0..kw {
                            dx[[b, ci, y + i, xx + j]] += gv * w[[o, ci, kh - 1 - i, kw - 1 - j]];
                        }
                    }
                }
                let _ = f;
            }
            input.accumulate(dx.into_dyn());
        },
    )
}

#[test]
fn gradcheck_rejects_a_flipped_kernel_in_the_backward_step() {
    let w = as4(&seeded_values(&[2, 2, 2, 3], 5));
    let weights = seeded_values(&[1, 2, 3, 2], 6);
    let mut x = Param::new(seeded_values(&[1, 2, 4, 4], 7));
    let report = gradcheck(&mut x, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            conv_with_flipped_backward(x, &w).bind(|y| weighted_sum(&y, &weights).bind(k))
        })
        .backward()
    });
    assert!(!report.passes(1e-2), "{report}");
    // The same check passes the library's own rule.
    let w = Var::constant(w.into_dyn());
    let report = gradcheck(&mut x, |x| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            x.conv2d(&w, None, Conv2dOptions::default())
                .bind(|y| weighted_sum(&y, &weights).bind(k))
        })
        .backward()
    });
    assert!(report.passes(TOLERANCE), "{report}");
}

#[test]
fn gradcheck_rejects_max_pooling_that_spreads_its_gradient() {
    // A max pool whose backward step shares each gradient over the whole
    // window (average pooling's rule): wrong wherever the window is not
    // constant.
    let options = Pool2dOptions::new(2);
    let weights = seeded_values(&[1, 2, 2, 2], 8);
    let mut x = Param::new(seeded_values(&[1, 2, 4, 4], 9));
    let report = gradcheck(&mut x, |x| {
        let value = forward_value(x.max_pool2d(options));
        let input = x.clone();
        let wrong = Pending::new(
            "spread_max_pool",
            value,
            x.requires_grad(),
            move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
                let mut dx = ArrayD::zeros(input.array().raw_dim());
                for ((b, c, y, xx), &g) in as4(&grad).indexed_iter() {
                    for i in 0..2 {
                        for j in 0..2 {
                            dx[[b, c, 2 * y + i, 2 * xx + j]] += g / 4.0;
                        }
                    }
                }
                input.accumulate(dx);
            },
        );
        lazy(|k: &mut dyn FnMut(Var<f64>)| wrong.bind(|y| weighted_sum(&y, &weights).bind(k)))
            .backward()
    });
    assert!(!report.passes(1e-2), "{report}");
}

#[test]
fn max_pool2d_by_hand_with_padding() {
    // 3×3 windows at stride 2 with padding 1 over a 3×3 plane: four
    // windows, each the max of the real values it covers.
    let x = Param::new(array![[[
        [1.0f64, 5.0, 2.0],
        [4.0, 0.0, 7.0],
        [3.0, 8.0, 6.0]
    ]]]);
    let options = Pool2dOptions::new(3).with_stride(2).with_padding(1);
    let y = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.max_pool2d(options).bind(|y| {
            assert_eq!(y.array(), &array![[[[5.0, 7.0], [8.0, 8.0]]]].into_dyn());
            y.sum().bind(k)
        })
    })
    .backward();
    assert_eq!(y, 28.0);
    // 8 is the maximum of two windows: its gradient is 2.
    assert_eq!(
        x.grad(),
        array![[[[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 2.0, 0.0]]]].into_dyn()
    );
}

#[test]
fn avg_pool2d_by_hand_counts_padding_as_zeros() {
    // 2×2 windows, stride 2, padding 1 over a 2×2 plane: each window holds
    // one real value and three zeros.
    let x = Param::new(array![[[[4.0f64, 8.0], [12.0, 16.0]]]]);
    let options = Pool2dOptions::new(2).with_padding(1);
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        x.avg_pool2d(options).bind(|y| {
            assert_eq!(y.array(), &array![[[[1.0, 2.0], [3.0, 4.0]]]].into_dyn());
            y.sum().bind(k)
        })
    })
    .backward();
    assert_eq!(loss, 10.0);
    assert_eq!(x.grad(), ArrayD::from_elem(IxDyn(&[1, 1, 2, 2]), 0.25));
}

#[test]
fn pooling_takes_three_dimensional_input() {
    let x = Var::constant(array![[[1.0f64, 2.0], [3.0, 4.0]]]);
    assert_eq!(
        forward_value(x.max_pool2d(Pool2dOptions::new(2))),
        array![[[4.0]]].into_dyn()
    );
    assert_eq!(
        forward_value(x.avg_pool2d(Pool2dOptions::new(2))),
        array![[[2.5]]].into_dyn()
    );
}

#[test]
#[should_panic(expected = "conv2d: shape mismatch between [2, 3, 5, 5] and [4, 2, 3, 3]")]
fn conv2d_names_mismatched_channels() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[2, 3, 5, 5])));
    let w = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[4, 2, 3, 3])));
    let _ = x.conv2d(&w, None, Conv2dOptions::default());
}

#[test]
#[should_panic(expected = "conv2d: shape mismatch between [1, 1, 2, 2] and [1, 1, 3, 3]")]
fn conv2d_names_a_kernel_larger_than_the_input() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 1, 2, 2])));
    let w = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 1, 3, 3])));
    let _ = x.conv2d(&w, None, Conv2dOptions::default());
}

#[test]
#[should_panic(expected = "conv2d: shape mismatch between [4, 2, 3, 3] and [3]")]
fn conv2d_names_a_wrong_bias() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 2, 5, 5])));
    let w = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[4, 2, 3, 3])));
    let b = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[3])));
    let _ = x.conv2d(&w, Some(&b), Conv2dOptions::default());
}

#[test]
#[should_panic(expected = "conv1d: shape mismatch between [1, 2, 5, 5] and [4, 2, 3]")]
fn conv1d_names_a_four_dimensional_input() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 2, 5, 5])));
    let w = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[4, 2, 3])));
    let _ = x.conv1d(&w, None, Conv1dOptions::default());
}

#[test]
#[should_panic(expected = "conv2d: the stride must be at least 1")]
fn conv2d_rejects_a_zero_stride() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 1, 5, 5])));
    let w = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 1, 3, 3])));
    let _ = x.conv2d(&w, None, Conv2dOptions::default().with_stride(0));
}

#[test]
#[should_panic(expected = "max_pool2d: the padding must be at most half the kernel")]
fn max_pool2d_rejects_too_much_padding() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[1, 1, 5, 5])));
    let _ = x.max_pool2d(Pool2dOptions::new(2).with_padding(2));
}

#[test]
#[should_panic(
    expected = "avg_pool2d: expected an input (N, C, H, W) or (C, H, W), got shape [5, 5]"
)]
fn avg_pool2d_rejects_a_matrix() {
    let x = Var::constant(ArrayD::<f64>::zeros(IxDyn(&[5, 5])));
    let _ = x.avg_pool2d(Pool2dOptions::new(2));
}
