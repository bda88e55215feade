//! A synthetic sentiment treebank: random binary trees over a small
//! vocabulary, every node labelled by fixed compositional rules, so that a
//! tree-structured model can learn the labels exactly. It stands in for the
//! SST where the real data is absent, and its trees print as SST lines.
//!
//! # The rules
//! Every node has a score from -2 (very negative) to +2 (very positive);
//! its label is the score plus 2, so labels run 0..=4 as in the SST.
//!
//! 1. A word scores its polarity: +2 for [`STRONG_POSITIVE`] words, +1 for
//!    [`POSITIVE`], -1 for [`NEGATIVE`], -2 for [`STRONG_NEGATIVE`], and 0
//!    for every other word (including the function words below).
//! 2. A node whose left child is a single word from [`NEGATIONS`] scores
//!    minus its right child: `not good` = -1, `not awful` = +2.
//! 3. A node whose left child is a single word from [`INTENSIFIERS`] moves
//!    its right child's score one step away from 0, within -2..=2:
//!    `very good` = +2, `very bad` = -2, `very awful` = -2, `very plot` = 0.
//! 4. A node whose left child is a single word from [`CONTRASTS`] scores its
//!    right child (`but good` = +1) and is a *contrast phrase*.
//! 5. Otherwise, a node whose right child is a contrast phrase scores that
//!    child: what follows "but" decides (`good but awful` = -2).
//! 6. Otherwise a node scores the sum of its children's scores, clamped to
//!    -2..=2: `the good` = +1, `good great` = +2, `good bad` = 0.
//!
//! Rules 2 to 5 are tried in that order. [`rule_labels`] applies them to
//! any tree; the generator's trees satisfy them at every node.

use super::tree::Tree;

/// Words scoring +2.
pub const STRONG_POSITIVE: &[&str] = &["great", "superb", "wonderful", "brilliant", "masterful"];
/// Words scoring +1.
pub const POSITIVE: &[&str] = &["good", "nice", "fine", "pleasant", "solid"];
/// Words scoring -1.
pub const NEGATIVE: &[&str] = &["bad", "dull", "weak", "bland", "clumsy"];
/// Words scoring -2.
pub const STRONG_NEGATIVE: &[&str] = &["awful", "terrible", "dreadful", "abysmal", "horrid"];
/// Words scoring 0 that change nothing.
pub const NEUTRAL: &[&str] = &[
    "the", "a", "this", "movie", "film", "plot", "story", "acting", "cast", "script", "ending",
    "music", "is", "was",
];
/// Words that flip the sign of the phrase to their right.
pub const NEGATIONS: &[&str] = &["not", "never"];
/// Words that strengthen the phrase to their right.
pub const INTENSIFIERS: &[&str] = &["very", "truly", "extremely"];
/// Words whose phrase overrides the phrase to their left.
pub const CONTRASTS: &[&str] = &["but", "yet"];

/// The score of one word under rule 1.
pub fn word_score(word: &str) -> i8 {
    if STRONG_POSITIVE.contains(&word) {
        2
    } else if POSITIVE.contains(&word) {
        1
    } else if NEGATIVE.contains(&word) {
        -1
    } else if STRONG_NEGATIVE.contains(&word) {
        -2
    } else {
        0
    }
}

fn intensify(score: i8) -> i8 {
    (score + score.signum()).clamp(-2, 2)
}

fn label(score: i8) -> u8 {
    (score + 2) as u8
}

/// The labels the rules give every node of `tree` (in post-order, like
/// [`Tree::labels`]), from its words and shape alone; the tree's own
/// labels are ignored.
///
/// ```
/// use cps_runtime::data::{synthetic::rule_labels, Tree};
///
/// // nodes in post-order: very, good, "very good", but, awful, "but awful", root
/// let tree: Tree = "(2 (2 (2 very) (2 good)) (2 (2 but) (2 awful)))".parse().unwrap();
/// assert_eq!(rule_labels(&tree), [2, 3, 4, 2, 0, 0, 0]);
/// ```
pub fn rule_labels(tree: &Tree) -> Vec<u8> {
    use super::tree::Node;
    #[derive(Clone, Copy)]
    struct Scored {
        score: i8,
        contrast: bool,
        word: Option<usize>,
    }
    let mut scored: Vec<Scored> = Vec::with_capacity(tree.node_count());
    for node in tree.nodes() {
        let next = match *node {
            Node::Leaf { leaf, .. } => Scored {
                score: word_score(tree.word(leaf)),
                contrast: false,
                word: Some(leaf),
            },
            Node::Internal { left, right, .. } => {
                let operator = scored[left].word.map(|leaf| tree.word(leaf));
                let right = scored[right];
                let left = scored[left];
                let (score, contrast) = match operator {
                    Some(word) if NEGATIONS.contains(&word) => (-right.score, false),
                    Some(word) if INTENSIFIERS.contains(&word) => (intensify(right.score), false),
                    Some(word) if CONTRASTS.contains(&word) => (right.score, true),
                    _ if right.contrast => (right.score, false),
                    _ => ((left.score + right.score).clamp(-2, 2), false),
                };
                Scored {
                    score,
                    contrast,
                    word: None,
                }
            }
        };
        scored.push(next);
    }
    scored.iter().map(|s| label(s.score)).collect()
}

/// Sizes and seed of a synthetic treebank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticConfig {
    /// Same seed, same trees, on every platform and version of this crate's
    /// dependencies (the generator carries its own random number generator).
    pub seed: u64,
    /// Number of training trees.
    pub train: usize,
    /// Number of development trees.
    pub dev: usize,
    /// Number of test trees.
    pub test: usize,
    /// The deepest a tree may be (a tree of depth `d` has at most `2^d`
    /// words). At 6, trees average about 10 words; sizes grow geometrically
    /// with the depth, so keep it small (up to a dozen or so).
    pub max_depth: usize,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 0,
            train: 1000,
            dev: 200,
            test: 200,
            max_depth: 6,
        }
    }
}

/// The three splits of a synthetic treebank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticTreebank {
    /// Training trees.
    pub train: Vec<Tree>,
    /// Development trees.
    pub dev: Vec<Tree>,
    /// Test trees.
    pub test: Vec<Tree>,
}

/// Generates a synthetic treebank. Each split has its own random stream
/// derived from the seed, so a split does not change when another split's
/// size does, and a larger split extends a smaller one.
///
/// ```
/// use cps_runtime::data::synthetic::{generate, rule_labels, SyntheticConfig};
///
/// let bank = generate(&SyntheticConfig { seed: 7, train: 50, dev: 10, test: 10, max_depth: 5 });
/// assert_eq!(bank.train.len(), 50);
/// for tree in &bank.train {
///     assert_eq!(rule_labels(tree), tree.labels().collect::<Vec<_>>());
///     println!("{tree}"); // one SST-style line
/// }
/// ```
pub fn generate(config: &SyntheticConfig) -> SyntheticTreebank {
    let split = |index: u64, count: usize| {
        let mut generator = Generator::new(config.seed, index, config.max_depth);
        (0..count).map(|_| generator.tree()).collect()
    };
    SyntheticTreebank {
        train: split(1, config.train),
        dev: split(2, config.dev),
        test: split(3, config.test),
    }
}

/// An endless source of random labelled trees.
///
/// ```
/// use cps_runtime::data::synthetic::Generator;
///
/// let mut a = Generator::new(42, 0, 4);
/// let mut b = Generator::new(42, 0, 4);
/// assert_eq!(a.tree(), b.tree());
/// ```
#[derive(Clone, Debug)]
pub struct Generator {
    rng: SplitMix64,
    max_depth: usize,
}

impl Generator {
    /// A generator for `seed`; `stream` picks one of many independent
    /// sequences for the same seed. Trees are at most `max_depth` deep.
    pub fn new(seed: u64, stream: u64, max_depth: usize) -> Generator {
        let mut mixer = SplitMix64(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        Generator {
            rng: SplitMix64(mixer.next_u64()),
            max_depth,
        }
    }

    /// The next tree. Unless `max_depth` is 0 it has at least two words.
    pub fn tree(&mut self) -> Tree {
        if self.max_depth == 0 {
            return self.word().0;
        }
        self.phrase(self.max_depth, true).tree
    }

    fn pick<'a>(&mut self, words: &[&'a str]) -> &'a str {
        words[self.rng.below(words.len())]
    }

    fn word(&mut self) -> (Tree, i8) {
        let class = self.rng.below(8);
        let word = match class {
            0 => self.pick(STRONG_POSITIVE),
            1 => self.pick(POSITIVE),
            2 => self.pick(NEGATIVE),
            3 => self.pick(STRONG_NEGATIVE),
            _ => self.pick(NEUTRAL),
        };
        let score = word_score(word);
        (Tree::leaf(word, label(score)), score)
    }

    /// A phrase at most `depth` deep. The recursion is bounded by the
    /// configured depth, which is meant to stay small.
    fn phrase(&mut self, depth: usize, root: bool) -> Phrase {
        let choice = if root {
            0.3 + 0.7 * self.rng.unit()
        } else {
            self.rng.unit()
        };
        if depth == 0 || choice < 0.3 {
            let (tree, score) = self.word();
            return Phrase { tree, score };
        }
        let operator = |generator: &mut Self, words: &[&str]| Tree::leaf(generator.pick(words), 2);
        if choice < 0.42 {
            let inner = self.phrase(depth - 1, false);
            let score = -inner.score;
            let tree = Tree::join(operator(self, NEGATIONS), inner.tree, label(score));
            Phrase { tree, score }
        } else if choice < 0.54 {
            let inner = self.phrase(depth - 1, false);
            let score = intensify(inner.score);
            let tree = Tree::join(operator(self, INTENSIFIERS), inner.tree, label(score));
            Phrase { tree, score }
        } else if choice < 0.64 && depth >= 2 {
            let first = self.phrase(depth - 1, false);
            let second = self.phrase(depth - 2, false);
            let but = Tree::join(operator(self, CONTRASTS), second.tree, label(second.score));
            let tree = Tree::join(first.tree, but, label(second.score));
            Phrase {
                tree,
                score: second.score,
            }
        } else {
            let left = self.phrase(depth - 1, false);
            let right = self.phrase(depth - 1, false);
            let score = (left.score + right.score).clamp(-2, 2);
            let tree = Tree::join(left.tree, right.tree, label(score));
            Phrase { tree, score }
        }
    }
}

/// A generated subtree and its score. Contrast phrases are built only
/// inside the contrast construction, so no flag is needed here.
struct Phrase {
    tree: Tree,
    score: i8,
}

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast, and fixed forever,
/// unlike `rand`'s `StdRng`, whose algorithm may change between versions.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}
