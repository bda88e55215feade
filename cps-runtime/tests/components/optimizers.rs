//! Optimizers and gradient clipping.
//!
//! Each optimizer runs a few steps on a small parameter with written-out
//! gradients, in f64 and in f32, and is compared with a reference written
//! here element by element from the algorithm boxes of the `torch.optim`
//! documentation (independent of the library's vectorised code). A few
//! cases also have their numbers worked out by hand in comments.

use cps_runtime::optim::{
    Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd, clip_grad_norm, clip_grad_value,
};
use cps_runtime::*;
use ndarray::{Array1, ArrayD, array};

const INIT: &[f64] = &[0.5, -1.5, 2.0, 0.0];
/// Four steps; mixed signs and magnitudes, and a zero gradient element.
const GRADS: &[&[f64]] = &[
    &[0.3, -1.2, 0.0, 2.5],
    &[-0.7, 0.4, 1.1, 2.0],
    &[0.1, -0.9, -0.6, -3.0],
    &[1.5, 0.2, 0.05, 0.4],
];

fn tensor<A: Element>(values: &[f64]) -> ArrayD<A> {
    Array1::from_iter(values.iter().map(|&v| A::from_f64_lossy(v))).into_dyn()
}

/// Runs `optimizer` over `grads`, checking after each step that the
/// gradient was consumed, and returns the final value in f64.
fn run<A: Element>(optimizer: &mut dyn Optimizer<A>, init: &[f64], grads: &[&[f64]]) -> Vec<f64> {
    let mut p = Param::new(tensor::<A>(init));
    for g in grads {
        p.var().accumulate(tensor(g));
        optimizer.step(&mut p);
        assert!(p.grad_ref().is_none(), "the step left a gradient behind");
        assert_eq!(p.grad(), ArrayD::zeros(ndarray::IxDyn(&[init.len()])));
    }
    p.array().iter().map(|v| v.to_f64_lossless()).collect()
}

#[track_caller]
fn assert_close(got: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(got.len(), expected.len());
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= tolerance * e.abs().max(1.0),
            "element {i}: got {g}, expected {e} (tolerance {tolerance})\n got: {got:?}\nwant: {expected:?}"
        );
    }
}

/// Builds the optimizer with `c` converting f64 constants, once for f64
/// (compared to 1e-12) and once for f32 (to 2e-5), and compares the
/// parameter after `GRADS` with `expected`.
macro_rules! check_both_precisions {
    (|$c:ident| $build:expr, $expected:expr) => {{
        let expected: Vec<f64> = $expected;
        {
            fn $c(v: f64) -> f64 {
                v
            }
            let mut optimizer = $build;
            assert_close(&run::<f64>(&mut optimizer, INIT, GRADS), &expected, 1e-12);
        }
        {
            fn $c(v: f64) -> f32 {
                v as f32
            }
            let mut optimizer = $build;
            assert_close(&run::<f32>(&mut optimizer, INIT, GRADS), &expected, 2e-5);
        }
    }};
}

// ---------------------------------------------------------------- references

fn reference_sgd(lr: f64, momentum: f64, dampening: f64, nesterov: bool, wd: f64) -> Vec<f64> {
    let mut p = INIT.to_vec();
    let mut b = vec![0.0; p.len()];
    for (t, grad) in GRADS.iter().enumerate() {
        for i in 0..p.len() {
            let mut g = grad[i] + wd * p[i];
            if momentum != 0.0 {
                b[i] = if t == 0 {
                    g
                } else {
                    momentum * b[i] + (1.0 - dampening) * g
                };
                g = if nesterov { g + momentum * b[i] } else { b[i] };
            }
            p[i] -= lr * g;
        }
    }
    p
}

fn reference_adagrad(lr: f64, lr_decay: f64, wd: f64, initial: f64, eps: f64) -> Vec<f64> {
    let mut p = INIT.to_vec();
    let mut sum = vec![initial; p.len()];
    for (t, grad) in GRADS.iter().enumerate() {
        let step = (t + 1) as f64;
        let lr_t = lr / (1.0 + (step - 1.0) * lr_decay);
        for i in 0..p.len() {
            let g = grad[i] + wd * p[i];
            sum[i] += g * g;
            p[i] -= lr_t * g / (sum[i].sqrt() + eps);
        }
    }
    p
}

fn reference_rmsprop(
    lr: f64,
    alpha: f64,
    eps: f64,
    wd: f64,
    momentum: f64,
    centered: bool,
) -> Vec<f64> {
    let mut p = INIT.to_vec();
    let (mut v, mut g_avg, mut b) = (vec![0.0; p.len()], vec![0.0; p.len()], vec![0.0; p.len()]);
    for grad in GRADS {
        for i in 0..p.len() {
            let g = grad[i] + wd * p[i];
            v[i] = alpha * v[i] + (1.0 - alpha) * g * g;
            let mut v_tilde = v[i];
            if centered {
                g_avg[i] = g_avg[i] * alpha + (1.0 - alpha) * g;
                v_tilde -= g_avg[i] * g_avg[i];
            }
            if momentum > 0.0 {
                b[i] = momentum * b[i] + g / (v_tilde.sqrt() + eps);
                p[i] -= lr * b[i];
            } else {
                p[i] -= lr * g / (v_tilde.sqrt() + eps);
            }
        }
    }
    p
}

/// Adam with L2 weight decay `wd`, or AdamW with decoupled decay `decoupled`.
fn reference_adam(
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    wd: f64,
    decoupled: f64,
    amsgrad: bool,
) -> Vec<f64> {
    let mut p = INIT.to_vec();
    let (mut m, mut v, mut v_max) = (
        vec![0.0f64; p.len()],
        vec![0.0f64; p.len()],
        vec![0.0f64; p.len()],
    );
    for (t, grad) in GRADS.iter().enumerate() {
        let t = (t + 1) as i32;
        for i in 0..p.len() {
            p[i] -= lr * decoupled * p[i];
            let g = grad[i] + wd * p[i];
            m[i] = beta1 * m[i] + (1.0 - beta1) * g;
            v[i] = beta2 * v[i] + (1.0 - beta2) * g * g;
            let m_hat = m[i] / (1.0 - beta1.powi(t));
            v_max[i] = v_max[i].max(v[i]);
            let v_hat = if amsgrad { v_max[i] } else { v[i] } / (1.0 - beta2.powi(t));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
    p
}

// ---------------------------------------------------------------- SGD

#[test]
fn sgd_plain_by_hand() {
    let mut p = Param::new(array![1.0f64, -2.0]);
    let mut sgd = Sgd::new(0.1);
    p.var().accumulate(array![0.5, -1.0].into_dyn());
    sgd.step(&mut p);
    // 1 - 0.1·0.5 = 0.95; -2 + 0.1·1 = -1.9
    assert_close(p.array().as_slice().unwrap(), &[0.95, -1.9], 1e-15);
}

#[test]
fn sgd_matches_reference() {
    check_both_precisions!(
        |c| Sgd::new(c(0.1)),
        reference_sgd(0.1, 0.0, 0.0, false, 0.0)
    );
    check_both_precisions!(
        |c| Sgd::new(c(0.1)).weight_decay(c(0.05)),
        reference_sgd(0.1, 0.0, 0.0, false, 0.05)
    );
    check_both_precisions!(
        |c| Sgd::new(c(0.05)).momentum(c(0.9)),
        reference_sgd(0.05, 0.9, 0.0, false, 0.0)
    );
    check_both_precisions!(
        |c| Sgd::new(c(0.05))
            .momentum(c(0.8))
            .dampening(c(0.3))
            .weight_decay(c(0.01)),
        reference_sgd(0.05, 0.8, 0.3, false, 0.01)
    );
    check_both_precisions!(
        |c| Sgd::new(c(0.05))
            .momentum(c(0.9))
            .nesterov(true)
            .weight_decay(c(0.02)),
        reference_sgd(0.05, 0.9, 0.0, true, 0.02)
    );
}

#[test]
fn nesterov_and_heavy_ball_differ_as_the_formulas_say() {
    // lr = 0.1, μ = 0.9, p = 1, g = 1 at both steps.
    // Heavy ball: b = 1, p = 0.9; b = 0.9 + 1 = 1.9, p = 0.9 - 0.19 = 0.71.
    // Nesterov:  b = 1, p = 1 - 0.1·(1 + 0.9) = 0.81;
    //            b = 1.9, p = 0.81 - 0.1·(1 + 0.9·1.9) = 0.81 - 0.271 = 0.539.
    let run_two = |nesterov: bool| {
        let mut p = Param::new(array![1.0f64]);
        let mut sgd = Sgd::new(0.1).momentum(0.9).nesterov(nesterov);
        let mut values = vec![];
        for _ in 0..2 {
            p.var().accumulate(array![1.0].into_dyn());
            sgd.step(&mut p);
            values.push(p.array()[0]);
        }
        values
    };
    assert_close(&run_two(false), &[0.9, 0.71], 1e-15);
    assert_close(&run_two(true), &[0.81, 0.539], 1e-15);
}

#[test]
#[should_panic(expected = "Sgd: Nesterov momentum requires momentum > 0 and dampening = 0")]
fn nesterov_without_momentum_panics() {
    let mut p = Param::new(array![1.0f64]);
    p.var().accumulate(array![1.0].into_dyn());
    Sgd::new(0.1).nesterov(true).step(&mut p);
}

#[test]
#[should_panic(expected = "Sgd: Nesterov momentum requires momentum > 0 and dampening = 0")]
fn nesterov_with_dampening_panics() {
    let mut p = Param::new(array![1.0f64]);
    p.var().accumulate(array![1.0].into_dyn());
    Sgd::new(0.1)
        .momentum(0.9)
        .dampening(0.1)
        .nesterov(true)
        .step(&mut p);
}

#[test]
#[should_panic(expected = "Sgd: learning rate must be non-negative, got -0.1")]
fn negative_learning_rate_panics() {
    let _ = Sgd::new(-0.1f64);
}

// ---------------------------------------------------------------- Adagrad

#[test]
fn adagrad_by_hand() {
    // lr = 0.5, ε = 0, p = 1; g = 2: s = 4, p = 1 - 0.5·2/2 = 0.5;
    // g = 1: s = 5, p = 0.5 - 0.5/√5.
    let mut p = Param::new(array![1.0f64]);
    let mut adagrad = Adagrad::new(0.5).eps(0.0);
    p.var().accumulate(array![2.0].into_dyn());
    adagrad.step(&mut p);
    assert_eq!(p.array()[0], 0.5);
    p.var().accumulate(array![1.0].into_dyn());
    adagrad.step(&mut p);
    assert_close(&[p.array()[0]], &[0.5 - 0.5 / 5f64.sqrt()], 1e-15);
}

#[test]
fn adagrad_matches_reference() {
    check_both_precisions!(
        |c| Adagrad::new(c(0.1)),
        reference_adagrad(0.1, 0.0, 0.0, 0.0, 1e-10)
    );
    check_both_precisions!(
        |c| Adagrad::new(c(0.2))
            .lr_decay(c(0.1))
            .weight_decay(c(0.03))
            .initial_accumulator_value(c(0.5))
            .eps(c(1e-6)),
        reference_adagrad(0.2, 0.1, 0.03, 0.5, 1e-6)
    );
}

/// min-char-rnn's rule: ε under the square root. Against the
/// reference with that one change; the PyTorch rule (`√s + ε`) with the
/// same large ε is the negative control.
#[test]
fn adagrad_with_eps_inside_the_root() {
    let reference = |eps: f64| {
        let mut p = INIT.to_vec();
        let mut sum = vec![0.0; p.len()];
        for grad in GRADS {
            for i in 0..p.len() {
                sum[i] += grad[i] * grad[i];
                p[i] -= 0.1 * grad[i] / (sum[i] + eps).sqrt();
            }
        }
        p
    };
    check_both_precisions!(
        |c| Adagrad::new(c(0.1)).eps(c(0.25)).eps_inside_root(),
        reference(0.25)
    );
    let pytorch_rule = run::<f64>(&mut Adagrad::new(0.1).eps(0.25), INIT, GRADS);
    let inside = reference(0.25);
    assert!(
        pytorch_rule
            .iter()
            .zip(&inside)
            .any(|(a, b)| (a - b).abs() > 1e-3),
        "the two placements of ε should differ with ε = 0.25"
    );
}

// ---------------------------------------------------------------- RMSprop

#[test]
fn rmsprop_matches_reference() {
    check_both_precisions!(
        |c| RmsProp::new(c(0.01)),
        reference_rmsprop(0.01, 0.99, 1e-8, 0.0, 0.0, false)
    );
    check_both_precisions!(
        |c| RmsProp::new(c(0.02)).alpha(c(0.9)).weight_decay(c(0.1)),
        reference_rmsprop(0.02, 0.9, 1e-8, 0.1, 0.0, false)
    );
    check_both_precisions!(
        |c| RmsProp::new(c(0.02))
            .alpha(c(0.9))
            .centered(true)
            .eps(c(1e-3)),
        reference_rmsprop(0.02, 0.9, 1e-3, 0.0, 0.0, true)
    );
    check_both_precisions!(
        |c| RmsProp::new(c(0.02)).alpha(c(0.8)).momentum(c(0.7)),
        reference_rmsprop(0.02, 0.8, 1e-8, 0.0, 0.7, false)
    );
    check_both_precisions!(
        |c| RmsProp::new(c(0.02))
            .alpha(c(0.8))
            .momentum(c(0.7))
            .centered(true)
            .weight_decay(c(0.05))
            .eps(c(1e-3)),
        reference_rmsprop(0.02, 0.8, 1e-3, 0.05, 0.7, true)
    );
}

// ---------------------------------------------------------------- Adam, AdamW

#[test]
fn adam_matches_reference() {
    check_both_precisions!(
        |c| Adam::new(c(0.01)),
        reference_adam(0.01, 0.9, 0.999, 1e-8, 0.0, 0.0, false)
    );
    check_both_precisions!(
        |c| Adam::new(c(0.05))
            .betas(c(0.8), c(0.99))
            .eps(c(1e-6))
            .weight_decay(c(0.1)),
        reference_adam(0.05, 0.8, 0.99, 1e-6, 0.1, 0.0, false)
    );
    check_both_precisions!(
        |c| Adam::new(c(0.05)).betas(c(0.5), c(0.9)).amsgrad(true),
        reference_adam(0.05, 0.5, 0.9, 1e-8, 0.0, 0.0, true)
    );
}

#[test]
fn adamw_matches_reference() {
    check_both_precisions!(
        |c| AdamW::new(c(0.01)),
        reference_adam(0.01, 0.9, 0.999, 1e-8, 0.0, 0.01, false)
    );
    check_both_precisions!(
        |c| AdamW::new(c(0.05))
            .betas(c(0.8), c(0.99))
            .weight_decay(c(0.5))
            .amsgrad(true),
        reference_adam(0.05, 0.8, 0.99, 1e-8, 0.0, 0.5, true)
    );
}

#[test]
fn amsgrad_and_decoupled_decay_change_the_result() {
    // Guards the reference comparisons above: these options must matter
    // on GRADS, or the tests could not tell them apart.
    let plain = reference_adam(0.05, 0.5, 0.9, 1e-8, 0.0, 0.0, false);
    let ams = reference_adam(0.05, 0.5, 0.9, 1e-8, 0.0, 0.0, true);
    assert!(plain.iter().zip(&ams).any(|(a, b)| (a - b).abs() > 1e-4));

    let got = |optimizer: &mut dyn Optimizer<f64>| run(optimizer, INIT, GRADS);
    let l2 = got(&mut Adam::new(0.05).weight_decay(0.5));
    let decoupled = got(&mut AdamW::new(0.05).weight_decay(0.5));
    assert!(l2.iter().zip(&decoupled).any(|(a, b)| (a - b).abs() > 1e-4));
}

#[test]
fn adam_first_step_moves_each_coordinate_by_the_learning_rate() {
    // m̂ = g and v̂ = g² after one step, so p moves by lr·g/(|g| + ε).
    let mut p = Param::new(array![1.0f64, 1.0, 1.0]);
    p.var().accumulate(array![1e3, -2.0, 1e-3].into_dyn());
    Adam::new(0.1).eps(0.0).step(&mut p);
    assert_close(p.array().as_slice().unwrap(), &[0.9, 1.1, 0.9], 1e-12);
}

#[test]
#[should_panic(expected = "Adam: beta2 must be in [0, 1), got 1")]
fn adam_beta_out_of_range_panics() {
    let _ = Adam::new(0.1f64).betas(0.9, 1.0);
}

// ---------------------------------------------------------------- stepping a model

#[test]
fn frozen_parameters_are_untouched() {
    let mut model = (Param::new(array![1.0f64, 2.0]), Param::new(array![3.0f64]));
    model.0.var().accumulate(array![1.0, 1.0].into_dyn());
    model.1.var().accumulate(array![1.0].into_dyn());
    model.1.set_trainable(false);
    let mut optimizers: Vec<Box<dyn Optimizer<f64>>> = vec![
        Box::new(Sgd::new(0.1).momentum(0.9)),
        Box::new(Adagrad::new(0.1)),
        Box::new(RmsProp::new(0.1)),
        Box::new(Adam::new(0.1)),
        Box::new(AdamW::new(0.1)),
    ];
    for optimizer in &mut optimizers {
        optimizer.step(&mut model);
        model.0.var().accumulate(array![1.0, 1.0].into_dyn());
    }
    assert_eq!(model.1.array(), &array![3.0].into_dyn());
    // Its stale gradient is left where it was, too.
    assert_eq!(model.1.grad(), array![1.0].into_dyn());
    assert!(
        model.0.array()[0] < 1.0,
        "the trainable parameter must move"
    );
}

#[test]
fn parameters_without_a_gradient_are_untouched_and_keep_fresh_state() {
    let mut model = vec![Param::new(array![1.0f64]), Param::new(array![1.0f64])];
    let mut adam = Adam::new(0.1).eps(0.0);
    for _ in 0..3 {
        model[0].var().accumulate(array![1.0].into_dyn());
        adam.step(&mut model);
    }
    assert_eq!(model[1].array()[0], 1.0);
    // Its state did not advance while it had no gradient: its first real
    // step is a first step (exactly lr·sign(g)), whatever the gradient.
    model[1].var().accumulate(array![-7.0].into_dyn());
    adam.step(&mut model);
    assert_close(&[model[1].array()[0]], &[1.1], 1e-12);
    // The other parameter, without a gradient this time, stays put.
    let before = model[0].array()[0];
    assert!(before < 0.8);
    assert_eq!(model[0].array()[0], before);
}

#[test]
fn each_parameter_has_its_own_state() {
    // Two parameters stepped together must end where each would alone.
    let mut together = (
        Param::new(tensor::<f64>(INIT)),
        Param::new(tensor::<f64>(&INIT[..2])),
    );
    let mut optimizer = Sgd::new(0.05).momentum(0.9);
    for g in GRADS {
        together.0.var().accumulate(tensor(g));
        together.1.var().accumulate(tensor(&g[..2]));
        optimizer.step(&mut together);
    }
    let alone = reference_sgd(0.05, 0.9, 0.0, false, 0.0);
    assert_close(together.0.array().as_slice().unwrap(), &alone, 1e-12);
    let short: Vec<f64> = {
        let mut p = Param::new(tensor::<f64>(&INIT[..2]));
        let mut sgd = Sgd::new(0.05).momentum(0.9);
        for g in GRADS {
            p.var().accumulate(tensor(&g[..2]));
            sgd.step(&mut p);
        }
        p.array().iter().copied().collect()
    };
    assert_close(together.1.array().as_slice().unwrap(), &short, 1e-12);
    assert_close(&short, &alone[..2], 1e-12);
}

#[test]
fn a_live_var_handle_keeps_the_old_value() {
    let mut p = Param::new(array![1.0f64]);
    let old = p.var().clone();
    p.var().accumulate(array![1.0].into_dyn());
    Sgd::new(0.5).step(&mut p);
    assert_eq!(p.array()[0], 0.5);
    assert_eq!(old.array()[0], 1.0);
    assert!(p.grad_ref().is_none());
    assert!(old.grad_ref().is_none());
}

#[test]
fn the_learning_rate_can_change_between_steps() {
    let mut p = Param::new(array![1.0f64]);
    let mut sgd = Sgd::new(0.5);
    assert_eq!(sgd.learning_rate(), 0.5);
    sgd.set_learning_rate(0.25);
    p.var().accumulate(array![2.0].into_dyn());
    sgd.step(&mut p);
    assert_eq!(p.array()[0], 0.5);
}

#[test]
#[should_panic(expected = "Adagrad: shape mismatch between [2] and [3]")]
fn a_gradient_of_the_wrong_shape_panics() {
    let mut value = ArrayD::zeros(ndarray::IxDyn(&[2]));
    Adagrad::new(0.1f64).update(0, &mut value, &mut ArrayD::zeros(ndarray::IxDyn(&[3])));
}

#[test]
#[should_panic(expected = "RmsProp: shape mismatch between [3] and [2]")]
fn a_parameter_that_changed_shape_panics() {
    let mut rmsprop = RmsProp::new(0.1f64);
    let mut value = ArrayD::zeros(ndarray::IxDyn(&[2]));
    rmsprop.update(7, &mut value, &mut ArrayD::zeros(ndarray::IxDyn(&[2])));
    let mut value = ArrayD::zeros(ndarray::IxDyn(&[3]));
    rmsprop.update(7, &mut value, &mut ArrayD::zeros(ndarray::IxDyn(&[3])));
}

// ---------------------------------------------------------------- clipping

#[test]
fn clip_by_value() {
    let model = (
        Param::new(array![[0.0f64, 0.0], [0.0, 0.0]]),
        Param::new(array![0.0f64, 0.0]),
        Param::new(array![0.0f64]),
    );
    model
        .0
        .var()
        .accumulate(array![[-3.0, 0.25], [0.5, 7.0]].into_dyn());
    model.1.var().accumulate(array![-0.5, -0.75].into_dyn());
    clip_grad_value(&model, 0.6);
    assert_eq!(model.0.grad(), array![[-0.6, 0.25], [0.5, 0.6]].into_dyn());
    assert_eq!(model.1.grad(), array![-0.5, -0.6].into_dyn());
    // No gradient stays no gradient.
    assert!(model.2.grad_ref().is_none());
}

#[test]
fn clip_by_value_in_f32() {
    let p = Param::new(array![0.0f32, 0.0, 0.0]);
    p.var().accumulate(array![2.0f32, -2.0, 0.1].into_dyn());
    clip_grad_value(&p, 1.0);
    assert_eq!(p.grad(), array![1.0f32, -1.0, 0.1].into_dyn());
}

#[test]
fn clip_by_norm_above_the_limit() {
    // Global norm: √(1 + 4 + 4 + 16) = 5 over both parameters.
    let model = vec![
        Param::new(array![0.0f64, 0.0]),
        Param::new(array![0.0f64, 0.0]),
    ];
    model[0].var().accumulate(array![1.0, -2.0].into_dyn());
    model[1].var().accumulate(array![2.0, 4.0].into_dyn());
    let norm = clip_grad_norm(&model, 2.5);
    assert_eq!(norm, 5.0);
    let scale = 2.5 / (5.0 + 1e-6);
    assert_close(
        model[0].grad().as_slice().unwrap(),
        &[scale, -2.0 * scale],
        1e-15,
    );
    assert_close(
        model[1].grad().as_slice().unwrap(),
        &[2.0 * scale, 4.0 * scale],
        1e-15,
    );
    // The clipped norm is just under the limit.
    let after = clip_grad_norm(&model, 100.0);
    assert!(after < 2.5 && after > 2.5 - 1e-6, "{after}");
}

#[test]
fn clip_by_norm_below_the_limit_changes_nothing() {
    let p = Param::new(array![0.0f32, 0.0]);
    p.var().accumulate(array![3.0f32, 4.0].into_dyn());
    assert_eq!(clip_grad_norm(&p, 5.5), 5.0);
    assert_eq!(p.grad(), array![3.0f32, 4.0].into_dyn());
}

#[test]
fn clip_by_norm_covers_many_elements_and_skips_frozen_parameters() {
    // 37 elements (not a multiple of the vector width) of value 2, plus a
    // frozen parameter with a huge stale gradient that must not count.
    let mut model = (
        Param::new(ArrayD::<f64>::zeros(ndarray::IxDyn(&[37]))),
        Param::new(array![0.0f64]),
    );
    model
        .0
        .var()
        .accumulate(ArrayD::from_elem(ndarray::IxDyn(&[37]), 2.0));
    model.1.var().accumulate(array![1e6].into_dyn());
    model.1.set_trainable(false);
    let norm = clip_grad_norm(&model, 1.0);
    assert_close(&[norm], &[2.0 * 37f64.sqrt()], 1e-14);
    assert_eq!(model.1.grad(), array![1e6].into_dyn());
}

#[test]
#[should_panic(expected = "clip_grad_norm: max_norm must be non-negative, got -1")]
fn clip_by_negative_norm_panics() {
    clip_grad_norm(&Param::new(array![0.0f64]), -1.0);
}

// ---------------------------------------------------------------- end to end

/// (w − target)², elementwise, as a custom primitive.
fn squared_error<A: Element>(
    w: &Var<A>,
    target: &ArrayD<A>,
) -> Pending<A, impl BackwardStep<A> + use<A>> {
    let input = w.clone();
    let diff = w.array() - target;
    let value = diff.mapv(|d| d * d);
    Pending::new(
        "squared_error",
        value,
        w.requires_grad(),
        move |_: &ArrayD<A>, grad: ArrayD<A>| {
            let two = A::from_f64_lossy(2.0);
            input.accumulate(grad * &diff * two);
        },
    )
}

/// Minimises Σ (w − target)² from zero, clipping the gradient norm at 10
/// each step, and returns the final loss.
fn minimise<A: Element>(optimizer: &mut dyn Optimizer<A>, steps: usize) -> f64 {
    let target = tensor::<A>(&[1.5, -2.0, 0.25, 3.0]);
    let mut w = Param::new(ArrayD::<A>::zeros(ndarray::IxDyn(&[4])));
    let mut loss = A::zero();
    for _ in 0..steps {
        loss =
            lazy(|k: &mut dyn FnMut(Var<A>)| squared_error(&w, &target).bind(|e| e.sum().bind(k)))
                .backward();
        clip_grad_norm(&w, A::from_f64_lossy(10.0));
        optimizer.step(&mut w);
    }
    let initial = target
        .iter()
        .map(|&t| (t * t).to_f64_lossless())
        .sum::<f64>();
    assert!(initial > 15.0);
    loss.to_f64_lossless()
}

#[test]
fn every_optimizer_minimises_a_quadratic() {
    let cases: Vec<(&str, Box<dyn Optimizer<f64>>)> = vec![
        ("sgd", Box::new(Sgd::new(0.1))),
        ("sgd momentum", Box::new(Sgd::new(0.05).momentum(0.9))),
        (
            "sgd nesterov",
            Box::new(Sgd::new(0.05).momentum(0.9).nesterov(true)),
        ),
        ("adagrad", Box::new(Adagrad::new(1.0))),
        (
            "rmsprop",
            Box::new(RmsProp::new(0.05).momentum(0.5).centered(true)),
        ),
        ("adam", Box::new(Adam::new(0.1))),
        ("adamw", Box::new(AdamW::new(0.1).weight_decay(0.0))),
    ];
    for (name, mut optimizer) in cases {
        let loss = minimise(optimizer.as_mut(), 300);
        assert!(loss < 1e-8, "{name}: loss {loss} after 300 steps");
    }
    let loss = minimise::<f32>(&mut Adam::new(0.1f32), 300);
    assert!(loss < 1e-6, "adam f32: loss {loss}");
}
