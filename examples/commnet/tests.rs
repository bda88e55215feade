//! The model's gradients against finite differences, the mean of the
//! other agents by hand, a batch of unequal games against the games one
//! by one, and the closed-form chance.

use std::cell::RefCell;

use cps::prelude::*;
use ndarray::{Array2, array};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::levers::{Batch, Groups, Run, chance, reward};
use crate::model::{
    CommNet, Played, linear, mean_of_others, reinforce_loss, step, supervised_loss,
};

/// A small model in `f64`: a pool of 16 agents, hidden 2, two
/// communication steps, 4 levers.
fn small(communicate: bool) -> CommNet<f64> {
    CommNet::new(16, 2, 2, 4, communicate, &mut StdRng::seed_from_u64(7))
}

/// Two games, of 3 and 4 agents.
fn two_games() -> Batch {
    Batch::new(&[vec![12, 4, 7], vec![3, 15, 9, 1]])
}

#[test]
fn the_gradient_matches_finite_differences() {
    let batch = two_games();
    let mut model = small(true);
    // Only the rows of the agents that play get a gradient; the check
    // runs over every element of every parameter (the pool's unused rows
    // included, whose gradient must be zero on both sides).
    let report = gradcheck(&mut model, |m| supervised_loss(m, &batch).backward());
    assert!(report.passes(1e-6), "{report}");
    assert!(report.elements_checked > 16 * 2);

    // REINFORCE's loss for fixed draws is a smooth function of the
    // parameters too: each call draws the same levers from the same seed
    // (the change of 1e-6 moves no draw across a boundary here).
    let reinforce = |m: &CommNet<f64>| {
        let rng = RefCell::new(StdRng::seed_from_u64(3));
        let played = RefCell::new(Played::default());
        reinforce_loss(m, &batch, 0.4, &rng, &played).backward()
    };
    let report = gradcheck(&mut model, reinforce);
    assert!(report.passes(1e-6), "{report}");
}

/// The model's scores with a deliberately wrong `c`: the same values, but
/// computed from a detached copy of `h`, so that no gradient flows back
/// through the communication.
#[differentiable]
fn scores_with_deaf_gradient(m: &CommNet<f64>, batch: &Batch) -> Var<f64> {
    let h0 = m.identity.rows(&batch.ids);
    let zeros = Var::constant(Array2::<f64>::zeros((batch.agents(), h0.shape()[1])));
    let start = concat(&[&h0, &zeros, &zeros], 1);
    let mut h = step(&m.steps[0], &start);
    for s in &m.steps[1..] {
        let c = mean_of_others(&h.detach(), &batch.runs);
        let input = concat(&[&h0, &h, &c], 1);
        h = step(s, &input);
    }
    linear(&m.policy, &h)
}

#[differentiable]
fn loss_with_deaf_gradient(m: &CommNet<f64>, batch: &Batch) -> Var<f64> {
    let scores = scores_with_deaf_gradient(m, batch);
    scores.cross_entropy(&batch.ranks)
}

#[test]
fn a_wrong_gradient_would_be_caught() {
    // The negative control: the same check on the wrong `c` above. The
    // loss is the same number, but its gradient is not the loss's.
    let batch = Batch::new(&[vec![12, 4, 7, 0], vec![3, 15, 9, 1]]);
    let mut model = small(true);
    let right = supervised_loss(&model, &batch).eval().item();
    let wrong = loss_with_deaf_gradient(&model, &batch).eval().item();
    assert!((right - wrong).abs() < 1e-12, "{right} vs {wrong}");
    let report = gradcheck(&mut model, |m| {
        loss_with_deaf_gradient(m, &batch).backward()
    });
    println!("the wrong c: {report}");
    assert!(!report.passes(1e-3), "{report}");

    // Communication matters: turning it off changes the loss.
    let off = supervised_loss(&small(false), &batch).eval().item();
    assert!((right - off).abs() > 1e-6, "{right} vs {off}");
}

#[test]
fn the_mean_of_the_others_is_the_hand_computation() {
    let h = Var::constant(array![[1.0f64, 10.0], [2.0, 20.0], [6.0, 60.0]]);
    let runs = [Run {
        start: 0,
        games: 1,
        size: 3,
    }];
    let c = lazy(|k: &mut dyn FnMut(Var<f64>)| mean_of_others(&h, &runs).bind(k)).eval();
    // Agent 0 hears (2 + 6) / 2, agent 1 (1 + 6) / 2, agent 2 (1 + 2) / 2.
    let expected = array![[4.0, 40.0], [3.5, 35.0], [1.5, 15.0]].into_dyn();
    assert_eq!(c.array(), &expected);

    // Two games in one run, and a third game in a run of its own: each
    // agent hears its own game only.
    let h = Var::constant(Array2::from_shape_fn((7, 1), |(i, _)| (1 << i) as f64));
    let batch = Batch::new(&[vec![1, 2], vec![3, 4], vec![5, 6, 7]]);
    let c = lazy(|k: &mut dyn FnMut(Var<f64>)| mean_of_others(&h, &batch.runs).bind(k)).eval();
    let heard: Vec<f64> = c.array().iter().copied().collect();
    assert_eq!(heard, [2.0, 1.0, 8.0, 4.0, 48.0, 40.0, 24.0]);
}

#[test]
fn a_batch_of_unequal_games_is_the_sum_of_its_games() {
    let games = [
        vec![5, 17, 3],
        vec![100, 2, 450, 8, 300],
        vec![9, 10, 11],
        vec![499, 0],
        vec![60, 61, 62, 63, 64, 65, 66],
    ];
    let big: CommNet<f64> = CommNet::new(500, 3, 2, 7, true, &mut StdRng::seed_from_u64(7));
    let together = supervised_loss(&big, &Batch::new(&games)).eval().item();
    let one_by_one: f64 = games
        .iter()
        .map(|g| {
            supervised_loss(&big, &Batch::new(std::slice::from_ref(g)))
                .eval()
                .item()
        })
        .sum();
    assert!(
        (together - one_by_one).abs() < 1e-12 * one_by_one,
        "{together} vs {one_by_one}"
    );
    // Runs: [3], [5], [3], [2], [7] (sizes change at every game).
    assert_eq!(Batch::new(&games).runs.len(), 5);
    // The games' order does not matter either (here: sorted by size).
    let mut sorted = games.to_vec();
    sorted.sort_by_key(Vec::len);
    let reordered = supervised_loss(&big, &Batch::new(&sorted)).eval().item();
    assert!((reordered - together).abs() < 1e-12 * together);
    // The negative control: a game given one agent more is another loss.
    let mut grown = games.to_vec();
    grown[0].push(200);
    let other = supervised_loss(&big, &Batch::new(&grown)).eval().item();
    assert!((other - together).abs() > 1e-3);
}

#[test]
fn the_chance_of_independent_agents_is_the_closed_form() {
    assert!((chance(5) - 0.590_4).abs() < 1e-4, "{}", chance(5));
    assert!((5.0 * (1.0 - 0.8f64.powi(5)) - 3.3616).abs() < 1e-12);
    // Against the exact count over all 5^5 ways of pulling.
    let mut total = 0.0;
    for code in 0..5usize.pow(5) {
        let levers: Vec<usize> = (0..5).map(|j| code / 5usize.pow(j) % 5).collect();
        total += reward(&levers);
    }
    assert!((total / 3125.0 - chance(5)).abs() < 1e-12);
    // Two agents: distinct half the time.
    assert!((chance(2) - 0.5).abs() < 1e-12);
    assert!((Groups::Fixed.chance() - chance(5)).abs() < 1e-15);
}

#[test]
fn ranks_and_rewards() {
    let batch = Batch::new(&[vec![40, 7, 300], vec![1, 0]]);
    assert_eq!(batch.ranks, [1, 0, 2, 1, 0]);
    assert_eq!(reward(&[0, 1, 2, 3, 4]), 1.0);
    assert_eq!(reward(&[2, 2, 2, 2, 2]), 0.0);
    assert_eq!(reward(&[0, 0, 1, 1, 4]), 0.5);
}

#[test]
fn options_follow_the_mode() {
    let parse = |words: &[&str]| {
        crate::cli::parse(words.iter().map(|w| w.to_string())).map(|c| c.run().expect("a run"))
    };
    let supervised = parse(&[]).unwrap();
    assert_eq!((supervised.batch, supervised.minutes), (32, None));
    let reinforce = parse(&["--groups", "varied", "--mode", "reinforce"]).unwrap();
    assert_eq!(
        (reinforce.batch, reinforce.minutes, reinforce.groups),
        (256, Some(20.0), Groups::Varied)
    );
    assert_eq!(
        parse(&["--clip", "none", "--mode", "reinforce"])
            .unwrap()
            .clip,
        None
    );
    assert_eq!(
        parse(&["--mode", "evolve"]).unwrap_err(),
        "--mode expects 'supervised' or 'reinforce', got 'evolve'"
    );
    assert!(
        parse(&["--resume"])
            .unwrap_err()
            .contains("--communication on or off")
    );
}
