//! [`Vocab`]: words to row indices of an embedding table.

use std::collections::HashMap;

use super::tree::Tree;

/// A vocabulary: index 0 is `<unk>`, which every unknown word maps to; the
/// other words get 1, 2, ... in the order they are added.
///
/// [`Vocab::from_trees`] builds it as the PyTorch baseline does: the
/// training words in order of first appearance, tree by tree, leaves left
/// to right, so that both give every word the same embedding row.
///
/// ```
/// use cps_runtime::data::{Tree, Vocab};
///
/// let train: Vec<Tree> = ["(3 (2 a) (3 good))", "(1 (2 a) (1 bad))"]
///     .iter()
///     .map(|line| line.parse().unwrap())
///     .collect();
/// let vocab = Vocab::from_trees(&train);
/// assert_eq!(vocab.words(), ["<unk>", "a", "good", "bad"]);
/// assert_eq!(vocab.index("bad"), 3);
/// assert_eq!(vocab.index("unseen"), Vocab::UNK_INDEX);
/// assert_eq!(vocab.indices(&"(2 (2 good) (2 unseen))".parse().unwrap()), [2, 0]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    words: Vec<String>,
    index: HashMap<String, usize>,
}

impl Vocab {
    /// The word standing for every word not in the vocabulary.
    pub const UNK: &'static str = "<unk>";
    /// The index of [`Vocab::UNK`].
    pub const UNK_INDEX: usize = 0;

    /// A vocabulary holding only `<unk>`.
    pub fn new() -> Vocab {
        let mut vocab = Vocab {
            words: Vec::new(),
            index: HashMap::new(),
        };
        vocab.insert(Self::UNK);
        vocab
    }

    /// `<unk>`, then the words of `trees` in order of first appearance
    /// (tree by tree, leaves left to right).
    pub fn from_trees<'a>(trees: impl IntoIterator<Item = &'a Tree>) -> Vocab {
        let mut vocab = Vocab::new();
        for tree in trees {
            for word in tree.words() {
                vocab.insert(word);
            }
        }
        vocab
    }

    /// Adds `word` if it is new; returns its index either way.
    pub fn insert(&mut self, word: &str) -> usize {
        if let Some(&index) = self.index.get(word) {
            return index;
        }
        let index = self.words.len();
        self.words.push(word.to_string());
        self.index.insert(word.to_string(), index);
        index
    }

    /// The index of `word`, or `None` when it is not in the vocabulary.
    pub fn get(&self, word: &str) -> Option<usize> {
        self.index.get(word).copied()
    }

    /// The index of `word`, or [`Vocab::UNK_INDEX`] when it is unknown.
    pub fn index(&self, word: &str) -> usize {
        self.get(word).unwrap_or(Self::UNK_INDEX)
    }

    /// The indices of a tree's words, leaves left to right (unknown words
    /// give [`Vocab::UNK_INDEX`]): entry `k` belongs to `Node::Leaf { leaf: k, .. }`.
    pub fn indices(&self, tree: &Tree) -> Vec<usize> {
        tree.words().map(|word| self.index(word)).collect()
    }

    /// The word at `index`, if there is one.
    pub fn word(&self, index: usize) -> Option<&str> {
        self.words.get(index).map(String::as_str)
    }

    /// All words, by index (`<unk>` first).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The number of words, `<unk>` included (so never zero).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Always false: a vocabulary holds at least `<unk>`.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }
}

impl Default for Vocab {
    fn default() -> Self {
        Vocab::new()
    }
}
