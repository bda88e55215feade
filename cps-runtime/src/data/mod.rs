//! Data readers: sentiment treebanks in bracketed (PTB) form, vocabularies,
//! pretrained word vectors, scikit-learn's handwritten digits (8×8, with a
//! seeded train/test split), MNIST's IDX files, and a synthetic treebank
//! with known rules.
//!
//! ```
//! use cps_runtime::data::{parse_treebank, Vocab};
//!
//! let train = parse_treebank(b"(3 (2 It) (4 (2 's) (4 good)))\n(1 (2 It) (1 drags))\n").unwrap();
//! let vocab = Vocab::from_trees(&train);
//! assert_eq!(vocab.len(), 5); // <unk> It 's good drags
//! assert_eq!(vocab.indices(&train[1]), [1, 4]);
//! ```

pub mod digits;
pub mod glove;
pub mod mnist;
pub mod synthetic;
pub mod tree;
pub mod vocab;

pub use digits::{Digits, DigitsError, DigitsLineError, parse_digits, read_digits};
pub use glove::{GloveError, GloveLineError, GloveOptions, GloveReport, load_glove, read_glove};
pub use mnist::{
    IdxImages, IdxKind, IdxPart, LabelledImages, Mnist, MnistError, read_idx_images,
    read_idx_labels, read_labelled_images, read_mnist,
};
pub use tree::{
    MAX_LABEL, Node, ParseError, ParseErrorKind, Tree, TreebankError, parse_treebank, read_treebank,
};
pub use vocab::Vocab;
