//! Reversible sequences: gradients equal plain backpropagation through the
//! same blocks (f64, 1e-10 relative at depth 100), the memory held at the
//! end of the forward pass is flat in depth where plain backpropagation's
//! grows, and the reconstruction error stays at rounding level.

use cps_runtime::*;
use ndarray::{Array1, Array2, ArrayD};

const WIDTH: usize = 4;

/// Deterministic values in about [-1, 1].
fn values(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 1001.0) - 1.0)
        .collect()
}

/// A block's two weights, of scale 0.1/√n.
type Block = (Param<f64>, Param<f64>);

fn blocks(depth: usize) -> Vec<Block> {
    let scale = 0.1 / (WIDTH as f64).sqrt();
    let matrix = |seed| {
        Param::new(
            Array2::from_shape_vec((WIDTH, WIDTH), values(WIDTH * WIDTH, seed)).unwrap() * scale,
        )
    };
    (0..depth)
        .map(|i| (matrix(2 * i + 1), matrix(2 * i + 2)))
        .collect()
}

/// `tanh(W x)`.
fn layer(w: &Param<f64>, x: Var<f64>) -> impl Computation<Output = Var<f64>> + '_ {
    lazy(move |k: &mut dyn FnMut(Var<f64>)| w.matmul(&x).bind(|h| h.tanh().bind(k)))
}

/// The loss's readout: fixed weights on both halves.
fn readout(y1: &Var<f64>, y2: &Var<f64>, k: &mut dyn FnMut(Var<f64>)) {
    let (r1, r2) = (
        Var::constant(Array1::from(values(WIDTH, 91))),
        Var::constant(Array1::from(values(WIDTH, 92))),
    );
    (y1 * &r1).bind(|a| (y2 * &r2).bind(|b| (&a + &b).bind(|s| s.sum().bind(k))));
}

/// The same blocks by plain backpropagation: every activation kept.
fn plain(blocks: &[Block], x1: Var<f64>, x2: Var<f64>, k: &mut dyn FnMut(Var<f64>, Var<f64>)) {
    match blocks.split_first() {
        None => k(x1, x2),
        Some(((wf, wg), rest)) => layer(wf, x2.clone()).bind(|f| {
            (&x1 + &f).bind(|y1| {
                layer(wg, y1.clone()).bind(|g| (&x2 + &g).bind(|y2| plain(rest, y1, y2, k)))
            })
        }),
    }
}

struct Run {
    grads: Vec<ArrayD<f64>>,
    held: usize,
}

/// The loss's gradients (inputs, then every weight) and the bytes of
/// results alive at the end of the forward pass.
fn run(depth: usize, reversibly: bool) -> Run {
    let blocks = blocks(depth);
    let x1 = Param::new(Array1::from(values(WIDTH, 50)));
    let x2 = Param::new(Array1::from(values(WIDTH, 51)));
    let before = live_result_bytes();
    let mut held = 0;
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        if reversibly {
            reversible(
                &x1,
                &x2,
                &blocks,
                |(wf, _), x| layer(wf, x),
                |(_, wg), y| layer(wg, y),
            )
            .bind(|(y1, y2)| {
                held = live_result_bytes() - before;
                readout(&y1, &y2, k)
            })
        } else {
            plain(
                &blocks,
                x1.var().clone(),
                x2.var().clone(),
                &mut |y1, y2| {
                    held = live_result_bytes() - before;
                    readout(&y1, &y2, k)
                },
            )
        }
    })
    .backward();
    let mut grads = vec![x1.grad(), x2.grad()];
    for (wf, wg) in &blocks {
        grads.push(wf.grad());
        grads.push(wg.grad());
    }
    Run { grads, held }
}

fn worst_relative(a: &[ArrayD<f64>], b: &[ArrayD<f64>]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y.iter()))
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(1e-300))
        .fold(0.0, f64::max)
}

#[test]
fn gradients_equal_plain_backpropagation_at_depth_100() {
    let (reversible, plain) = (run(100, true), run(100, false));
    let error = worst_relative(&reversible.grads, &plain.grads);
    assert!(error < 1e-10, "{error}");
    // A negative control: one block fewer gives other gradients.
    let shorter = run(99, false);
    assert!(worst_relative(&reversible.grads[..2], &shorter.grads[..2]) > 1e-6);
}

#[test]
fn memory_at_the_end_of_the_forward_pass_is_flat_in_depth() {
    let mut plain_held = Vec::new();
    for depth in [4, 16, 64, 256] {
        let (reversible, plain) = (run(depth, true), run(depth, false));
        // Two outputs of WIDTH f64s, whatever the depth.
        assert_eq!(reversible.held, 2 * WIDTH * 8, "depth {depth}");
        plain_held.push(plain.held);
    }
    // Plain backpropagation keeps every block's results: linear in depth.
    let per_block = (plain_held[1] - plain_held[0]) / 12;
    assert!(per_block > 0);
    assert_eq!(plain_held[3] - plain_held[2], 192 * per_block);
}

#[test]
fn the_reconstruction_error_stays_at_rounding_level() {
    let x1 = Var::constant(Array1::from(values(WIDTH, 50)));
    let x2 = Var::constant(Array1::from(values(WIDTH, 51)));
    for depth in [4, 16, 64, 256] {
        let blocks = blocks(depth);
        let sequence = reversible(
            &x1,
            &x2,
            &blocks,
            |(wf, _), x| layer(wf, x),
            |(_, wg), y| layer(wg, y),
        );
        let error = sequence.reconstruction_error();
        println!("depth {depth}: reconstruction error {error:.2e}");
        assert!(error < 1e-13, "depth {depth}: {error}");
    }
}

#[test]
fn a_reversible_sequence_gradient_checks() {
    let mut model = (blocks(3), Param::new(Array1::from(values(WIDTH, 50))));
    let x2 = Var::constant(Array1::from(values(WIDTH, 51)));
    let report = gradcheck(&mut model, |(blocks, x1)| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            reversible(
                x1,
                &x2,
                blocks,
                |(wf, _), x| layer(wf, x),
                |(_, wg), y| layer(wg, y),
            )
            .bind(|(y1, y2)| readout(&y1, &y2, k))
        })
        .backward()
    });
    assert!(report.passes(1e-6), "{report}");
}
