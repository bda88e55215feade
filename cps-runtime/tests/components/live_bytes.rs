//! The counter of live result bytes: what a computation holds at the end
//! of its forward pass grows with its depth, and nothing is left after the
//! backward pass.

use cps_runtime::*;
use ndarray::Array1;

/// `depth` tanh steps on a vector of `width` elements; the live bytes
/// measured at the innermost continuation.
fn held_at_the_end(depth: usize, width: usize) -> usize {
    fn chain(h: Var<f64>, left: usize, seen: &mut usize, k: &mut dyn FnMut(Var<f64>)) {
        if left == 0 {
            *seen = live_result_bytes();
            return k(h);
        }
        h.tanh().bind(|t| chain(t, left - 1, seen, k));
    }
    let w = Param::new(Array1::from_elem(width, 0.5f64));
    let mut seen = 0;
    let before = live_result_bytes();
    lazy(|k: &mut dyn FnMut(Var<f64>)| {
        (&w * 1.0).bind(|h| chain(h, depth, &mut seen, &mut |t| t.sum().bind(&mut *k)))
    })
    .backward();
    assert_eq!(
        live_result_bytes(),
        before,
        "nothing is left after the backward pass"
    );
    seen - before
}

#[test]
fn a_plain_chain_holds_one_result_per_step() {
    let width = 100;
    for depth in [4, 16, 64, 256] {
        // The scaled input and one result per step, 8 bytes an element.
        assert_eq!(
            held_at_the_end(depth, width),
            (depth + 1) * width * 8,
            "depth {depth}"
        );
    }
}

#[test]
fn results_kept_beyond_their_operation_are_counted_until_dropped() {
    let x = Var::constant(Array1::<f32>::zeros(10));
    let before = live_result_bytes();
    let mut kept = Vec::new();
    x.exp().bind(|e| kept.push(e));
    assert_eq!(live_result_bytes() - before, 40);
    let value = kept[0].value();
    drop(kept);
    assert_eq!(live_result_bytes() - before, 40, "the value still holds it");
    drop(value);
    assert_eq!(live_result_bytes(), before);
}
