//! The convolution and pooling layers of the MNIST network of the PyTorch
//! baseline (`cnn_mnist_torch.py`), timed one at a time at its shapes and
//! batch of 100, forward and forward plus backward, on one thread: the
//! best of `--repeat` runs, in milliseconds. `bench/conv_torch.py` times
//! PyTorch's layers at the same shapes, and `bench/conv.sh` runs both and
//! prints the ratios.
//!
//! ```text
//! cargo run --release --example conv_bench -- --repeat 30
//! ```
//!
//! Each layer's backward step starts from a fixed output gradient (not
//! from a loss over it), so that only the layer is timed. The first
//! convolution's input is data (no gradient, as in training); every other
//! layer's input takes a gradient.

#[path = "common/report.rs"]
#[macro_use]
mod report;

use std::time::Instant;

use cps_runtime::ops::conv::Conv2dOptions;
use cps_runtime::ops::pool::Pool2dOptions;
use cps_runtime::{BackwardStep, Computation, Param, Pending, Var, lazy};
use ndarray::{ArrayD, IxDyn};

/// Uniform values in [-1, 1) from a fixed linear congruential sequence.
fn values(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005) | 1;
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

/// A one-element result whose backward step hands `grad` to `y`: the
/// gradient a layer's output would receive from the rest of a network.
fn seed_gradient(y: &Var<f32>, grad: &ArrayD<f32>) -> Pending<f32, impl BackwardStep<f32> + use<>> {
    let (y, grad) = (y.clone(), grad.clone());
    Pending::new(
        "seed_gradient",
        ndarray::arr0(0.0f32).into_dyn(),
        true,
        move |_: &ArrayD<f32>, _: ArrayD<f32>| y.accumulate(grad),
    )
}

/// The best time of `repeat` runs of `run`, in milliseconds.
fn best_ms(repeat: usize, mut run: impl FnMut()) -> f64 {
    run();
    (0..repeat)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

/// Times `op` on `x`, forward alone and forward plus backward (from the
/// output gradient `grad`), and prints the line of the layer `name`.
/// `reset` clears the gradients a run left.
fn time_layer<P: Computation<Output = Var<f32>>>(
    name: &str,
    settings: &Settings,
    x: &Var<f32>,
    grad: &ArrayD<f32>,
    op: impl Fn(&Var<f32>) -> P,
    reset: impl Fn(),
) -> (f64, f64) {
    let repeat = settings.repeat;
    if settings.only.as_ref().is_some_and(|only| only != name) {
        return (0.0, 0.0);
    }
    // The output is dropped as the next layer would consume it, not
    // copied out (`eval` detaches a copy of it, which PyTorch's forward
    // does not make).
    let forward = best_ms(repeat, || op(x).bind(drop));
    let both = best_ms(repeat, || {
        lazy(|k: &mut dyn FnMut(Var<f32>)| op(x).bind(|y| seed_gradient(&y, grad).bind(k)))
            .backward();
        reset();
    });
    report!("{name} {forward:.4} {both:.4}");
    (forward, both)
}

fn main() {
    let settings = parse_args(std::env::args().skip(1)).unwrap_or_else(|message| {
        eprintln!("error: {message}\nusage: conv_bench [--repeat N] [--only LAYER]");
        std::process::exit(2);
    });
    let repeat = settings.repeat;
    let batch = 100;
    let conv = Conv2dOptions::default();
    let pool = Pool2dOptions::new(2);
    report!("# cps, batch {batch}, best of {repeat}, milliseconds: layer forward forward+backward");

    let images = Var::constant(values(&[batch, 1, 28, 28], 1));
    let (w1, b1) = (
        Param::new(values(&[10, 1, 5, 5], 2)),
        Param::new(values(&[10], 3)),
    );
    let conv1 = time_layer(
        "conv1",
        &settings,
        &images,
        &values(&[batch, 10, 24, 24], 4),
        |x| x.conv2d(&w1, Some(&b1), conv),
        || {
            w1.zero_grad();
            b1.zero_grad();
        },
    );

    let maps1 = Param::new(values(&[batch, 10, 24, 24], 5));
    let pool1 = time_layer(
        "pool1",
        &settings,
        &maps1,
        &values(&[batch, 10, 12, 12], 6),
        |x| x.max_pool2d(pool),
        || maps1.zero_grad(),
    );

    let pooled1 = Param::new(values(&[batch, 10, 12, 12], 7));
    let (w2, b2) = (
        Param::new(values(&[20, 10, 5, 5], 8)),
        Param::new(values(&[20], 9)),
    );
    let conv2 = time_layer(
        "conv2",
        &settings,
        &pooled1,
        &values(&[batch, 20, 8, 8], 10),
        |x| x.conv2d(&w2, Some(&b2), conv),
        || {
            pooled1.zero_grad();
            w2.zero_grad();
            b2.zero_grad();
        },
    );

    let maps2 = Param::new(values(&[batch, 20, 8, 8], 11));
    let pool2 = time_layer(
        "pool2",
        &settings,
        &maps2,
        &values(&[batch, 20, 4, 4], 12),
        |x| x.max_pool2d(pool),
        || maps2.zero_grad(),
    );

    let layers = [conv1, pool1, conv2, pool2];
    report!(
        "total {:.4} {:.4}",
        layers.iter().map(|l| l.0).sum::<f64>(),
        layers.iter().map(|l| l.1).sum::<f64>()
    );
}

/// What to run: each layer `repeat` times, or only the layer `only`
/// (for profiling one).
struct Settings {
    repeat: usize,
    only: Option<String>,
}

/// `--repeat N` (default 30) and `--only LAYER`, or what is wrong with the
/// arguments.
fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Settings, String> {
    let mut settings = Settings {
        repeat: 30,
        only: None,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--repeat" => {
                let value = args.next().ok_or("--repeat needs a value")?;
                settings.repeat = value
                    .parse()
                    .map_err(|_| format!("--repeat expects a count, got {value:?}"))?;
            }
            "--only" => settings.only = Some(args.next().ok_or("--only needs a layer name")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(settings)
}
