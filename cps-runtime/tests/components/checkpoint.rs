//! Checkpointed segments: the gradients equal plain backpropagation
//! through the same computation (deep chains of blocks, f64 and f32),
//! random draws replay with `checkpoint_with_rng` (and do not without it,
//! the negative control), a segment's intermediate values are gone while
//! the rest of the computation runs (and the live bytes at the end of the
//! forward pass count one output per segment, where the plain chain holds
//! every block's three results), and the segment runs again only when a
//! gradient reaches its output.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use cps_runtime::*;
use ndarray::{Array, ArrayD, IxDyn, Zip, array};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `||a - b|| / ||b||`.
fn relative_error(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let diff = Zip::from(a)
        .and(b)
        .fold(0.0, |s, &x, &y| s + (x - y) * (x - y));
    let norm = b.iter().map(|y| y * y).sum::<f64>();
    (diff / norm).sqrt()
}

/// A network of `depth` blocks `h = tanh(W h + b)` on an input `x`.
struct Chain<A: Element> {
    layers: Vec<(Param<A>, Param<A>)>,
    x: Param<A>,
    readout: Var<A>,
}

impl<A: Element> Chain<A> {
    /// Weights of scale 0.1/√n, biases and input of scale 1.
    fn new(depth: usize, n: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut draw = |shape: &[usize], scale: f64| {
            Array::from_shape_simple_fn(IxDyn(shape), || {
                A::from_f64_lossy(scale * rng.random_range(-1.0..1.0))
            })
        };
        let layers = (0..depth)
            .map(|_| {
                (
                    Param::new(draw(&[n, n], 0.1 / (n as f64).sqrt())),
                    Param::new(draw(&[n], 1.0)),
                )
            })
            .collect();
        let x = Param::new(draw(&[n], 1.0));
        let readout = Var::constant(draw(&[n], 1.0));
        Chain { layers, x, readout }
    }

    /// Every gradient, in order: the layers', then the input's.
    fn grads(&self) -> Vec<ArrayD<A>> {
        let mut grads: Vec<_> = self
            .layers
            .iter()
            .flat_map(|(w, b)| [w.grad(), b.grad()])
            .collect();
        grads.push(self.x.grad());
        grads
    }

    fn zero_grad(&self) {
        for (w, b) in &self.layers {
            w.zero_grad();
            b.zero_grad();
        }
        self.x.zero_grad();
    }

    /// `sum(readout * h)` after every block, each checkpointed or not;
    /// returns the loss and the gradients.
    fn run(&self, checkpointed: bool) -> (A, Vec<ArrayD<A>>) {
        self.zero_grad();
        let loss = lazy(|k: &mut dyn FnMut(Var<A>)| {
            blocks(&self.layers, self.x.var().clone(), checkpointed, &mut |h| {
                (&h * &self.readout).bind(|p| p.sum().bind(&mut *k))
            })
        })
        .backward();
        (loss, self.grads())
    }
}

impl Chain<f64> {
    /// The bytes of results alive when the last block has handed on its
    /// output ([`live_result_bytes`]), beyond those alive before.
    fn held_at_end_of_forward(&self, checkpointed: bool) -> usize {
        let before = live_result_bytes();
        let mut held = 0;
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            blocks(&self.layers, self.x.var().clone(), checkpointed, &mut |h| {
                held = live_result_bytes() - before;
                (&h * &self.readout).bind(|p| p.sum().bind(&mut *k))
            })
        })
        .backward();
        held
    }
}

/// `tanh(W h + b)`.
fn block<A: Element>(
    w: &Param<A>,
    b: &Param<A>,
    h: &Var<A>,
) -> impl Computation<Output = Var<A>> + use<A> {
    let (w, b, h) = (w.var().clone(), b.var().clone(), h.clone());
    lazy(move |k: &mut dyn FnMut(Var<A>)| {
        w.matmul(&h).bind(|z| (&z + &b).bind(|a| a.tanh().bind(k)))
    })
}

/// The blocks one after the other, each inside the previous one's
/// continuation.
fn blocks<A: Element>(
    layers: &[(Param<A>, Param<A>)],
    h: Var<A>,
    checkpointed: bool,
    k: &mut dyn FnMut(Var<A>),
) {
    match layers.split_first() {
        None => k(h),
        Some(((w, b), rest)) if checkpointed => {
            checkpoint(|| block(w, b, &h)).bind(|next| blocks(rest, next, true, k))
        }
        Some(((w, b), rest)) => block(w, b, &h).bind(|next| blocks(rest, next, false, k)),
    }
}

#[test]
fn a_chain_of_a_hundred_checkpointed_blocks_has_the_plain_gradients() {
    let chain = Chain::<f64>::new(100, 8, 1);
    let (plain_loss, plain) = chain.run(false);
    let (loss, grads) = chain.run(true);
    assert!((loss - plain_loss).abs() <= 1e-10 * plain_loss.abs());
    assert_eq!(grads.len(), 201);
    for (i, (g, p)) in grads.iter().zip(&plain).enumerate() {
        assert!(p.iter().any(|&v| v != 0.0), "gradient {i} is zero");
        let error = relative_error(g, p);
        assert!(error <= 1e-10, "gradient {i}: relative error {error:e}");
    }
    // The last block's weight gradient is of order one, the input's of
    // order 0.1^100: every block passed its gradient on.
    assert!(plain[198].iter().any(|v| v.abs() > 1e-3));
    assert!(plain[200].iter().all(|v| v.abs() < 1e-60));
}

/// Each block makes three results of `n` elements (`W h`, `+ b`, `tanh`):
/// a plain chain keeps all three of every block until its backward pass,
/// a checkpointed one only each segment's output.
#[test]
fn checkpointed_segments_keep_one_output_each() {
    let n = 8;
    let result_bytes = n * std::mem::size_of::<f64>();
    for depth in [4, 16, 64, 256] {
        let chain = Chain::<f64>::new(depth, n, 3);
        let plain = chain.held_at_end_of_forward(false);
        let checkpointed = chain.held_at_end_of_forward(true);
        println!("depth {depth}: plain {plain} bytes, checkpointed {checkpointed} bytes");
        assert_eq!(plain, 3 * depth * result_bytes, "plain, depth {depth}");
        assert_eq!(
            checkpointed,
            depth * result_bytes,
            "checkpointed, depth {depth}"
        );
    }
}

#[test]
fn checkpointed_blocks_in_f32_have_the_plain_gradients() {
    let chain = Chain::<f32>::new(20, 6, 2);
    let (plain_loss, plain) = chain.run(false);
    let (loss, grads) = chain.run(true);
    assert_eq!(loss, plain_loss);
    for (g, p) in grads.iter().zip(&plain) {
        Zip::from(g)
            .and(p)
            .for_each(|&g, &p| assert!((g - p).abs() <= 1e-6 * p.abs().max(1e-30)));
    }
}

/// The blocks' weights and biases, and the input.
type Blocks = (Vec<(Param<f64>, Param<f64>)>, Param<f64>);

#[test]
fn checkpointed_blocks_gradient_check() {
    let chain = Chain::<f64>::new(3, 3, 3);
    let readout = chain.readout.clone();
    let mut model: Blocks = (chain.layers, chain.x);
    let report = gradcheck(&mut model, |(layers, x)| {
        lazy(|k: &mut dyn FnMut(Var<f64>)| {
            blocks(layers, x.var().clone(), true, &mut |h| {
                (&h * &readout).bind(|p| p.sum().bind(&mut *k))
            })
        })
        .backward()
    });
    assert!(report.passes(1e-6), "{report}");
    assert_eq!(report.elements_checked, 3 * (9 + 3) + 3);
}

/// A segment with random draws: dropout of `W h`, plus noise of scale
/// 0.1 from `randn_like`, then tanh.
fn noisy_block<R: Rng>(
    w: &Param<f64>,
    h: &Var<f64>,
    rng: &mut R,
) -> impl Computation<Output = Var<f64>> + use<R> {
    let (w, h) = (w.var().clone(), h.clone());
    let noise = h.randn_like(rng);
    // Drawn when the dropout runs: inside the lazy computation, from a
    // generator it owns, advanced as the caller's would be.
    let mut mask_rng = StdRng::seed_from_u64(rng.random());
    lazy(move |k: &mut dyn FnMut(Var<f64>)| {
        w.matmul(&h).bind(|z| {
            z.dropout(0.5, &mut mask_rng)
                .bind(|d| (&noise * 0.1).bind(|n| (&d + &n).bind(|a| a.tanh().bind(k))))
        })
    })
}

/// How a test runs the noisy segments.
#[derive(Clone, Copy, PartialEq)]
enum Noisy {
    Plain,
    /// `checkpoint_with_rng`: the draws replay.
    Replayed,
    /// `checkpoint` drawing from the caller's generator: the run during
    /// the backward pass draws new values.
    NotReplayed,
}

/// `sum(h)` after `depth` noisy blocks; the gradients of the weights and
/// the next number the generator gives afterwards.
fn noisy_run(ws: &[Param<f64>], x: &Var<f64>, how: Noisy) -> (Vec<ArrayD<f64>>, u64) {
    for w in ws {
        w.zero_grad();
    }
    let rng = RefCell::new(StdRng::seed_from_u64(42));
    fn chain(
        ws: &[Param<f64>],
        h: Var<f64>,
        rng: &RefCell<StdRng>,
        how: Noisy,
        k: &mut dyn FnMut(Var<f64>),
    ) {
        let Some((w, rest)) = ws.split_first() else {
            return k(h);
        };
        let next = |h: Var<f64>| chain(rest, h, rng, how, k);
        // Each segment is made in a statement of its own, so that the
        // generator is no longer borrowed when the rest runs.
        match how {
            Noisy::Plain => {
                let segment = noisy_block(w, &h, &mut *rng.borrow_mut());
                segment.bind(next)
            }
            Noisy::Replayed => {
                let segment =
                    checkpoint_with_rng(&mut *rng.borrow_mut(), |r| noisy_block(w, &h, r));
                segment.bind(next)
            }
            Noisy::NotReplayed => {
                checkpoint(|| noisy_block(w, &h, &mut *rng.borrow_mut())).bind(next)
            }
        }
    }
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        chain(ws, x.clone(), &rng, how, &mut |h| h.sum().bind(&mut *k))
    })
    .backward();
    let next = rng.borrow_mut().random();
    (ws.iter().map(|w| w.grad()).collect(), next)
}

#[test]
fn random_draws_in_a_checkpointed_segment_replay_the_same_values() {
    let mut rng = StdRng::seed_from_u64(5);
    let n = 6;
    let ws: Vec<_> = (0..10)
        .map(|_| {
            Param::new(Array::from_shape_simple_fn((n, n), || {
                rng.random_range(-1.0..1.0) / (n as f64).sqrt()
            }))
        })
        .collect();
    let x = Var::constant(Array::from_shape_simple_fn(n, || {
        rng.random_range(-1.0..1.0)
    }));
    let (plain, plain_next) = noisy_run(&ws, &x, Noisy::Plain);
    let (replayed, replayed_next) = noisy_run(&ws, &x, Noisy::Replayed);
    // The caller's generator advanced past the draws, as without the checkpoint.
    assert_eq!(replayed_next, plain_next);
    for (g, p) in replayed.iter().zip(&plain) {
        assert!(
            p.iter().filter(|&&v| v == 0.0).count() > 0,
            "dropout zeroes some columns"
        );
        assert!(relative_error(g, p) <= 1e-12, "{}", relative_error(g, p));
    }
    // Negative control: drawing afresh in the backward pass's run gives
    // other gradients (the test above would notice a missing replay).
    let (fresh, _) = noisy_run(&ws, &x, Noisy::NotReplayed);
    let worst = fresh
        .iter()
        .zip(&plain)
        .map(|(g, p)| relative_error(g, p))
        .fold(0.0, f64::max);
    assert!(worst > 0.1, "{worst}");
}

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

/// The identity, as an operation whose backward step holds a flag that is
/// set when the step is gone (run or dropped with its intermediates).
fn marked(x: &Var<f64>, gone: &Rc<Cell<bool>>) -> Pending<f64, impl BackwardStep<f64> + use<>> {
    let (input, flag) = (x.clone(), DropFlag(Rc::clone(gone)));
    Pending::new(
        "marked",
        x.array().clone(),
        x.requires_grad(),
        move |_: &ArrayD<f64>, grad: ArrayD<f64>| {
            let _flag = flag;
            input.accumulate(grad);
        },
    )
}

#[test]
fn a_segment_keeps_no_intermediate_value_and_runs_again_only_for_a_gradient() {
    let x = Param::new(array![1.0f64, -2.0]);
    let runs = Cell::new(0);
    let gone = Rc::new(Cell::new(false));
    let segment = || {
        runs.set(runs.get() + 1);
        let (x, gone) = (x.var().clone(), Rc::clone(&gone));
        lazy(move |k: &mut dyn FnMut(Var<f64>)| marked(&x, &gone).bind(|m| m.square().bind(k)))
    };
    let loss = lazy(|k: &mut dyn FnMut(Var<f64>)| {
        let cp = checkpoint(segment);
        assert_eq!(cp.array(), &array![1.0, 4.0].into_dyn());
        cp.bind(|y| {
            // The rest of the computation runs with the segment's
            // intermediate values (and backward steps) gone.
            assert!(gone.get());
            assert_eq!(runs.get(), 1);
            y.sum().bind(k)
        })
    })
    .backward();
    assert_eq!(loss, 5.0);
    assert_eq!(runs.get(), 2);
    assert_eq!(x.grad(), array![2.0, -4.0].into_dyn());

    // Forward only: no gradient reaches the output, so no second run.
    runs.set(0);
    let value = lazy(|k: &mut dyn FnMut(Var<f64>)| checkpoint(segment).bind(k)).eval();
    assert_eq!(value.array(), &array![1.0, 4.0].into_dyn());
    assert_eq!(runs.get(), 1);

    // A segment of constants needs no gradient: no second run either.
    runs.set(0);
    let c = Var::constant(array![3.0f64]);
    let w = Param::new(array![2.0f64]);
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        checkpoint(|| {
            runs.set(runs.get() + 1);
            c.square()
        })
        .bind(|y| {
            assert!(!y.requires_grad());
            (&y * &*w).bind(|p| p.sum().bind(k))
        })
    })
    .backward();
    assert_eq!(runs.get(), 1);
    assert_eq!(w.grad(), array![9.0].into_dyn());
}
