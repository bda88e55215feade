//! Checkpoints of training (`io::save_checkpoint`): a run resumed from one takes the same steps, bit for bit,
//! as a run that never stopped, for every optimizer and its options; what
//! does not fit is refused with the file named.

use cps_runtime::io::{TrainingState, load_checkpoint, save_checkpoint, save_parameters};
use cps_runtime::optim::{Adagrad, Adam, AdamW, Optimizer, RmsProp, Sgd};
use cps_runtime::*;
use ndarray::{ArrayD, IxDyn};

fn temporary(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("cps-checkpoint-{}-{name}", std::process::id()))
}

/// Two parameters of different shapes.
fn model() -> Vec<Param<f32>> {
    vec![
        Param::new(ArrayD::from_shape_fn(IxDyn(&[2, 3]), |i| {
            0.1 * (i[0] * 3 + i[1]) as f32 - 0.2
        })),
        Param::new(ArrayD::from_shape_fn(IxDyn(&[3]), |i| {
            0.5 - 0.3 * i[0] as f32
        })),
    ]
}

/// A step's gradients: a fixed function of the step and the values, so
/// that two runs at the same values take the same step.
fn give_gradients(model: &[Param<f32>], step: usize) {
    for (k, p) in model.iter().enumerate() {
        let grad = p
            .array()
            .mapv(|v| (v * 1.7 + step as f32 * 0.31 + k as f32).sin());
        p.var().accumulate(grad);
    }
}

fn train(
    model: &mut Vec<Param<f32>>,
    optimizer: &mut dyn Optimizer<f32>,
    steps: std::ops::Range<usize>,
) {
    for step in steps {
        give_gradients(model, step);
        optimizer.step(model);
    }
}

fn values(model: &[Param<f32>]) -> Vec<u32> {
    model
        .iter()
        .flat_map(|p| p.array().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect()
}

/// Trains 6 steps straight, and 2 steps, a checkpoint, 4 steps from it in
/// a fresh model and optimizer: the same bits. Without the optimizer's
/// state (a fresh optimizer over the loaded parameters) the bits differ.
fn assert_resumes_exactly(name: &str, make: impl Fn() -> Box<dyn Optimizer<f32>>) {
    let mut straight = model();
    let mut optimizer = make();
    train(&mut straight, &mut *optimizer, 0..6);

    let path = temporary(&format!("{name}.safetensors"));
    let mut first = model();
    let mut optimizer = make();
    train(&mut first, &mut *optimizer, 0..2);
    let mut state = TrainingState::default();
    state.set_counter("step", 2);
    save_checkpoint(&path, &first, &*optimizer, &state).unwrap();

    let mut resumed = vec![
        Param::new(ArrayD::zeros(IxDyn(&[2, 3]))),
        Param::new(ArrayD::zeros(IxDyn(&[3]))),
    ];
    let mut optimizer = make();
    let loaded = load_checkpoint(&path, &mut resumed, &mut *optimizer).unwrap();
    assert_eq!(loaded.counter("step"), Some(2), "{name}");
    train(&mut resumed, &mut *optimizer, 2..6);
    assert_eq!(
        values(&resumed),
        values(&straight),
        "{name}: resumed run differs"
    );

    let mut stateless = model();
    cps_runtime::io::load_parameters(&mut stateless, &path).unwrap_err(); // a checkpoint is not a parameter file
    let mut forgetful = vec![
        Param::new(ArrayD::zeros(IxDyn(&[2, 3]))),
        Param::new(ArrayD::zeros(IxDyn(&[3]))),
    ];
    load_checkpoint(&path, &mut forgetful, &mut *make()).unwrap();
    train(&mut forgetful, &mut *make(), 2..6);
    assert_ne!(
        values(&forgetful),
        values(&straight),
        "{name}: the optimizer's state made no difference (negative control)"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn every_optimizer_resumes_bit_for_bit() {
    assert_resumes_exactly("sgd-momentum", || Box::new(Sgd::new(0.1).momentum(0.9)));
    assert_resumes_exactly("sgd-nesterov", || {
        Box::new(
            Sgd::new(0.1)
                .momentum(0.8)
                .nesterov(true)
                .weight_decay(0.01),
        )
    });
    assert_resumes_exactly("adagrad", || Box::new(Adagrad::new(0.1).lr_decay(0.05)));
    assert_resumes_exactly("adagrad-min-char-rnn", || {
        Box::new(Adagrad::new(0.1).eps(1e-8).eps_inside_root())
    });
    assert_resumes_exactly("adam", || Box::new(Adam::new(0.05)));
    assert_resumes_exactly("adam-amsgrad", || Box::new(Adam::new(0.05).amsgrad(true)));
    assert_resumes_exactly("adamw", || Box::new(AdamW::new(0.05).weight_decay(0.1)));
    assert_resumes_exactly("rmsprop", || {
        Box::new(RmsProp::new(0.01).centered(true).momentum(0.5))
    });
}

#[test]
fn the_loops_state_comes_back() {
    let path = temporary("state.safetensors");
    let model = model();
    let mut state = TrainingState::<f32>::default();
    state.set_counter("epoch", 7);
    state.metadata.insert("note".into(), "text".into());
    state
        .tensors
        .insert("losses".into(), ArrayD::from_elem(IxDyn(&[4]), 0.25));
    save_checkpoint(&path, &model, &Sgd::new(0.1), &state).unwrap();
    let mut copy = self::model();
    let loaded = load_checkpoint(&path, &mut copy, &mut Sgd::new(0.1)).unwrap();
    assert_eq!(loaded, state);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn what_does_not_fit_is_refused_naming_the_file() {
    let path = temporary("refused.safetensors");
    let mut trained = model();
    let mut adam = Adam::new(0.1);
    train(&mut trained, &mut adam, 0..1);
    save_checkpoint(&path, &trained, &adam, &TrainingState::default()).unwrap();
    let shown = path.display().to_string();

    // Another optimizer's state.
    let mut copy = model();
    let error = load_checkpoint(&path, &mut copy, &mut Sgd::new(0.1).momentum(0.9))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with(&shown), "{error}");
    assert!(
        error.contains("Sgd: the saved state lacks the buffer `momentum_buffer`")
            || error.contains("has a buffer `exp_avg` this optimizer does not keep"),
        "{error}"
    );
    assert_eq!(values(&copy), values(&model()), "the model changed");

    // Another model.
    let mut other = vec![Param::new(ArrayD::<f32>::zeros(IxDyn(&[2, 2])))];
    let error = load_checkpoint(&path, &mut other, &mut Adam::new(0.1))
        .unwrap_err()
        .to_string();
    assert!(error.starts_with(&shown), "{error}");
    assert!(
        error.contains("has shape [2, 3], the parameter [2, 2]"),
        "{error}"
    );

    // A parameter file is not a checkpoint.
    save_parameters(&trained, &path).unwrap();
    let error = load_checkpoint(&path, &mut model(), &mut Adam::new(0.1))
        .unwrap_err()
        .to_string();
    assert!(error.contains("not a checkpoint"), "{error}");
    std::fs::remove_file(&path).unwrap();
}
