//! Deep computations run on extra stack segments, which a thread keeps and
//! reuses. A panic far down must unwind across segments back to the
//! caller, and the thread must run deep computations correctly afterwards
//! (on the segments it kept); threads must not share segments.

use std::panic::{AssertUnwindSafe, catch_unwind};

use cps::prelude::*;
use ndarray::array;

#[differentiable]
fn chain(w: &Param<f64>, steps: usize, fail_at: usize) -> Var<f64> {
    let mut x = w.sum();
    for i in 0..steps {
        if i == fail_at {
            panic!("stopped at step {i}");
        }
        x = x * 0.99999 + 1e-5;
    }
    x
}

/// The value and `w`'s gradient of `chain` without a failure.
fn run(w: &Param<f64>, steps: usize) -> (f64, f64) {
    let value = chain(w, steps, usize::MAX).backward();
    let grad = w.take_grad().expect("a gradient")[0];
    (value, grad)
}

#[test]
fn a_panic_deep_down_unwinds_across_segments() {
    let w = Param::new(array![1.0f64]);
    let steps = 100_000;
    let expected = run(&w, steps);
    assert!((expected.1 - 0.99999f64.powi(steps as i32)).abs() < 1e-9);
    for fail_at in [80_000, 10, 99_999] {
        let failed = catch_unwind(AssertUnwindSafe(|| chain(&w, steps, fail_at).backward()));
        let message = failed.expect_err("the computation panicked");
        assert_eq!(
            message.downcast_ref::<String>().map(String::as_str),
            Some(format!("stopped at step {fail_at}").as_str())
        );
        // No backward step ran: nothing reached the parameter.
        assert!(w.take_grad().is_none());
        // The thread goes on, on the segments it kept.
        assert_eq!(run(&w, steps), expected);
    }
}

#[test]
fn threads_run_deep_computations_side_by_side() {
    let steps = 100_000;
    let reference = run(&Param::new(array![1.0f64]), steps);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                let w = Param::new(array![1.0f64]);
                (0..2).map(|_| run(&w, steps)).collect::<Vec<_>>()
            })
        })
        .collect();
    for handle in handles {
        for result in handle.join().expect("the thread finished") {
            assert_eq!(result, reference);
        }
    }
}
