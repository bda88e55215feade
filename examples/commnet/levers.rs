//! The lever-pulling game: a pool of agents, a few drawn per game, each
//! sees only its own identity and pulls one of the game's levers; the game
//! pays `(distinct levers pulled − 1) / (agents − 1)`, so 1 when every
//! agent pulls a different lever and 0 when all pull the same one.
//!
//! A game of `J` agents has `J` levers (the paper's game: 5 of each). A
//! batch holds several games, their agents stacked as rows game after
//! game; games of different sizes may share a batch.

use rand::Rng;
use rand::seq::index::sample;

/// Agents in the pool.
pub const POOL: usize = 500;

/// Consecutive games of one size in a batch: their agents are rows
/// `start..start + games * size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    pub start: usize,
    pub games: usize,
    pub size: usize,
}

impl Run {
    /// The rows of the run's agents.
    pub fn rows(&self) -> usize {
        self.games * self.size
    }

    /// The range of the run's rows.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.start + self.rows()
    }
}

/// Games played at once: every agent's identity, game after game.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Each agent's identity in the pool, game after game.
    pub ids: Vec<usize>,
    /// The number of agents of each game, in order.
    pub sizes: Vec<usize>,
    /// Maximal stretches of consecutive games of equal size.
    pub runs: Vec<Run>,
    /// Each agent's rank among its game's identities (0 for the
    /// smallest): the supervised target, a lever per agent, all distinct.
    pub ranks: Vec<usize>,
}

impl Batch {
    /// The games whose agents' identities are `games` (each at least two
    /// agents, identities distinct within a game and below [`POOL`]).
    pub fn new(games: &[Vec<usize>]) -> Self {
        let mut batch = Batch {
            ids: Vec::new(),
            sizes: Vec::with_capacity(games.len()),
            runs: Vec::new(),
            ranks: Vec::new(),
        };
        for game in games {
            assert!(game.len() >= 2, "a game needs at least two agents");
            batch.ids.extend_from_slice(game);
            batch.ranks.extend(ranks(game));
            batch.sizes.push(game.len());
            match batch.runs.last_mut() {
                Some(run) if run.size == game.len() => run.games += 1,
                _ => batch.runs.push(Run {
                    start: batch.ids.len() - game.len(),
                    games: 1,
                    size: game.len(),
                }),
            }
        }
        batch
    }

    /// Draws one game per entry of `sizes`, each from the whole pool,
    /// after putting equal sizes side by side (so that they form few
    /// runs; a game's reward does not depend on its place in the batch).
    pub fn draw(sizes: &[usize], rng: &mut impl Rng) -> Self {
        let mut sorted = sizes.to_vec();
        sorted.sort_unstable();
        let games: Vec<Vec<usize>> = sorted
            .iter()
            .map(|&size| sample(rng, POOL, size).into_vec())
            .collect();
        Batch::new(&games)
    }

    /// The number of games.
    pub fn games(&self) -> usize {
        self.sizes.len()
    }

    /// The number of agents, all games together.
    pub fn agents(&self) -> usize {
        self.ids.len()
    }

    /// The rows of each run, for splitting the agents' rows by run.
    pub fn run_rows(&self) -> Vec<usize> {
        self.runs.iter().map(Run::rows).collect()
    }
}

/// The rank of each identity among `game`'s.
fn ranks(game: &[usize]) -> Vec<usize> {
    game.iter()
        .map(|id| game.iter().filter(|other| *other < id).count())
        .collect()
}

/// How many agents each game of a batch has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Groups {
    /// Every game the paper's: 5 agents, 5 levers.
    Fixed,
    /// Each game 3 to 7 agents, uniformly, as many levers as agents.
    Varied,
}

impl Groups {
    /// The smallest and largest game.
    pub fn bounds(self) -> (usize, usize) {
        match self {
            Groups::Fixed => (5, 5),
            Groups::Varied => (3, 7),
        }
    }

    /// The sizes of `games` games.
    pub fn sizes(self, games: usize, rng: &mut impl Rng) -> Vec<usize> {
        let (low, high) = self.bounds();
        (0..games).map(|_| rng.random_range(low..=high)).collect()
    }

    /// The expected reward of agents pulling levers uniformly and
    /// independently, over this mix of game sizes.
    pub fn chance(self) -> f64 {
        let (low, high) = self.bounds();
        (low..=high).map(chance).sum::<f64>() / (high - low + 1) as f64
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Groups::Fixed => "fixed",
            Groups::Varied => "varied",
        }
    }
}

/// What a game of `agents` agents pays when each pulls `levers[j]`.
pub fn reward(levers: &[usize]) -> f64 {
    let mut seen = levers.to_vec();
    seen.sort_unstable();
    seen.dedup();
    (seen.len() - 1) as f64 / (levers.len() - 1) as f64
}

/// The expected reward of `j` agents each pulling one of `j` levers
/// uniformly and independently. A lever stays unpulled with probability
/// `(1 − 1/j)^j`, so `E[distinct] = j (1 − (1 − 1/j)^j)`, and the reward
/// is `(E[distinct] − 1) / (j − 1)`.
pub fn chance(j: usize) -> f64 {
    let n = j as f64;
    let distinct = n * (1.0 - (1.0 - 1.0 / n).powi(j as i32));
    (distinct - 1.0) / (n - 1.0)
}

/// The mean of `values` and its standard error.
pub fn mean_and_error(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (variance / n).sqrt())
}
