//! Checks of the experiment's pieces: the consequentialist step on the
//! MLP against normalised LMS written out by hand, the results file's
//! round trip, and the choice of the best learning rates.

use cps::optim::{Consequential, Damping};
use cps::prelude::*;
use ndarray::{Array1, Array2, Ix1, Ix2};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::{DataSet, Examples};
use crate::grid::{Record, best_rates};
use crate::model::{self, Mlp};
use crate::optimizers::{Kind, Variant, optimizer};
use crate::run::{self, Config, Outcome};

fn matrix(p: &Param) -> Array2<f32> {
    p.array().clone().into_dimensionality::<Ix2>().unwrap()
}

fn vector(p: &Param) -> Array1<f32> {
    p.array().clone().into_dimensionality::<Ix1>().unwrap()
}

fn random_batch(rows: usize, cols: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = Array2::from_shape_fn((rows, cols), |_| rng.random_range(0.0..1.0));
    let labels = (0..rows).map(|_| rng.random_range(0..10)).collect();
    (x, labels)
}

fn largest_difference(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    (a - b).iter().fold(0.0f32, |m, d| m.max(d.abs()))
}

/// One batch of 8 through the 12-6-10 MLP: plain SGD and consequentialist
/// SGD at the same rate start from the same parameters and end apart, in
/// both layers.
#[test]
fn plain_and_consequential_steps_differ() {
    let (x, labels) = random_batch(8, 12, 1);
    let after = |variant| {
        let mut mlp = Mlp::new(12, 6, 10, 5);
        let mut opt = optimizer(Kind::Sgd, variant, 0.1, &mlp);
        model::train_step(&mut mlp, opt.as_mut(), &Var::constant(x.clone()), &labels);
        (matrix(&mlp.hidden.weight), matrix(&mlp.output.weight))
    };
    let (plain, conseq) = (after(Variant::Plain), after(Variant::Consequential));
    let start = Mlp::new(12, 6, 10, 5);
    for (before, p, c) in [
        (matrix(&start.hidden.weight), &plain.0, &conseq.0),
        (matrix(&start.output.weight), &plain.1, &conseq.1),
    ] {
        assert!(
            largest_difference(&before, p) > 1e-4,
            "plain SGD moved the layer"
        );
        assert!(largest_difference(p, c) > 1e-3, "the two steps differ");
    }
}

/// With one sample, the consequentialist SGD step of each layer is
/// normalised LMS: `ΔW = −μ·δ·aᵀ / (‖a‖² + 1 + ε)`, `Δb = −μ·δ / (‖a‖² + 1 + ε)`
/// (the bias is the weight of an input fixed at 1), with δ the layer's
/// output gradient, here written out by hand: `softmax(z₂) − onehot` for
/// the output layer and `(W₂ᵀδ₂) ⊙ [z₁ > 0]` for the hidden one. Checked
/// with ε = 0 and with the default ε = 1e-3·(‖a‖² + 1).
#[test]
fn one_sample_is_normalised_lms() {
    let (x, labels) = random_batch(1, 12, 2);
    let mu = 0.4f32;
    for (damping, relative) in [
        (Damping::Fixed(0.0), 0.0f32),
        (Damping::RelativeToTrace(1e-3), 1e-3),
    ] {
        let mut mlp = Mlp::new(12, 6, 10, 7);
        let (w1, b1, w2, b2) = (
            matrix(&mlp.hidden.weight),
            vector(&mlp.hidden.bias),
            matrix(&mlp.output.weight),
            vector(&mlp.output.bias),
        );
        let a1 = x.row(0).to_owned();
        let z1 = w1.dot(&a1) + &b1;
        let a2 = z1.mapv(|v| v.max(0.0));
        let z2 = w2.dot(&a2) + &b2;
        let top = z2.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let exp = z2.mapv(|v| (v - top).exp());
        let mut delta2 = &exp / exp.sum();
        delta2[labels[0]] -= 1.0;
        let delta1 = w2.t().dot(&delta2) * z1.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
        let nlms = |w: &Array2<f32>, b: &Array1<f32>, delta: &Array1<f32>, a: &Array1<f32>| {
            let norm = (a.dot(a) + 1.0) * (1.0 + relative);
            let outer = delta
                .view()
                .insert_axis(ndarray::Axis(1))
                .dot(&a.view().insert_axis(ndarray::Axis(0)));
            (w - &(outer * (mu / norm)), b - &(delta * (mu / norm)))
        };
        let (want_w1, want_b1) = nlms(&w1, &b1, &delta1, &a1);
        let (want_w2, want_b2) = nlms(&w2, &b2, &delta2, &a2);

        let mut opt = Consequential::new(Sgd::new(mu)).damping(damping);
        opt.layer(&mlp.hidden.weight, Some(&mlp.hidden.bias));
        opt.layer(&mlp.output.weight, Some(&mlp.output.bias));
        model::train_step(&mut mlp, &mut opt, &Var::constant(x.clone()), &labels);
        let close = |got: f32, want: f32| (got - want).abs() <= 1e-5 * (1.0 + want.abs());
        for (got, want) in [
            (matrix(&mlp.hidden.weight), want_w1),
            (matrix(&mlp.output.weight), want_w2),
        ] {
            assert!(
                got.iter().zip(&want).all(|(&g, &w)| close(g, w)),
                "{got} vs {want}"
            );
        }
        for (got, want) in [
            (vector(&mlp.hidden.bias), want_b1),
            (vector(&mlp.output.bias), want_b2),
        ] {
            assert!(
                got.iter().zip(&want).all(|(&g, &w)| close(g, w)),
                "{got} vs {want}"
            );
        }
        // The step is not plain SGD's `−μ·δ·aᵀ`: the normaliser matters.
        assert!(a1.dot(&a1) > 1.0);
    }
}

/// A short run on separable random data learns, and its results line
/// reads back as it was written.
#[test]
fn a_run_learns_and_its_line_reads_back() {
    let (features, _) = random_batch(60, 8, 3);
    let labels: Vec<usize> = features
        .rows()
        .into_iter()
        .map(|r| usize::from(r[0] > 0.5))
        .collect();
    let set = |f: Array2<f32>, l: Vec<usize>| Examples {
        features: f,
        labels: l,
    };
    let data = DataSet {
        name: "toy",
        source: "generated".to_string(),
        train: set(features.clone(), labels.clone()),
        test: set(features, labels),
    };
    let config = Config {
        batch: 16,
        kind: Kind::Sgd,
        variant: Variant::Consequential,
        lr: 0.5,
        seed: 4,
        epochs: 6,
    };
    let outcome = run::train(&data, 8, &config);
    assert_eq!(
        outcome
            .train_loss
            .iter()
            .map(|(e, _)| *e)
            .collect::<Vec<_>>(),
        vec![1, 5, 6]
    );
    assert_eq!(
        outcome.curve.len(),
        6 * 4,
        "4 steps per epoch, each its own window"
    );
    assert!(outcome.final_loss() < outcome.loss_after(1).unwrap());
    assert!(
        outcome.final_loss() < 0.5 && outcome.test_accuracy > 0.8,
        "{outcome:?}"
    );
    let text = run::line("toy", &config, &outcome);
    let (name, read_config, read) = run::parse_line(&text).unwrap();
    assert_eq!((name.as_str(), &read_config), ("toy", &config));
    assert_eq!(read.diverged, None);
    assert!((read.final_loss() - outcome.final_loss()).abs() < 1e-6);
    assert_eq!(read.curve.len(), outcome.curve.len());
}

fn record(variant: Variant, lr: f32, seed: u64, loss: f64, diverged: bool) -> Record {
    Record {
        data: "toy".to_string(),
        config: Config {
            batch: 32,
            kind: Kind::Sgd,
            variant,
            lr,
            seed,
            epochs: 5,
        },
        outcome: Outcome {
            train_loss: if diverged {
                vec![(1, 2.0)]
            } else {
                vec![(1, 2.0), (5, loss)]
            },
            test_accuracy: if diverged { f64::NAN } else { 0.9 },
            diverged: diverged.then_some(3),
            curve: vec![2.0, loss],
            seconds: 1.0,
        },
    }
}

/// The best rate has the lowest mean final loss over its seeds; a rate
/// with a diverged seed loses whatever its other seeds reached.
#[test]
fn best_rates_avoid_divergence() {
    let records = [
        record(Variant::Plain, 0.1, 1, 0.3, false),
        record(Variant::Plain, 0.1, 2, 0.5, false),
        record(Variant::Plain, 0.3, 1, 0.2, false),
        record(Variant::Plain, 0.3, 2, 0.7, false),
        record(Variant::Consequential, 0.1, 1, 0.3, false),
        record(Variant::Consequential, 0.3, 1, 0.01, false),
        record(Variant::Consequential, 0.3, 2, 0.0, true),
    ];
    let best = best_rates(&records);
    assert_eq!(best.get(&(32, "sgd", "plain")), Some(&0.1));
    assert_eq!(best.get(&(32, "sgd", "conseq")), Some(&0.1));
    let table = crate::table::markdown(&records);
    assert!(
        table.contains(
            "| sgd | 0.3 | 2.0000±0.0000 | 0.4500±0.3536 | 90.00±0.00 | 2.0000±0.0000 | div 1/2 |"
        ),
        "{table}"
    );
}

/// With `--best-from`, each (batch, optimizer, variant) runs at its own
/// best learning rate, even one outside the optimizer's default three;
/// without, at every learning rate; seeds outermost.
#[test]
fn the_grid_runs_the_chosen_rates() {
    let options = crate::cli::Options {
        batches: vec![32],
        kinds: vec![Kind::Sgd],
        seeds: 2,
        epochs: 7,
        ..Default::default()
    };
    let mut best = crate::grid::BestRates::new();
    best.insert((32, "sgd", "plain"), 1.0);
    best.insert((32, "sgd", "conseq"), 0.1);
    let chosen = crate::grid::configs(&options, Some(&best));
    let summary: Vec<(u64, Variant, f32)> =
        chosen.iter().map(|c| (c.seed, c.variant, c.lr)).collect();
    assert_eq!(
        summary,
        vec![
            (1, Variant::Plain, 1.0),
            (1, Variant::Consequential, 0.1),
            (2, Variant::Plain, 1.0),
            (2, Variant::Consequential, 0.1),
        ]
    );
    assert!(chosen.iter().all(|c| c.epochs == 7 && c.batch == 32));
    assert_eq!(crate::grid::configs(&options, None).len(), 2 * 2 * 3);
}
