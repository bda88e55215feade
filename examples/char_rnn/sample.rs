//! Text sampled from the model, forward only: each character drawn from
//! the softmax of the scores the previous one leads to.

use cps::prelude::*;
use rand::Rng;

use crate::model::{CharModel, State, next_scores};
use crate::text::Text;

/// `length` characters drawn after `first` from `state` (neither is
/// changed), with `rng`.
pub fn sample(
    model: &CharModel,
    text: &Text,
    first: usize,
    state: &State,
    length: usize,
    rng: &mut impl Rng,
) -> String {
    let mut state = state.clone();
    let mut x = first;
    let mut bytes = Vec::with_capacity(length);
    for _ in 0..length {
        let (scores, next) = next_scores(model, x, &state).eval();
        x = draw(scores.array().iter().copied(), rng);
        state = next;
        bytes.push(text.vocabulary[x]);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// An index drawn with probabilities `softmax(scores)`.
fn draw(scores: impl Iterator<Item = f32> + Clone, rng: &mut impl Rng) -> usize {
    let top = scores.clone().fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = scores.map(|s| f64::from(s - top).exp()).collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}
