//! A differentiable body means what the same Rust means outside the macro:
//! `&x` lends `x` itself (a cheap handle, a copy of the handle), state
//! carried through loops moves, temporaries end with their statement,
//! locals end with their block. Each case is ordinary code, with its
//! gradient checked against finite differences and its side effects
//! against the same code run without the macro.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::common::{Cell, assert_gradients, cell, constant};
use cps::prelude::*;
use ndarray::array;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// One step that writes the sum of its new state into `log`.
#[differentiable]
fn logged_step(m: &Cell, h: &Var<f64>, log: &RefCell<Vec<f64>>) -> Var<f64> {
    let next = (h.matmul(&m.wh) + &m.b).tanh();
    log.borrow_mut().push(next.value().sum());
    next
}

/// The caller's own `RefCell`, lent as `&log` to each step, read after.
#[differentiable]
fn logged_run(m: &Cell, x: &Var<f64>, steps: usize, seen: &RefCell<Vec<f64>>) -> Var<f64> {
    let log = RefCell::new(Vec::new());
    let mut h = x.matmul(&m.wx);
    for _ in 0..steps {
        h = logged_step(m, &h, &log);
    }
    seen.borrow_mut().extend(log.borrow().iter().copied());
    h.sum()
}

#[test]
fn a_refcell_lent_to_a_callee_is_the_callers_own() {
    let mut m = cell(1);
    let x = constant(&[3], 2);
    let seen = RefCell::new(Vec::new());
    logged_run(&m, &x, 5, &seen).backward();
    // The same recurrence in plain ndarray arithmetic.
    let mut h = x.array().dot_dyn(&m.wx);
    let mut expected = Vec::new();
    for _ in 0..5 {
        h = (h.dot_dyn(&m.wh) + m.b.array()).mapv(f64::tanh);
        expected.push(h.sum());
    }
    let seen = seen.into_inner();
    assert_eq!(seen.len(), 5, "the callee's writes reach the caller");
    for (got, want) in seen.iter().zip(&expected) {
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }
    assert_gradients(&mut m, |m| {
        logged_run(m, &x, 5, &RefCell::new(Vec::new())).backward()
    });
}

/// Plain-array helpers for the reference computations.
trait DotDyn {
    fn dot_dyn(&self, w: &Param<f64>) -> ndarray::ArrayD<f64>;
}

impl DotDyn for ndarray::ArrayD<f64> {
    fn dot_dyn(&self, w: &Param<f64>) -> ndarray::ArrayD<f64> {
        let v = self.view().into_dimensionality::<ndarray::Ix1>().unwrap();
        let w = w
            .array()
            .view()
            .into_dimensionality::<ndarray::Ix2>()
            .unwrap();
        v.dot(&w).into_dyn()
    }
}

#[derive(Parameters)]
struct Scalar {
    w: Param<f64>,
}

/// `h_t = w h_{t-1}`, every state pushed into a `Vec`, the loss their sum.
#[differentiable]
fn collected(m: &Scalar, x: &Var<f64>, steps: usize) -> Var<f64> {
    let mut states = Vec::new();
    let mut h = x.clone();
    for _ in 0..steps {
        h = h * &m.w;
        states.push(h.clone());
    }
    let parts: Vec<&Var<f64>> = states.iter().collect();
    concat(&parts, 0).sum()
}

#[test]
fn a_vec_of_states_carried_through_20000_steps_has_its_closed_form() {
    let steps = 20_000;
    let (w, x) = (0.9995f64, 1.5f64);
    let mut m = Scalar {
        w: Param::new(array![w].into_dyn()),
    };
    let input = Var::constant(array![x].into_dyn());
    let loss = collected(&m, &input, steps).backward();
    // sum_{t=1..n} x w^t and its derivative sum_{t=1..n} t x w^(t-1).
    let n = steps as f64;
    let value = x * w * (1.0 - w.powf(n)) / (1.0 - w);
    let grad: f64 = (1..=steps)
        .map(|t| t as f64 * x * w.powi(t as i32 - 1))
        .sum();
    assert!((loss - value).abs() < 1e-9 * value, "{loss} vs {value}");
    let got = m.w.grad()[0];
    assert!((got - grad).abs() < 1e-9 * grad, "{got} vs {grad}");
    // And against finite differences on a short run.
    m.w.zero_grad();
    assert_gradients(&mut m, |m| collected(m, &input, 30).backward());
}

/// A state that is not `Clone`, updated in a loop.
struct Running {
    h: Var<f64>,
    count: usize,
    trace: Vec<f64>,
}

#[differentiable]
fn with_state(m: &Cell, x: &Var<f64>, steps: usize, traced: &RefCell<Vec<f64>>) -> Var<f64> {
    let mut state = Running {
        h: x.matmul(&m.wx),
        count: 0,
        trace: Vec::new(),
    };
    for _ in 0..steps {
        let h = (state.h.matmul(&m.wh) + &m.b).tanh();
        state.trace.push(h.value().sum());
        state = Running {
            h,
            count: state.count + 1,
            trace: state.trace,
        };
    }
    assert_eq!(state.count, steps);
    traced.borrow_mut().extend(state.trace.iter().copied());
    state.h.sum()
}

#[test]
fn a_state_that_is_not_clone_is_updated_in_a_loop() {
    let mut m = cell(3);
    let x = constant(&[3], 4);
    let traced = RefCell::new(Vec::new());
    let value = with_state(&m, &x, 4, &traced).backward();
    let logged = RefCell::new(Vec::new());
    let reference = logged_run(&m, &x, 4, &logged).eval().item();
    assert_eq!(value, reference);
    assert_eq!(traced.into_inner(), logged.into_inner());
    assert_gradients(&mut m, |m| {
        with_state(m, &x, 4, &RefCell::new(Vec::new())).backward()
    });
}

/// Dropout inside an RNN's loop, with the caller's `&mut` generator.
#[differentiable]
fn dropout_rnn(m: &Cell, x: &Var<f64>, steps: usize, rng: &mut StdRng) -> Var<f64> {
    let mut h = x.matmul(&m.wx);
    for _ in 0..steps {
        h = (h.matmul(&m.wh) + &m.b).tanh().dropout(0.5, rng);
    }
    h.sum()
}

#[test]
fn a_mut_generator_is_used_by_dropout_inside_a_loop() {
    let mut m = cell(5);
    let x = constant(&[3], 6);
    let run = |m: &Cell, seed: u64| {
        let mut rng = StdRng::seed_from_u64(seed);
        dropout_rnn(m, &x, 6, &mut rng).backward()
    };
    // The generator advances from step to step: two seeds give two values,
    // one seed the same value.
    assert_eq!(run(&m, 7), run(&m, 7));
    assert_ne!(run(&m, 7), run(&m, 8));
    m.zero_grad();
    assert_gradients(&mut m, |m| run(m, 7));
}

/// A `RefCell` guard taken in a loop body, and temporaries that need `&mut`.
#[differentiable]
fn guarded(m: &Cell, x: &Var<f64>, steps: usize, log: &RefCell<Vec<f64>>) -> Var<f64> {
    let mut h = x.matmul(&m.wx);
    let ids = vec![3usize, 1, 4];
    for _ in 0..steps {
        let mut g = log.borrow_mut();
        g.push(h.value().sum());
        h = (h.matmul(&m.wh) + &m.b).tanh();
        if h.value().iter().any(|v| *v > 2.0) || ids.iter().any(|&i| i == 0) {
            log.borrow_mut().push(f64::NAN);
        }
    }
    // A temporary guard ends with its statement, a variable passed by value.
    let last = h.value().sum();
    log.borrow_mut().push(last);
    h.sum() * (log.borrow().len() as f64)
}

#[test]
fn a_guard_taken_in_a_loop_body_ends_with_the_body() {
    let mut m = cell(9);
    let x = constant(&[3], 10);
    let log = RefCell::new(Vec::new());
    let value = guarded(&m, &x, 5, &log).backward();
    let log = log.into_inner();
    assert_eq!(log.len(), 6, "one entry per step and one at the end");
    assert!(log.iter().all(|v| v.is_finite()));
    assert_eq!(*log.last().unwrap() * 6.0, value);
    assert_gradients(&mut m, |m| {
        guarded(m, &x, 5, &RefCell::new(Vec::new())).backward()
    });
}

/// Words counted in a `HashMap` with `entry`, each step scaled by its count.
#[differentiable]
fn counted(m: &Cell, x: &Var<f64>, words: &[usize], counts_out: &RefCell<Vec<usize>>) -> Var<f64> {
    let mut counts = HashMap::new();
    let mut h = x.matmul(&m.wx);
    for &w in words {
        *counts.entry(w).or_insert(0usize) += 1;
        h = (h.matmul(&m.wh) + &m.b).tanh() * (counts[&w] as f64 * 0.5);
    }
    let mut sorted: Vec<(usize, usize)> = counts.into_iter().collect();
    sorted.sort();
    counts_out
        .borrow_mut()
        .extend(sorted.iter().map(|(_, count)| *count));
    h.sum()
}

#[test]
fn a_hashmap_counted_with_entry_in_a_loop() {
    let mut m = cell(11);
    let x = constant(&[3], 12);
    let words = [2usize, 7, 2, 2, 7, 1];
    let counts = RefCell::new(Vec::new());
    counted(&m, &x, &words, &counts).backward();
    assert_eq!(counts.into_inner(), vec![1, 3, 2]);
    assert_gradients(&mut m, |m| {
        counted(m, &x, &words, &RefCell::new(Vec::new())).backward()
    });
}

/// A `Var` lent to a call and then moved: lent as a copy of the handle.
#[differentiable]
fn lend_then_move(m: &Cell, x: &Var<f64>) -> (Var<f64>, Var<f64>) {
    let h = x.matmul(&m.wx);
    let next = logged_step(m, &h, &RefCell::new(Vec::new()));
    (next, h)
}

#[differentiable]
fn lend_then_move_loss(m: &Cell, x: &Var<f64>) -> Var<f64> {
    let (next, h) = lend_then_move(m, x);
    (next * &h).sum()
}

#[test]
fn a_var_lent_to_a_call_can_be_moved_afterwards() {
    let mut m = cell(13);
    let x = constant(&[3], 14);
    assert_gradients(&mut m, |m| lend_then_move_loss(m, &x).backward());
}

/// A runner that counts its own steps, updated through `&mut self` inside
/// the loop of a differentiable method.
struct Stepper<'m> {
    cell: &'m Cell,
    steps_taken: usize,
}

#[differentiable]
impl<'m> Stepper<'m> {
    fn run(&mut self, x: &Var<f64>, steps: usize) -> Var<f64> {
        let mut h = x.matmul(&self.cell.wx);
        for _ in 0..steps {
            self.steps_taken += 1;
            h = (h.matmul(&self.cell.wh) + &self.cell.b).tanh();
        }
        h.sum()
    }
}

#[test]
fn a_mut_self_method_updates_its_receiver_inside_a_loop() {
    let mut m = cell(15);
    let x = constant(&[3], 16);
    let run = |m: &Cell| {
        let mut stepper = Stepper {
            cell: m,
            steps_taken: 0,
        };
        let value = stepper.run(&x, 4).backward();
        assert_eq!(stepper.steps_taken, 4);
        value
    };
    let reference = logged_run(&m, &x, 4, &RefCell::new(Vec::new())).eval();
    assert_eq!(run(&m), reference.item());
    m.zero_grad();
    assert_gradients(&mut m, run);
}

/// States collected in a `Vec` that the loop carries, with an early
/// `return` from inside the loop (which takes the `Vec` with it).
#[differentiable]
fn collect_until(m: &Cell, x: &Var<f64>, limit: usize) -> Var<f64> {
    let mut states = Vec::new();
    let mut h = x.matmul(&m.wx);
    for i in 0..10 {
        h = (h.matmul(&m.wh) + &m.b).tanh();
        states.push(h.clone());
        if i + 1 == limit {
            return concat(&states, 0).sum();
        }
    }
    h.sum()
}

#[test]
fn a_collecting_loop_returns_early_with_its_states() {
    let mut m = cell(17);
    let x = constant(&[3], 18);
    let early = collect_until(&m, &x, 3).backward();
    // The sum of the first three states, as the recurrence gives them.
    let logged = RefCell::new(Vec::new());
    logged_run(&m, &x, 3, &logged).eval();
    let expected: f64 = logged.into_inner().iter().sum();
    assert!((early - expected).abs() < 1e-12, "{early} vs {expected}");
    m.zero_grad();
    assert_gradients(&mut m, |m| collect_until(m, &x, 3).backward());
    assert_gradients(&mut m, |m| collect_until(m, &x, 20).backward());
}

/// A work list in a `Vec`, popped and pushed by a `while let` loop that
/// carries it, with a differentiable state updated per item.
#[differentiable]
fn work_list(m: &Cell, x: &Var<f64>, depth: usize) -> Var<f64> {
    let mut pending = vec![depth];
    let mut h = x.matmul(&m.wx);
    let mut visited = 0usize;
    while let Some(level) = pending.pop() {
        visited += 1;
        h = (h.matmul(&m.wh) + &m.b).tanh() * (1.0 / (level as f64 + 1.0));
        if level > 0 {
            pending.push(level - 1);
            if level % 2 == 0 {
                pending.push(0);
            }
        }
    }
    assert_eq!(visited, depth + 1 + depth / 2);
    h.sum()
}

#[test]
fn a_work_list_is_popped_and_pushed_by_a_while_let_loop() {
    let mut m = cell(19);
    let x = constant(&[3], 20);
    assert_gradients(&mut m, |m| work_list(m, &x, 5).backward());
}
